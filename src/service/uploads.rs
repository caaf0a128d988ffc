//! Resumable uploads (the tus 1.0 protocol is spoken by `api::tus`; this
//! is what it does). An upload's state is in the database and its bytes in
//! the blob store, so any instance resumes it:
//! - complete 1 MiB leaves are hashed as they arrive (their digests are
//!   kept, in order) and go into one multipart object per upload,
//!   `tus<id>p0`: written in place locally; on S3 as the parts of one S3
//!   multipart upload, and leaves that do not yet make S3's least part
//!   (5 MiB) wait as small objects `tus<id>p<name>` until more arrive;
//! - the bytes after the last complete leaf are kept with the row;
//! - PATCHes on one upload are serialised by a row lease that spans
//!   instances (renewed while a request works; a dead instance's runs out).
//!
//! When the last byte arrives, the tree is built from the kept digests
//! (the leaves are not hashed again), the multipart object is completed
//! where it is and copied under its CID (locally a second name for the
//! file), the CAR's hash taken from it meanwhile, and the file is stored
//! exactly as `POST /upload_file` stores it (same checks, same rows).

use super::files::{self, over_quota, too_large, Uploaded};
use super::{Principal, Services};
use crate::content::{self, Importer, Params};
use crate::error::{AppError, AppResult};
use crate::store::blobs::{BlobStore, Multipart, PartWriter, Staged};
use crate::store::db::{Appended, Claim, NewUpload, UploadRow};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use sha2::Digest;
use std::io::{self, Read, Write};
use tokio::sync::mpsc;

/// The leaf size of the importer (`ipfs-car`'s chunk).
pub const LEAF: usize = Params::IPFS_CAR.chunk_size;

/// A checksum the client sent for a PATCH body (`Upload-Checksum`).
pub enum Checksum {
    Sha1(Vec<u8>),
    Sha256(Vec<u8>),
}

/// What creating an upload needs.
pub struct NewUploadRequest<'a> {
    /// `None`: deferred (`Upload-Defer-Length: 1`).
    pub length: Option<u64>,
    /// `Upload-Metadata` as sent (kept, given back on HEAD).
    pub metadata: &'a str,
    pub name: &'a str,
    pub mime: &'a str,
}

/// Where an upload stands after a request.
pub struct Progress {
    pub offset: u64,
    pub expires_at: i64,
    /// Set once the file is stored.
    pub stored: Option<Uploaded>,
}

fn not_found() -> AppError {
    AppError::not_found("Upload not found")
}

/// A part object's key: `tus<upload id>p<part name>` (both hex). Every
/// part has a name of its own, so a request that lost its lease can never
/// write over a part another request recorded.
fn part_key(id: &str, name: &str) -> String {
    format!("tus{id}p{name}")
}

/// The parts of an upload (`parts` as stored): leaf count and name of each.
fn parts_of(parts: &str) -> Vec<(u64, &str)> {
    parts.split(',').filter_map(|p| p.split_once(':')).filter_map(|(n, name)| Some((n.parse().ok()?, name))).collect()
}

/// The S3 multipart object of an upload (`tus<id>p0`: no part object
/// has a name that short).
fn multipart_key(id: &str) -> String {
    part_key(id, "0")
}

/// Leaves in a part sent to the store (each is held in memory while it is sent to S3).
const PART_LEAVES: u64 = 8;

/// The least leaves a part may have unless it is the last.
fn min_part_leaves(multipart: &dyn Multipart) -> u64 {
    multipart.min_part().div_ceil(LEAF as u64)
}

/// The store's multipart objects, which an upload that recorded one needs.
fn multipart_of(blobs: &dyn BlobStore) -> io::Result<&dyn Multipart> {
    blobs.multipart().ok_or_else(|| io::Error::other("the store lost its multipart objects"))
}

/// Leaves recorded in an upload's multipart object (`multipart_parts`).
fn multipart_leaves(multipart_parts: &str) -> u64 {
    parts_of(multipart_parts).iter().map(|(n, _)| n).sum()
}

/// How `leaves` (at least `min`) are cut into parts: of [`PART_LEAVES`], a
/// remainder smaller than `min` going to the last one.
fn part_sizes(leaves: u64, min: u64) -> Vec<u64> {
    let mut sizes = vec![PART_LEAVES; (leaves / PART_LEAVES) as usize];
    let rest = leaves % PART_LEAVES;
    match sizes.last_mut() {
        Some(last) if rest < min => *last += rest,
        _ if rest > 0 => sizes.push(rest),
        _ => {}
    }
    sizes
}

