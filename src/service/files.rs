//! Files: uploads (streamed, content-addressed, atomic), the file list,
//! signed download links, deletion.

use super::Principal;
use crate::content::{self, ContentCid, Importer, Params};
use crate::error::{AppError, AppResult, ErrorKind};
use super::Services;
use crate::store::blobs::Staged;
use crate::store::db::{DbLock, FileRow, InsertFile, NewFile};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use tokio::sync::{mpsc, Mutex, OwnedMutexGuard};

/// Serialises the row commit and the removal of the same content, so a
/// delete cannot remove an object that a concurrent upload is about to
/// reference. One lock per CID in use (unrelated CIDs never wait for each
/// other), held for a check and a transaction, never for a transfer.
#[derive(Default)]
pub struct CidLocks(std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>);

/// Both locks on a CID: this instance's and, on a shared database, the
/// database-wide one (see [`crate::store::Db::lock_cid`]).
pub struct CidGuard<'a> {
    _db: Option<DbLock>,
    local: Option<OwnedMutexGuard<()>>,
    locks: &'a CidLocks,
    cid: String,
}

impl CidLocks {
    /// Locks `cid` for this instance, then for every instance on the database.
    pub async fn lock<'a>(&'a self, db: &crate::store::Db, cid: &str) -> AppResult<CidGuard<'a>> {
        let mutex = self.0.lock().unwrap_or_else(|e| e.into_inner()).entry(cid.to_owned()).or_default().clone();
        let mut guard = CidGuard { _db: None, local: None, locks: self, cid: cid.to_owned() };
        guard.local = Some(mutex.lock_owned().await);
        guard._db = db.lock_cid(cid).await?;
        Ok(guard)
    }
}

impl Drop for CidGuard<'_> {
    fn drop(&mut self) {
        let mut map = self.locks.0.lock().unwrap_or_else(|e| e.into_inner());
        self.local = None;
        // Nobody else holds or waits for this CID's lock: forget it.
        if map.get(&self.cid).is_some_and(|m| Arc::strong_count(m) == 1) {
            map.remove(&self.cid);
        }
    }
}

/// Content received, imported and staged, not yet visible to anyone.
pub struct Ingested {
    staged: Box<dyn Staged>,
    pub cid: ContentCid,
    pub car_cid: ContentCid,
    pub size: u64,
    /// The encoded block index, stored with the blob row.
    index: Vec<u8>,
}

impl Ingested {
    /// A file whose bytes were staged and whose tree was built elsewhere
    /// (a resumable upload's parts, put together).
    pub fn assembled(staged: Box<dyn Staged>, imported: &content::Imported, car_cid: ContentCid) -> Self {
        let index = content::BlockIndex::of(imported).encode();
        Self { staged, cid: imported.root.clone(), car_cid, size: imported.size, index }
    }
}

/// What an accepted upload answers.
#[derive(Debug, Clone)]
pub struct Uploaded {
    pub cid: String,
    pub car_cid: String,
    pub size: u64,
}

pub(crate) fn too_large() -> AppError {
    AppError::too_large("File too large")
}

pub(crate) fn over_quota() -> AppError {
    AppError::too_large("Storage quota exceeded").of_kind(ErrorKind::Quota)
}