/// The ETags of an upload's S3 parts (`multipart_parts` as stored).
fn tags_of(multipart_parts: &str) -> Vec<String> {
    parts_of(multipart_parts).into_iter().filter_map(|(_, tag)| String::from_utf8(hex::decode(tag).ok()?).ok()).collect()
}

/// The upload id of a part object's key, if it is one.
pub fn upload_of_key(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("tus")?;
    let (id, name) = rest.split_once('p')?;
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(id) && hex(name)).then_some(id)
}

/// How long a request holds an upload without renewing (it renews every quarter of it).
const LEASE_MS: i64 = 10_000;
/// How long a request waits for another one working on the same upload.
const WAIT_FOR_LEASE: std::time::Duration = std::time::Duration::from_secs(5);
/// Unfinished uploads an account may have at once.
const MAX_OPEN_UPLOADS: i64 = 100;

fn offset_moved() -> AppError {
    AppError::conflict("Upload-Offset does not match the upload's offset")
}

/// A request's hold on an upload, on every instance (a row lease, renewed
/// while held, so a dead instance's runs out in [`LEASE_MS`]); let go when
/// dropped. Not a database lock: a slow client holds no connection.
struct Lease {
    db: crate::store::Db,
    id: String,
    token: String,
    renewing: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// Takes upload `id` (at `offset`, when given), waiting a little for a
    /// request working on it: 423 if it is still busy, 409 if it moved.
    async fn take(state: &Services, id: &str, offset: Option<u64>) -> AppResult<Lease> {
        let token = crate::util::random_hex(8);
        let deadline = tokio::time::Instant::now() + WAIT_FOR_LEASE;
        loop {
            let now = state.clock.now_ms();
            match state.db.claim_upload(id, offset.map(|o| o as i64), &token, now, now + LEASE_MS).await? {
                Claim::Claimed => break,
                Claim::Moved => return Err(offset_moved()),
                Claim::Gone => return Err(not_found()),
                Claim::Busy if tokio::time::Instant::now() >= deadline => {
                    return Err(AppError::new(423, "Another request is working on this upload"));
                }
                Claim::Busy => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
        let (db, clock, lease_id, lease_token) = (state.db.clone(), state.clock.clone(), id.to_owned(), token.clone());
        let renewing = tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis((LEASE_MS / 4) as u64)).await;
                match db.renew_upload_lease(&lease_id, &lease_token, clock.now_ms() + LEASE_MS).await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => tracing::warn!(upload = %lease_id, error = %e, "upload lease not renewed"),
                }
            }
        });
        Ok(Lease { db: state.db.clone(), id: id.to_owned(), token, renewing })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewing.abort();
        let (db, id, token) = (self.db.clone(), std::mem::take(&mut self.id), std::mem::take(&mut self.token));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = db.release_upload(&id, &token).await {
                    tracing::warn!(upload = %id, error = %e, "upload lease not released (it runs out)");
                }
            });
        }
    }
}

/// Room the account has for a new upload's bytes: its quota less what its
/// files use and what its other unfinished uploads hold or announced.
async fn room(state: &Services, who: &Principal, except: &str) -> AppResult<u64> {
    let used = state.db.space_used(who.user_id).await?;
    let reserved = state.db.upload_reserved(who.user_id, state.clock.now_ms(), except).await?;
    Ok((state.settings.user_quota_bytes - used - reserved).max(0) as u64)
}

/// Checks a length against the size limit and the account's room.
async fn check_length(state: &Services, who: &Principal, length: u64, id: &str) -> AppResult<()> {
    if length > state.settings.max_file_bytes.max(0) as u64 {
        return Err(too_large());
    }
    if length > room(state, who, id).await? {
        return Err(over_quota());
    }
    Ok(())
}

/// `POST /uploads`: a new upload of this account; returns its id.
pub async fn create(state: &Services, who: &Principal, req: &NewUploadRequest<'_>) -> AppResult<(String, i64)> {
    let id = crate::util::random_hex(16);
    if state.db.open_uploads(who.user_id, state.clock.now_ms()).await? >= MAX_OPEN_UPLOADS {
        return Err(AppError::new(429, "Too many unfinished uploads: finish or delete one first"));
    }
    if let Some(length) = req.length {
        check_length(state, who, length, &id).await?;
    }
    let now = state.clock.now_ms();
    let expires_at = now.saturating_add(state.settings.upload_expiry_secs.saturating_mul(1000));
    let row = NewUpload {
        id: &id,
        user_id: who.user_id,
        length: req.length.map(|l| l as i64),
        metadata: req.metadata,
        name: req.name,
        mime: req.mime,
        now,
        expires_at,
    };
    state.db.insert_upload(&row).await?;
    tracing::info!(user_id = who.user_id, upload = %id, length = ?req.length, "upload created");
    Ok((id, expires_at))
}

/// `HEAD /uploads/{id}`: the upload, once no PATCH of it is under way (a
/// PATCH whose client dropped keeps what arrived: its offset counts), or
/// as it stands after a short wait.
pub async fn status(state: &Services, who: &Principal, id: &str) -> AppResult<UploadRow> {
    let deadline = tokio::time::Instant::now() + WAIT_FOR_LEASE;
    loop {
        let row = owned(state, who, id).await?;
        let busy = row.lease_until.is_some_and(|until| until > state.clock.now_ms());
        if !busy || tokio::time::Instant::now() >= deadline {
            return Ok(row);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The account's upload `id`: 404 when there is none (or it is another
/// account's: not told apart), 410 once it expired.
pub async fn owned(state: &Services, who: &Principal, id: &str) -> AppResult<UploadRow> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(not_found());
    }
    let row = state.db.upload(id).await?.filter(|r| r.user_id == who.user_id).ok_or_else(not_found)?;
    if row.expires_at <= state.clock.now_ms() {
        return Err(AppError::new(410, "Upload expired"));
    }
    Ok(row)
}

/// What a PATCH's worker hands back.
struct Received {
    staged: Option<Box<dyn Staged>>,
    /// Leaves written straight into the multipart object.
    direct: u64,
    /// Digests (hex) of the leaves this PATCH completed.
    new_leaves: String,
    tail: Vec<u8>,
    count: u64,
    checksum_ok: bool,
    /// The body ended before the client said it would (a dropped link).
    cut: bool,
}

/// `PATCH /uploads/{id}` (and the body of a creation-with-upload): appends
/// the body at `offset`. `length`: an `Upload-Length` sent to end a
/// deferral. On a dropped link what arrived is kept (unless a checksum
/// was sent: then the PATCH counts only whole).
pub async fn append<S>(state: &Services, who: &Principal, id: &str, offset: u64, length: Option<u64>, checksum: Option<Checksum>, body: S) -> AppResult<Progress>
where
    S: Stream<Item = AppResult<Bytes>> + Unpin + Send,
{
    let row = owned(state, who, id).await?;
    if row.cid.is_some() {
        // Complete already: nothing more is taken.
        if offset != row.received as u64 {
            return Err(offset_moved());
        }
        return progress(&row, body).await;
    }
    if offset != row.received as u64 {
        return Err(offset_moved());
    }
    // One request at a time per upload, across instances.
    let lease = Lease::take(state, id, Some(offset)).await?;
    let mut row = owned(state, who, id).await?;
    if let Some(l) = length {
        match row.length {
            Some(known) if known as u64 != l => return Err(AppError::bad_request("Upload-Length cannot change")),
            Some(_) => {}
            None => {
                if l < row.received as u64 {
                    return Err(AppError::bad_request("Upload-Length is less than the bytes received"));
                }
                check_length(state, who, l, id).await?;
                state.db.set_upload_length(id, l as i64).await?;
                row.length = Some(l as i64);
            }
        }
    }
    // Where this PATCH may bring the upload: up to its length (or,
    // deferred, the size limit and the account's room, which counts
    // everything but this upload).
    let limit = match row.length {
        Some(l) => l as u64,
        None => (state.settings.max_file_bytes.max(0) as u64).min(room(state, who, id).await?),
    };
    let direct = direct_writer(state, &row).await?;
    let started = direct.as_ref().filter(|_| row.multipart.is_none()).map(|(upload, _)| upload.clone());
    let (upload, writer) = direct.map_or((None, None), |(upload, writer)| (Some(upload), Some(writer)));
    let received = match receive(state, &row, limit, checksum, writer, body).await {
        Ok(received) if received.checksum_ok => received,
        failed => {
            if let Some(upload) = &started {
                abort_multipart(state, id, upload).await;
            }
            return Err(failed.err().unwrap_or_else(|| AppError::new(460, "Checksum mismatch")));
        }
    };
    let stored = match (received.staged, upload) {
        (Some(staged), _) => store_leaves(state, &row, staged, (received.new_leaves.len() / 64) as u64).await?,
        (None, Some(upload)) if received.direct > 0 => {
            let tag = (received.direct * LEAF as u64).to_string();
            Stored { new_part: None, sent: Some((upload, format!("{}:{},", received.direct, hex::encode(tag)))) }
        }
        (None, _) => {
            if let Some(upload) = &started {
                abort_multipart(state, id, upload).await;
            }
            Stored::default()
        }
    };
    let (parts, multipart, multipart_parts) = match &stored {
        Stored { new_part: Some(entry), .. } => (format!("{}{entry}", row.parts), row.multipart.clone(), row.multipart_parts.clone()),
        Stored { sent: Some((upload, entries)), .. } => (String::new(), Some(upload.clone()), format!("{}{entries}", row.multipart_parts)),
        _ => (row.parts.clone(), row.multipart.clone(), row.multipart_parts.clone()),
    };
    let total = row.received + received.count as i64;
    let appended = Appended {
        received: total,
        parts: &parts,
        multipart: multipart.as_deref(),
        multipart_parts: &multipart_parts,
        new_leaves: &received.new_leaves,
        tail: &received.tail,
    };
    if !state.db.append_upload(id, row.received, &lease.token, &appended).await? {
        if let Some(entry) = &stored.new_part {
            remove_part_objects(state, id, entry).await;
        }
        if let (None, Some((upload, _))) = (&row.multipart, &stored.sent) {
            abort_multipart(state, id, upload).await;
        }
        return Err(offset_moved());
    }
    tracing::info!(upload = %id, from = row.received, to = total, cut = received.cut, "upload received");
    if stored.sent.is_some() {
        // The part objects went into the S3 parts.
        remove_part_objects(state, id, &row.parts).await;
    }
    row.received = total;
    (row.parts, row.multipart, row.multipart_parts) = (parts, multipart, multipart_parts);
    row.leaves.push_str(&received.new_leaves);
    row.tail = received.tail;
    let stored = match row.length {
        Some(l) if l == total => Some(finish(state, who, &row).await?),
        _ => None,
    };
    drop(lease);
    Ok(Progress { offset: total as u64, expires_at: row.expires_at, stored })
}

/// Where a PATCH's complete leaves went.
#[derive(Default)]
struct Stored {
    /// A part object: `<leaf count>:<name>,`.
    new_part: Option<String>,
    /// S3 parts (with the part objects before them): the multipart
    /// upload's id, and `<leaf count>:<ETag hex>,` for each part sent.
    sent: Option<(String, String)>,
}

/// Stores a PATCH's `leaves` complete leaves: as S3 parts when the store
/// has them and, with the part objects not yet sent, they make a part of
/// S3's least size; else as a part object.
async fn store_leaves(state: &Services, row: &UploadRow, staged: Box<dyn Staged>, leaves: u64) -> AppResult<Stored> {
    let loose: Vec<(u64, &str)> = parts_of(&row.parts);
    let pending = loose.iter().map(|(n, _)| n).sum::<u64>() + leaves;
    if state.blobs.multipart().is_none_or(|m| pending < min_part_leaves(m)) {
        let name = crate::util::random_hex(6);
        files::put_object(staged, &part_key(&row.id, &name)).await?;
        return Ok(Stored { new_part: Some(format!("{leaves}:{name},")), sent: None });
    }
    let blobs = state.blobs.clone();
    let key = multipart_key(&row.id);
    let upload = row.multipart.clone();
    let first = parts_of(&row.multipart_parts).len();
    let at = multipart_leaves(&row.multipart_parts) * LEAF as u64;
    let mut before = loose_reader(state.blobs.clone(), &row.id, &row.parts, Vec::new());
    let sent = tokio::task::spawn_blocking(move || -> io::Result<(String, String)> {
        let mut staged = staged;
        let multipart = multipart_of(&*blobs)?;
        let upload = match upload {
            Some(upload) => upload,
            None => multipart.start(&key)?,
        };
        let sizes = part_sizes(pending, min_part_leaves(multipart));
        let bytes: Vec<u64> = sizes.iter().map(|n| n * LEAF as u64).collect();
        let tags = multipart.put_parts(&key, &upload, first, at, &bytes, &mut (&mut before).chain(staged.read_back()?))?;
        let entries = sizes.iter().zip(tags).map(|(n, tag)| format!("{n}:{},", hex::encode(tag))).collect();
        Ok((upload, entries))
    })
    .await
    .map_err(AppError::internal)?
    .map_err(AppError::storage)?;
    Ok(Stored { new_part: None, sent: Some(sent) })
}

/// Where a PATCH writes its leaves when the store takes them in place
/// (local files): the upload's multipart object (started if need be),
/// after the leaves recorded. `None`: they are staged.
async fn direct_writer(state: &Services, row: &UploadRow) -> AppResult<Option<(String, Box<dyn PartWriter>)>> {
    if !row.parts.is_empty() {
        return Ok(None); // part objects come first (an upload begun before multipart objects)
    }
    let (blobs, key, upload) = (state.blobs.clone(), multipart_key(&row.id), row.multipart.clone());
    let at = multipart_leaves(&row.multipart_parts) * LEAF as u64;
    tokio::task::spawn_blocking(move || -> io::Result<_> {
        let Some(multipart) = blobs.multipart().filter(|m| m.in_place()) else { return Ok(None) };
        let upload = match upload {
            Some(upload) => upload,
            None => multipart.start(&key)?,
        };
        let writer = multipart.writer(&key, &upload, at)?;
        Ok(Some((upload, writer)))
    })
    .await
    .map_err(AppError::internal)?
    .map_err(AppError::storage)
}

/// A PATCH on a complete upload: an empty body at its end is fine.
async fn progress<S>(row: &UploadRow, mut body: S) -> AppResult<Progress>
where
    S: Stream<Item = AppResult<Bytes>> + Unpin,
{
    while let Some(chunk) = body.next().await {
        if !chunk?.is_empty() {
            return Err(AppError::conflict("Upload-Offset does not match the upload's offset"));
        }
    }
    Ok(standing(row))
}

/// Where an upload stands as recorded (with the file it became, once complete).
pub fn standing(row: &UploadRow) -> Progress {
    let stored = match (&row.cid, &row.car_cid) {
        (Some(cid), Some(car_cid)) => Some(Uploaded { cid: cid.clone(), car_cid: car_cid.clone(), size: row.received as u64 }),
        _ => None,
    };
    Progress { offset: row.received as u64, expires_at: row.expires_at, stored }
}

/// Reads the body on the blocking pool: leaves cut and hashed as they
/// complete, their bytes written by `direct` or else staged.
async fn receive<S>(state: &Services, row: &UploadRow, limit: u64, checksum: Option<Checksum>, direct: Option<Box<dyn PartWriter>>, mut body: S) -> AppResult<Received>
where
    S: Stream<Item = AppResult<Bytes>> + Unpin,
{
    let (tx, mut rx) = mpsc::channel::<Bytes>(8);
    let with_checksum = checksum.is_some();
    let blobs = state.blobs.clone();
    let tail = row.tail.clone();
    let worker = tokio::task::spawn_blocking(move || -> io::Result<Received> {
        let mut r = Received { staged: None, direct: 0, new_leaves: String::new(), tail, count: 0, checksum_ok: true, cut: false };
        let mut direct = direct;
        let mut sha1 = sha1::Sha1::new();
        let mut sha256 = sha2::Sha256::new();
        while let Some(mut bytes) = rx.blocking_recv() {
            r.count += bytes.len() as u64;
            match checksum {
                Some(Checksum::Sha1(_)) => sha1.update(&bytes),
                Some(Checksum::Sha256(_)) => sha256.update(&bytes),
                None => {}
            }
            while !bytes.is_empty() {
                let take = (LEAF - r.tail.len()).min(bytes.len());
                r.tail.extend_from_slice(&bytes[..take]);
                bytes = bytes.slice(take..);
                if r.tail.len() == LEAF {
                    let digest = sha2::Sha256::digest(&r.tail);
                    r.new_leaves.push_str(&hex::encode(digest));
                    if let Some(writer) = direct.as_mut() {
                        writer.write_all(&r.tail)?;
                        r.direct += 1;
                    } else {
                        let staged = match r.staged.as_mut() {
                            Some(s) => s,
                            None => r.staged.insert(blobs.stage()?),
                        };
                        staged.write_all(&r.tail)?;
                    }
                    r.tail.clear();
                }
            }
        }
        if let Some(s) = r.staged.as_mut() {
            s.flush()?;
        }
        if let Some(writer) = direct.as_mut().filter(|_| r.direct > 0) {
            writer.sync()?;
        }
        r.checksum_ok = match checksum {
            Some(Checksum::Sha1(want)) => sha1.finalize().as_slice() == want.as_slice(),
            Some(Checksum::Sha256(want)) => sha256.finalize().as_slice() == want.as_slice(),
            None => true,
        };
        Ok(r)
    });
    let mut count = row.received as u64;
    let mut failure = None;
    let mut cut = false;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(bytes) => {
                count += bytes.len() as u64;
                if count > limit {
                    failure = Some(match row.length {
                        Some(_) => AppError::too_large("The body goes past Upload-Length"),
                        None if count > state.settings.max_file_bytes.max(0) as u64 => too_large(),
                        None => over_quota(),
                    });
                    break;
                }
                if tx.send(bytes).await.is_err() {
                    break; // the worker failed: its error says why
                }
            }
            Err(e) => {
                // A dropped link: keep what arrived (the client resumes from it).
                tracing::info!(upload = %row.id, error = %e.message, "upload body ended early");
                cut = true;
                break;
            }
        }
    }
    drop(tx);
    let mut received = worker.await.map_err(AppError::internal)?.map_err(AppError::storage)?;
    if let Some(e) = failure {
        return Err(e);
    }
    if cut && with_checksum {
        // A checksum covers the whole body: a part of it is not kept.
        return Err(AppError::bad_request("The body ended before its checksum could be checked"));
    }
    received.cut = cut;
    Ok(received)
}