/// Streams a file's bytes into the importer and a staging object, on the
/// blocking pool, with memory bounded by a few chunks. Nothing is visible
/// until `commit`; dropping the result (or any error) leaves nothing behind.
pub async fn ingest<S>(state: &Services, who: &Principal, mut body: S) -> AppResult<Ingested>
where
    S: Stream<Item = AppResult<Bytes>> + Unpin,
{
    let max = state.settings.max_file_bytes.max(0) as u64;
    let room = (state.settings.user_quota_bytes - state.db.space_used(who.user_id).await?).max(0) as u64;
    let (tx, rx) = mpsc::channel::<Option<Bytes>>(8);
    let staged = {
        let blobs = state.blobs.clone();
        tokio::task::spawn_blocking(move || blobs.stage())
    }
    .await
    .map_err(AppError::internal)?
    .map_err(AppError::storage)?;
    let mut worker = tokio::task::spawn_blocking(move || import_worker(staged, rx));

    let mut size: u64 = 0;
    let mut worker_ended = false;
    let outcome = loop {
        match body.next().await {
            None => break Ok(()),
            Some(Err(e)) => break Err(e),
            Some(Ok(bytes)) => {
                size += bytes.len() as u64;
                if size > max {
                    break Err(too_large());
                }
                if size > room {
                    break Err(over_quota());
                }
                if tx.send(Some(bytes)).await.is_err() {
                    // The worker failed (a full disk, the store out of reach): its error says why.
                    worker_ended = true;
                    break Err(match (&mut worker).await {
                        Ok(Err(e)) => AppError::storage(e),
                        Ok(Ok(_)) => AppError::internal("import worker stopped"),
                        Err(e) => AppError::internal(e),
                    });
                }
            }
        }
    };
    match outcome {
        Ok(()) => {
            let _ = tx.send(None).await;
            drop(tx);
            let (staged, imported, car_cid) = worker.await.map_err(AppError::internal)?.map_err(AppError::storage)?;
            let index = content::BlockIndex::of(&imported).encode();
            Ok(Ingested { staged, cid: imported.root, car_cid, size: imported.size, index })
        }
        Err(e) => {
            drop(tx); // the worker sees the channel close without an end mark and discards
            if !worker_ended {
                let _ = worker.await;
            }
            Err(e)
        }
    }
}

type WorkerResult = std::io::Result<(Box<dyn Staged>, content::Imported, ContentCid)>;

fn import_worker(mut staged: Box<dyn Staged>, mut rx: mpsc::Receiver<Option<Bytes>>) -> WorkerResult {
    let mut importer = Importer::new(Params::IPFS_CAR, true);
    loop {
        match rx.blocking_recv() {
            Some(Some(bytes)) => {
                staged.write_all(&bytes)?;
                importer.write(&bytes, &mut |_| {});
            }
            Some(None) => break,
            None => return Err(std::io::Error::other("upload aborted")),
        }
    }
    staged.flush()?;
    let imported = importer.finish(&mut |_| {});
    let car_cid = content::car_cid_of(&imported, staged.read_back()?)?;
    Ok((staged, imported, car_cid))
}

/// Makes an ingested file visible: the object is put in place (without any
/// lock: to a bucket that can take minutes), then, under the CID's lock,
/// checked to be still there (a delete of the same content, or another
/// instance's orphan sweep, may have removed it meanwhile: it is put back)
/// and the rows commit (quota checked in the same transaction); only then
/// is the upload acknowledged.
pub async fn commit(state: &Services, who: &Principal, ingested: Ingested, name: &str, mime: &str) -> AppResult<Uploaded> {
    let Ingested { mut staged, cid, car_cid, size, index } = ingested;
    let cid = cid.to_string();
    let car_cid = car_cid.to_string();
    let mut attempts = 0;
    let _guard = loop {
        staged = put_object(staged, &cid).await?;
        let guard = state.cid_locks.lock(&state.db, &cid).await?;
        if object_exists(state, &cid).await? {
            break guard;
        }
        attempts += 1;
        if attempts == 3 {
            return Err(AppError::internal(format!("object {cid} was removed three times while it was stored")));
        }
    };
    let row = NewFile {
        user_id: who.user_id,
        cid: &cid,
        car_cid: &car_cid,
        name,
        mime,
        size: size as i64,
        now: state.clock.now_ms(),
        block_index: &index,
    };
    let inserted = match state.db.insert_file(&row, state.settings.user_quota_bytes).await {
        Ok(inserted) => inserted,
        Err(e) => {
            // No row refers to the object unless another upload's does: do
            // not leave it behind (the account may have just been deleted).
            if matches!(state.db.blob_exists(&cid).await, Ok(false)) {
                if let Err(cleanup) = remove_object(state, &cid).await {
                    tracing::error!(%cid, error = %cleanup.message, "could not remove an object whose rows did not commit");
                }
            }
            return Err(e.into());
        }
    };
    match inserted {
        InsertFile::Stored => {
            tracing::info!(user_id = who.user_id, %cid, size, "file stored");
            Ok(Uploaded { cid, car_cid, size })
        }
        InsertFile::OverQuota | InsertFile::NoAccount => {
            if !state.db.blob_exists(&cid).await? {
                remove_object(state, &cid).await?;
            }
            Err(if matches!(inserted, InsertFile::OverQuota) { over_quota() } else { AppError::token_invalid() })
        }
    }
}