/// The parts then the tail, in order, as one reader (blocking).
struct Assembled {
    blobs: std::sync::Arc<dyn crate::store::blobs::BlobStore>,
    /// Each part's length in bytes and key.
    parts: Vec<(u64, String)>,
    next: usize,
    current: Option<Box<dyn Read + Send>>,
    tail: io::Cursor<Vec<u8>>,
}

impl Read for Assembled {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(r) = self.current.as_mut() {
                let n = r.read(out)?;
                if n > 0 {
                    return Ok(n);
                }
                self.current = None;
            }
            let Some((len, key)) = self.parts.get(self.next) else {
                return self.tail.read(out);
            };
            self.next += 1;
            let part = self.blobs.open_range(key, 0, *len)?;
            self.current = Some(part.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("upload part {key} is missing")))?);
        }
    }
}

/// The part objects `parts` of upload `id`, then `tail`, as one reader.
fn loose_reader(blobs: std::sync::Arc<dyn BlobStore>, id: &str, parts: &str, tail: Vec<u8>) -> Assembled {
    Assembled {
        blobs,
        parts: parts_of(parts).into_iter().map(|(n, name)| (n * LEAF as u64, part_key(id, name))).collect(),
        next: 0,
        current: None,
        tail: io::Cursor::new(tail),
    }
}

/// The last byte arrived: the file is stored as `POST /upload_file` would.
async fn finish(state: &Services, who: &Principal, row: &UploadRow) -> AppResult<Uploaded> {
    let size = row.received as u64;
    let mut importer = Importer::new(Params::IPFS_CAR, true);
    let mut none = |_: content::Block<'_>| {};
    let leaves = hex::decode(&row.leaves).map_err(AppError::internal)?;
    for digest in leaves.chunks_exact(32) {
        let digest: [u8; 32] = digest.try_into().map_err(AppError::internal)?;
        importer.push_hashed_leaf(LEAF, digest, &mut none);
    }
    let last = (!row.tail.is_empty()).then(|| (row.tail.len(), sha2::Sha256::digest(&row.tail).into()));
    let imported = importer.finish_hashed(last, &mut none);
    if imported.size != size {
        return Err(AppError::internal(format!("upload {} has {} bytes in its leaves, {size} received", row.id, imported.size)));
    }
    let mut rest = loose_reader(state.blobs.clone(), &row.id, &row.parts, row.tail.clone());
    let blobs = state.blobs.clone();
    let (id, multipart, tags) = (row.id.clone(), row.multipart.clone(), tags_of(&row.multipart_parts));
    let at = multipart_leaves(&row.multipart_parts) * LEAF as u64;
    let rest_bytes = parts_of(&row.parts).iter().map(|(n, _)| n * LEAF as u64).sum::<u64>() + row.tail.len() as u64;
    let (ingested, imported) = tokio::task::spawn_blocking(move || -> io::Result<_> {
        let staged: Box<dyn Staged> = match multipart {
            None => {
                let mut staged = blobs.stage()?;
                io::copy(&mut rest, &mut staged)?;
                staged.flush()?;
                staged
            }
            Some(upload) => {
                let sent = Sent { upload: &upload, tags, at, rest_bytes };
                Box::new(InStore::complete(blobs, &id, sent, &mut rest, size, leaves, imported.root.to_string())?)
            }
        };
        let mut staged = staged;
        let car_cid = content::car_cid_of(&imported, staged.read_back()?)?;
        Ok((files::Ingested::assembled(staged, &imported, car_cid), imported))
    })
    .await
    .map_err(AppError::internal)?
    .map_err(AppError::storage)?;
    drop(imported);
    let uploaded = files::commit(state, who, ingested, &row.name, &row.mime, None).await?;
    state.db.finish_upload(&row.id, &uploaded.cid, &uploaded.car_cid).await?;
    remove_parts(state, row).await;
    Ok(uploaded)
}