/// Puts the staged bytes in place under `key`; hands the staged copy back
/// (it is kept until dropped, for putting back).
pub(crate) async fn put_object(mut staged: Box<dyn Staged>, key: &str) -> AppResult<Box<dyn Staged>> {
    let key = key.to_owned();
    let (staged, done) = tokio::task::spawn_blocking(move || {
        let done = staged.commit(&key);
        (staged, done)
    })
    .await
    .map_err(AppError::internal)?;
    done.map_err(AppError::storage)?;
    Ok(staged)
}

async fn object_exists(state: &Services, key: &str) -> AppResult<bool> {
    let blobs = state.blobs.clone();
    let key = key.to_owned();
    tokio::task::spawn_blocking(move || blobs.contains(&key)).await.map_err(AppError::internal)?.map_err(AppError::storage)
}

/// Removes the objects of CIDs whose blob rows are gone, each under its
/// lock and only if no upload stored it again meanwhile.
pub async fn remove_unreferenced(state: &Services, cids: &[String]) -> AppResult<()> {
    for cid in cids {
        let _guard = state.cid_locks.lock(&state.db, cid).await?;
        if !state.db.blob_exists(cid).await? {
            remove_object(state, cid).await?;
        }
    }
    Ok(())
}

pub(crate) async fn remove_object(state: &Services, cid: &str) -> AppResult<()> {
    let blobs = state.blobs.clone();
    let key = cid.to_owned();
    tokio::task::spawn_blocking(move || blobs.remove(&key)).await.map_err(AppError::internal)?.map_err(AppError::storage)?;
    Ok(())
}

/// A stored file as the pages show it (rows become models here, in the
/// service, so the store knows nothing of the models).
impl From<FileRow> for crate::model::FileView {
    fn from(r: FileRow) -> Self {
        let FileRow { id, name, cid, car_cid, mime, size, uploaded_at, replicas, public: _ } = r;
        Self { id, name, cid, car_cid, mime, size, uploaded_at, replicas, wanted: 0, share_url: None }
    }
}

/// A CID from a request: present, syntactically valid.
pub fn parse_cid(text: &str) -> AppResult<ContentCid> {
    if text.trim().is_empty() {
        return Err(AppError::missing_field("cid"));
    }
    content::parse_cid(text).map_err(|e| AppError::bad_request(format!("Invalid CID: {e}")))
}

pub(super) fn not_stored() -> AppError {
    AppError::not_found("This file is no longer in your account. Reload the page to see your files.").of_kind(ErrorKind::NotStored)
}

pub async fn list(state: &Services, who: &Principal) -> AppResult<Vec<FileRow>> {
    Ok(state.db.list_files(who.user_id).await?)
}

/// Deletes the account's files with this CID; the object goes once no
/// account references it. Links handed out for it stop working.
pub async fn delete(state: &Services, who: &Principal, cid: &str) -> AppResult<()> {
    let cid = parse_cid(cid)?.to_string();
    let _guard = state.cid_locks.lock(&state.db, &cid).await?;
    match state.db.delete_files(who.user_id, &cid).await? {
        None => Err(not_stored()),
        Some(unreferenced) => {
            if unreferenced {
                remove_object(state, &cid).await?;
            }
            Ok(())
        }
    }
}