/// An upload's multipart object, completed in the store: what
/// `files::commit` stores is a copy of it made there (a second name for
/// the file locally), begun at once under the CID it will have while the
/// CAR's hash is taken from it.
struct InStore {
    blobs: std::sync::Arc<dyn BlobStore>,
    key: String,
    size: u64,
    /// The leaves' digests: what is read back is checked against them.
    leaves: Vec<u8>,
    early: Option<(String, std::thread::JoinHandle<io::Result<()>>)>,
}

/// An upload's multipart object as recorded: its id, its parts' tags, the
/// bytes they hold, and the bytes (part objects and tail) still to send.
struct Sent<'a> {
    upload: &'a str,
    tags: Vec<String>,
    at: u64,
    rest_bytes: u64,
}

impl InStore {
    /// Sends the last part (`rest_bytes` from `rest`) and completes the
    /// object (unless an earlier attempt did), then starts copying it to `cid`.
    fn complete(blobs: std::sync::Arc<dyn BlobStore>, id: &str, sent: Sent<'_>, rest: &mut dyn Read, size: u64, leaves: Vec<u8>, cid: String) -> io::Result<Self> {
        let multipart = multipart_of(&*blobs)?;
        let key = multipart_key(id);
        if !blobs.contains(&key)? {
            let Sent { upload, mut tags, at, rest_bytes } = sent;
            if rest_bytes > 0 {
                tags.extend(multipart.put_parts(&key, upload, tags.len(), at, &[rest_bytes], rest)?);
            }
            multipart.complete(&key, upload, tags)?;
        }
        let copying = {
            let (blobs, key, cid) = (blobs.clone(), key.clone(), cid.clone());
            std::thread::spawn(move || blobs.multipart().map_or(Ok(()), |m| m.copy(&key, &cid)))
        };
        Ok(Self { blobs, key, size, leaves, early: Some((cid, copying)) })
    }
}

impl Write for InStore {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "an object in the store is not written to"))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Staged for InStore {
    fn read_back(&mut self) -> io::Result<Box<dyn Read + '_>> {
        let reader = self.blobs.open_range(&self.key, 0, self.size)?;
        let inner = reader.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the completed upload is missing"))?;
        Ok(Box::new(Checked { inner, leaves: &self.leaves, next: 0, hasher: sha2::Sha256::new(), filled: 0 }))
    }

    fn read_range(&mut self, _: u64, _: u64) -> io::Result<Box<dyn Read + '_>> {
        // A resumable upload is one file, read back from its start only.
        Err(io::Error::new(io::ErrorKind::Unsupported, "a resumable upload is read back whole"))
    }

    fn commit(&mut self, key: &str) -> io::Result<()> {
        if let Some((cid, copying)) = self.early.take() {
            let copied = copying.join().map_err(|_| io::Error::other("copying the upload failed"))?;
            if cid == key {
                return copied;
            }
        }
        let multipart = multipart_of(&*self.blobs)?;
        multipart.copy(&self.key, key)
    }
}

/// Reads an object back checking each complete leaf against its recorded
/// digest: a part written by a request that had lost its hold on the
/// upload (its instance stalled past the lease) cannot end up in a file
/// under a CID it does not have.
struct Checked<'a> {
    inner: Box<dyn Read + Send>,
    leaves: &'a [u8],
    next: usize,
    hasher: sha2::Sha256,
    filled: usize,
}

impl Read for Checked<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        let mut seen = &out[..n];
        while !seen.is_empty() && (self.next + 1) * 32 <= self.leaves.len() {
            let take = (LEAF - self.filled).min(seen.len());
            self.hasher.update(&seen[..take]);
            (self.filled, seen) = (self.filled + take, &seen[take..]);
            if self.filled == LEAF {
                let digest = std::mem::take(&mut self.hasher).finalize();
                if digest.as_slice() != &self.leaves[self.next * 32..(self.next + 1) * 32] {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, format!("leaf {} of the upload does not hold the bytes received", self.next)));
                }
                (self.next, self.filled) = (self.next + 1, 0);
            }
        }
        Ok(n)
    }
}

impl Drop for InStore {
    fn drop(&mut self) {
        // Not left running past the request.
        if let Some((_, copying)) = self.early.take() {
            let _ = copying.join();
        }
    }
}