/// The base of links handed out: `public_url`, else where the server listens.
pub fn public_base(state: &Services) -> String {
    let configured = state.settings.public_url.trim_end_matches('/');
    if configured.is_empty() {
        format!("http://{}", state.listen_addr)
    } else {
        configured.to_owned()
    }
}

/// A signed, expiring, absolute link to a file the account stores.
pub async fn download_link(state: &Services, who: &Principal, cid: &str) -> AppResult<String> {
    let cid = parse_cid(cid)?.to_string();
    let file = state.db.file_by_cid(who.user_id, &cid).await?.ok_or_else(not_stored)?;
    let token = state.tokens.issue_download(&who.token_account(), &cid, state.settings.download_link_ttl_secs)?;
    Ok(format!(
        "{}/ipfs/{cid}?filename={}&token={token}",
        public_base(state),
        crate::util::percent_encode(&file.name)
    ))
}

/// What a valid download link opens.
pub struct Download {
    pub owner_id: i64,
    pub file: FileRow,
    /// A block of the file's DAG other than its root, when one was asked for.
    pub block: Option<ContentCid>,
}

/// Checks a download link's token against the CID it names and that the
/// owner still stores the file.
/// With `any_block`, the link of a file also opens every block of the
/// file's DAG (as raw blocks, for trustless clients that fetch a DAG block
/// by block): `cid` may then name one of them.
pub async fn open_download(state: &Services, cid: &str, token: Option<&str>, any_block: bool) -> AppResult<Download> {
    let forbidden = || AppError::forbidden("Download link is invalid or has expired");
    let asked = parse_cid(cid)?;
    let claims = state.tokens.decode_download(token.ok_or_else(forbidden)?).map_err(|_| forbidden())?;
    let block = match claims.cid == asked.to_string() {
        true => None,
        false if any_block => Some(asked),
        false => return Err(forbidden()),
    };
    let cid = claims.cid.clone();
    let owner_id: i64 = claims.sub.parse().map_err(|_| forbidden())?;
    // The link's account must still be the one it was made for, with the
    // same password (a change or reset revokes the links handed out before).
    let owner = state.db.token_subject(owner_id, "").await?.ok_or_else(forbidden)?;
    let same_account = !claims.non.is_empty() && crate::util::constant_time_eq(owner.nonce.as_bytes(), claims.non.as_bytes());
    if !same_account || owner.token_version != claims.ver {
        return Err(forbidden());
    }
    let file = state.db.file_by_cid(owner_id, &cid).await?.ok_or_else(|| AppError::not_found("File not found"))?;
    Ok(Download { owner_id, file, block })
}

/// `POST /share_file`: the account's files of `cid` are served to anyone
/// at `/ipfs/<cid>` (or no longer are). Sharing is of the content: anyone
/// who asks for the CID gets the bytes, with this account's name and type
/// of the file; another account's files of the same content stay private.
/// Returns the CID and, while shared, the share link.
pub async fn share(state: &Services, who: &Principal, cid: &str, public: bool) -> AppResult<(String, Option<String>)> {
    who.require_user()?;
    let cid = parse_cid(cid)?.to_string();
    if public {
        // Every block of the DAG first, so the moment the file is shared
        // each of them is served by itself too (`/ipfs/<block>`).
        let file = state.db.file_by_cid(who.user_id, &cid).await?.ok_or_else(|| AppError::not_found("File not found"))?;
        let index = super::download::index_of(state, &cid, file.size.max(0) as u64).await?;
        let blocks: Vec<String> = index.blocks().iter().map(|b| b.cid().to_string()).collect();
        if !state.db.record_dag_blocks(&cid, &blocks).await? {
            return Err(AppError::not_found("File not found"));
        }
    }
    if state.db.set_public(who.user_id, &cid, public).await? == 0 {
        return Err(AppError::not_found("File not found"));
    }
    tracing::info!(user_id = who.user_id, %cid, public, "file sharing set");
    let url = public.then(|| share_url(state, &cid));
    Ok((cid, url))
}