/// Removes an upload's stored bytes: its part objects and its S3
/// multipart object (failures are logged: the start-up sweep removes
/// objects of uploads that are gone, and the bucket's lifecycle rule
/// multipart uploads left unfinished).
pub(crate) async fn remove_parts(state: &Services, row: &UploadRow) {
    remove_part_objects(state, &row.id, &row.parts).await;
    if let Some(upload) = &row.multipart {
        abort_multipart(state, &row.id, upload).await;
        if let Err(e) = files::remove_object(state, &multipart_key(&row.id)).await {
            tracing::warn!(upload = %row.id, error = %e.message, "upload's multipart object not removed");
        }
    }
}

/// Removes the part objects `parts` of upload `id`.
async fn remove_part_objects(state: &Services, id: &str, parts: &str) {
    for (_, name) in parts_of(parts) {
        if let Err(e) = files::remove_object(state, &part_key(id, name)).await {
            tracing::warn!(upload = %id, part = name, error = %e.message, "upload part not removed");
        }
    }
}

/// Forgets an S3 multipart upload and the parts it holds.
async fn abort_multipart(state: &Services, id: &str, upload: &str) {
    let (blobs, key, upload) = (state.blobs.clone(), multipart_key(id), upload.to_owned());
    let aborted = tokio::task::spawn_blocking(move || blobs.multipart().map_or(Ok(()), |m| m.abort(&key, &upload))).await;
    if let Ok(Err(e)) = aborted {
        tracing::warn!(upload = %id, error = %e, "upload's multipart parts not aborted");
    }
}

/// `DELETE /uploads/{id}`: the upload and its parts are gone.
pub async fn terminate(state: &Services, who: &Principal, id: &str) -> AppResult<()> {
    owned(state, who, id).await?;
    let _lease = Lease::take(state, id, None).await?;
    let row = owned(state, who, id).await?;
    state.db.delete_upload(id).await?;
    remove_parts(state, &row).await;
    tracing::info!(upload = %id, "upload terminated");
    Ok(())
}

/// Removes what expired uploads received (their rows answer 410 for a
/// day more, then go); returns how many were cleared.
pub async fn sweep(state: &Services) -> AppResult<usize> {
    let now = state.clock.now_ms();
    let expired = state.db.expired_uploads(now, 100).await?;
    for id in &expired {
        // Not while a request works on it (its lease says so).
        let now = state.clock.now_ms();
        let token = crate::util::random_hex(8);
        if state.db.claim_upload(id, None, &token, now, now + LEASE_MS).await? != Claim::Claimed {
            continue;
        }
        if let Some(row) = state.db.upload(id).await? {
            remove_parts(state, &row).await;
        }
        state.db.clear_upload(id).await?;
        state.db.release_upload(id, &token).await?;
    }
    state.db.forget_uploads(now - FORGET_AFTER_MS).await?;
    Ok(expired.len())
}

/// How long an expired upload's row is kept, to answer 410.
const FORGET_AFTER_MS: i64 = 24 * 3600 * 1000;

/// Sweeps expired uploads every minute (and once at start).
pub async fn run_sweeper<S: std::ops::Deref<Target = Services>>(state: S) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        every.tick().await;
        match sweep(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(uploads = n, "expired uploads removed"),
            Err(e) => tracing::warn!(error = %e.message, "sweeping expired uploads failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_keys_name_their_upload() {
        let key = part_key("0123abcd", "9f0e");
        assert_eq!(key, "tus0123abcdp9f0e");
        assert_eq!(upload_of_key(&key), Some("0123abcd"));
        for other in ["bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", "tus", "tusp1", "tus12p", "tus12px", "QmX"] {
            assert_eq!(upload_of_key(other), None, "{other}");
        }
    }

    #[test]
    fn s3_parts_are_big_enough() {
        // S3: parts of at least 5 MiB but the last
        for (leaves, sizes) in [(5, vec![5]), (7, vec![7]), (8, vec![8]), (12, vec![12]), (13, vec![8, 5]), (16, vec![8, 8]), (20, vec![8, 12])] {
            assert_eq!(part_sizes(leaves, 5), sizes, "{leaves}");
        }
        // local files: any size
        assert_eq!(part_sizes(3, 0), vec![3]);
        assert_eq!(part_sizes(11, 0), vec![8, 3]);
        let many = part_sizes(1027, 5);
        assert_eq!((many.len(), many.iter().sum::<u64>(), many[127]), (128, 1027, 11));
        assert_eq!(tags_of(&format!("8:{},5:{},", hex::encode("\"a1\""), hex::encode("b2"))), vec!["\"a1\"", "b2"]);
    }

    #[test]
    fn parts_are_read_back() {
        assert!(parts_of("").is_empty());
        assert_eq!(parts_of("8:1f2e,3:9a0b,"), vec![(8, "1f2e"), (3, "9a0b")]);
    }
}