/// Records the blocks of content shared before they were recorded when
/// sharing was turned on (migration 0015), so each is served by itself.
/// Runs once at start-up; a failure is logged and tried again next start.
pub async fn record_shared_blocks(state: impl std::ops::Deref<Target = Services>) {
    let roots = match state.db.shared_roots_unrecorded().await {
        Ok(roots) => roots,
        Err(e) => return tracing::error!(error = %e, "cannot list shared content"),
    };
    for (root, size) in roots {
        let recorded = match super::download::index_of(&state, &root, size.max(0) as u64).await {
            Ok(index) => {
                let blocks: Vec<String> = index.blocks().iter().map(|b| b.cid().to_string()).collect();
                state.db.record_dag_blocks(&root, &blocks).await.map_err(AppError::from)
            }
            Err(e) => Err(e),
        };
        match recorded {
            Ok(_) => tracing::info!(cid = %root, "blocks of shared content recorded"),
            Err(e) => tracing::error!(cid = %root, error = %e.message, "cannot record the blocks of shared content"),
        }
    }
}

/// The link a shared file is served at.
pub fn share_url(state: &Services, cid: &str) -> String {
    format!("{}/ipfs/{cid}", public_base(state))
}

/// Shared content at `cid`, served without a token (within the shared
/// content's request budget: 429 past it): a shared file, or with
/// `any_block` any block of a shared file's DAG; `None` when nobody shares it.
pub async fn open_public(state: &Services, cid: &str, any_block: bool) -> AppResult<Option<Download>> {
    let asked = parse_cid(cid)?;
    let cid = asked.to_string();
    let (root, block) = match state.db.public_file(&cid).await? {
        Some(found) => (found, None),
        None if any_block => {
            let Some(root) = state.db.shared_root_of(&cid).await? else { return Ok(None) };
            match state.db.public_file(&root).await? {
                Some(found) => (found, Some(asked)),
                None => return Ok(None),
            }
        }
        None => return Ok(None),
    };
    let (owner_id, file) = root;
    let budget = u32::try_from(state.settings.share_requests_per_window).unwrap_or(u32::MAX);
    if state.throttle.over_budget(&[(&format!("share:{}", file.cid), budget)]).await? {
        return Err(AppError::new(429, "This shared file is asked for too often: try again later"));
    }
    Ok(Some(Download { owner_id, file, block }))
}

/// A file name as stored: no directories, no control characters, at most
/// 255 characters; empty when nothing usable is left.
pub fn clean_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base.chars().filter(|c| !c.is_control()).take(255).collect();
    cleaned.trim().to_owned()
}

/// The MIME type to store: what the client declared, unless that says
/// nothing (`application/octet-stream`), then a guess from the name.
pub fn mime_for(declared: Option<&str>, name: &str) -> String {
    match declared.map(str::trim) {
        Some(m) if !m.is_empty() && m != "application/octet-stream" && m.len() <= 255 && m.contains('/') => m.to_owned(),
        _ => mime_guess::from_path(name).first_or_octet_stream().essence_str().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_types() {
        assert_eq!(clean_name("C:\\fakepath\\report.pdf"), "report.pdf");
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("a\u{0}b\n.txt"), "ab.txt");
        assert_eq!(clean_name("dir/"), "");
        assert_eq!(mime_for(None, "x.png"), "image/png");
        assert_eq!(mime_for(Some("application/octet-stream"), "x.txt"), "text/plain");
        assert_eq!(mime_for(Some("text/csv"), "x.bin"), "text/csv");
        assert_eq!(mime_for(None, "noext"), "application/octet-stream");
    }
}
