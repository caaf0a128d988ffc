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

/// The type a folder is listed with.
pub const FOLDER_MIME: &str = "inode/directory";

/// Most files one upload may hold (a folder's).
pub const MAX_UPLOAD_FILES: usize = 10_000;

/// What the import worker is fed: a file starts, its bytes, it ends; or
/// the upload is complete.
enum Feed {
    Begin,
    Bytes(Bytes),
    End,
    Done,
}

type IntakeResult = std::io::Result<(Box<dyn Staged>, Vec<content::Imported>)>;

/// An upload of one file or several (a folder) coming in: every file's
/// bytes go one after the other into one staging object and each through
/// its own importer, on the blocking pool, with memory bounded by a few
/// chunks. Nothing is visible until `commit`; dropping it (or any error)
/// leaves nothing behind.
pub struct Intake {
    tx: mpsc::Sender<Feed>,
    worker: tokio::task::JoinHandle<IntakeResult>,
    size: u64,
    max: u64,
    room: u64,
    /// Each file's path (or name), in the order they came.
    paths: Vec<String>,
    blobs: Arc<dyn crate::store::blobs::BlobStore>,
}

impl Intake {
    pub async fn begin(state: &Services, who: &Principal) -> AppResult<Self> {
        let max = state.settings.max_file_bytes.max(0) as u64;
        let room = (state.settings.user_quota_bytes - state.db.space_used(who.user_id).await?).max(0) as u64;
        let staged = {
            let blobs = state.blobs.clone();
            tokio::task::spawn_blocking(move || blobs.stage())
        }
        .await
        .map_err(AppError::internal)?
        .map_err(AppError::storage)?;
        let (tx, rx) = mpsc::channel::<Feed>(8);
        let worker = tokio::task::spawn_blocking(move || intake_worker(staged, rx));
        Ok(Self { tx, worker, size: 0, max, room, paths: Vec::new(), blobs: state.blobs.clone() })
    }

    /// Hands one chunk to the worker; its error if it has stopped.
    async fn feed(&mut self, item: Feed) -> AppResult<()> {
        if self.tx.send(item).await.is_ok() {
            return Ok(());
        }
        // The worker failed (a full disk, the store out of reach): its error says why.
        Err(match (&mut self.worker).await {
            Ok(Err(e)) => AppError::storage(e),
            Ok(Ok(_)) => AppError::internal("import worker stopped"),
            Err(e) => AppError::internal(e),
        })
    }

    /// Streams the next file in, at `path` (the whole upload within the
    /// size limit and the account's room). A folder's paths are checked as
    /// each file begins, before its bytes are taken in (the first one once
    /// a second comes).
    pub async fn add<S>(&mut self, path: &str, mut body: S) -> AppResult<()>
    where
        S: Stream<Item = AppResult<Bytes>> + Unpin,
    {
        if path.contains('/') || !self.paths.is_empty() {
            if let [first] = self.paths.as_slice() {
                check_path(first)?;
            }
            check_path(path)?;
        }
        if self.paths.len() == MAX_UPLOAD_FILES {
            return Err(AppError::bad_request(format!("Too many files in one upload (at most {MAX_UPLOAD_FILES})")));
        }
        self.paths.push(path.to_owned());
        self.feed(Feed::Begin).await?;
        while let Some(bytes) = body.next().await {
            let bytes = bytes?;
            self.size += bytes.len() as u64;
            if self.size > self.max {
                return Err(too_large());
            }
            if self.size > self.room {
                return Err(over_quota());
            }
            self.feed(Feed::Bytes(bytes)).await?;
        }
        self.feed(Feed::End).await
    }

    /// The name of the one file given without a folder (a single name
    /// without `/`), cleaned; `None` for a folder.
    pub fn single_name(&self) -> Option<String> {
        match self.paths.as_slice() {
            [only] if !only.contains('/') => Some(clean_name(only)),
            _ => None,
        }
    }

    /// The upload as content: one file given without a folder
    /// ([`Intake::single_name`]) is that file, byte-identical to
    /// `ipfs-car pack --no-wrap`; anything else is a folder, its files at
    /// their paths (in the order they came, each checked by [`Intake::add`]),
    /// byte-identical to `ipfs-car pack <dir>`. The staged bytes are put in
    /// the folder's order first if they did not come in it.
    pub async fn finish(mut self) -> AppResult<(Ingested, Option<Folder>)> {
        let single = self.single_name().is_some();
        let paths = std::mem::take(&mut self.paths);
        self.feed(Feed::Done).await?;
        drop(self.tx);
        let (staged, imported) = self.worker.await.map_err(AppError::internal)?.map_err(AppError::storage)?;
        if imported.len() != paths.len() {
            return Err(AppError::internal("files and paths do not match"));
        }
        let blobs = self.blobs.clone();
        let work = tokio::task::spawn_blocking(move || -> Result<(Ingested, Option<Folder>), AppError> {
            let mut staged = staged;
            if single {
                let file = imported.into_iter().next().ok_or_else(|| AppError::internal("no file"))?;
                let car_cid = content::car_cid_of(&file, staged.read_back().map_err(AppError::storage)?).map_err(AppError::storage)?;
                let index = content::BlockIndex::of(&file).encode();
                return Ok((Ingested { staged, cid: file.root, car_cid, size: file.size, index }, None));
            }
            // ipfs-car's order of the files (paths as JavaScript sorts them);
            // the bytes are moved into it if they came in another.
            let mut order: Vec<usize> = (0..paths.len()).collect();
            order.sort_by(|&a, &b| content::js_order(&paths[a], &paths[b]));
            let mut at = Vec::with_capacity(imported.len());
            let mut offset = 0u64;
            for file in &imported {
                at.push(offset);
                offset += file.size;
            }
            if order.iter().enumerate().any(|(k, &i)| k != i) {
                let fresh = blobs.stage().map_err(AppError::storage)?;
                staged = reorder(staged, fresh, &order, &at, &imported).map_err(AppError::storage)?;
            }
            let mut base = 0u64;
            let mut listed = Vec::with_capacity(order.len());
            for &i in &order {
                listed.push(content::FolderFile { path: &paths[i], imported: &imported[i], base });
                base += imported[i].size;
            }
            let folder = content::folder(&listed).map_err(|e| AppError::bad_request(format!("Invalid folder: {e}")))?;
            let car_cid = content::car_cid_of(&folder, staged.read_back().map_err(AppError::storage)?).map_err(AppError::storage)?;
            let index = content::BlockIndex::of(&folder).encode();
            let info = Folder { files: paths.len() as i64, name: common_folder(&paths) };
            Ok((Ingested { staged, cid: folder.root, car_cid, size: folder.size, index }, Some(info)))
        });
        work.await.map_err(AppError::internal)?
    }
}

/// A folder upload: how many files, and the folder they all sit in (its name), if one.
#[derive(Debug, Clone)]
pub struct Folder {
    pub files: i64,
    pub name: Option<String>,
}

/// The last part of the deepest folder every path is in.
fn common_folder(paths: &[String]) -> Option<String> {
    let split: Vec<Vec<&str>> = paths.iter().map(|p| p.split('/').collect()).collect();
    let depth = content::common_depth(split.iter().map(Vec::as_slice));
    depth.checked_sub(1).map(|last| split[0][last].to_owned())
}

/// Names a path of a folder upload may have at most (its folders and the
/// file): deeper folders could not be served as a CAR.
pub const MAX_PATH_NAMES: usize = 40;

/// One path of a folder upload: relative, no control characters, at most
/// 4096 bytes, names of at most 255 bytes, at most [`MAX_PATH_NAMES`] deep.
fn check_path(path: &str) -> AppResult<()> {
    let bad = |why: &str| AppError::bad_request(format!("Invalid file path {:?}: {why}", path.chars().take(100).collect::<String>()));
    if path.chars().any(char::is_control) {
        return Err(bad("control characters"));
    }
    if path.len() > 4096 {
        return Err(bad("longer than 4096 bytes"));
    }
    let parts = content::path_parts(path).map_err(|_| bad("not a relative path of a file"))?;
    if parts.iter().any(|p| p.len() > 255) {
        return Err(bad("a name longer than 255 bytes"));
    }
    if parts.len() > MAX_PATH_NAMES {
        return Err(bad(&format!("deeper than {MAX_PATH_NAMES} names (its folders and the file)")));
    }
    Ok(())
}

/// `fresh` (a new staging object) with the files' bytes (file `i` at
/// `at[i]` in `staged`) in `order`.
fn reorder(
    mut staged: Box<dyn Staged>,
    mut fresh: Box<dyn Staged>,
    order: &[usize],
    at: &[u64],
    files: &[content::Imported],
) -> std::io::Result<Box<dyn Staged>> {
    for &i in order {
        let mut part = staged.read_range(at[i], files[i].size)?;
        let copied = std::io::copy(&mut part, &mut fresh)?;
        if copied != files[i].size {
            return Err(std::io::Error::other("a staged file is cut short"));
        }
    }
    fresh.flush()?;
    Ok(fresh)
}

fn intake_worker(mut staged: Box<dyn Staged>, mut rx: mpsc::Receiver<Feed>) -> IntakeResult {
    let mut done = Vec::new();
    let mut current: Option<Importer> = None;
    loop {
        match rx.blocking_recv() {
            Some(Feed::Begin) => current = Some(Importer::new(Params::IPFS_CAR, true)),
            Some(Feed::Bytes(bytes)) => {
                let importer = current.as_mut().ok_or_else(|| std::io::Error::other("bytes outside a file"))?;
                staged.write_all(&bytes)?;
                importer.write(&bytes, &mut |_| {});
            }
            Some(Feed::End) => {
                let importer = current.take().ok_or_else(|| std::io::Error::other("a file ended twice"))?;
                done.push(importer.finish(&mut |_| {}));
            }
            Some(Feed::Done) => break,
            None => return Err(std::io::Error::other("upload aborted")),
        }
    }
    staged.flush()?;
    Ok((staged, done))
}

/// Makes an ingested file visible: the object is put in place (without any
/// lock: to a bucket that can take minutes), then, under the CID's lock,
/// checked to be still there (a delete of the same content, or another
/// instance's orphan sweep, may have removed it meanwhile: it is put back)
/// and the rows commit (quota checked in the same transaction); only then
/// is the upload acknowledged.
pub async fn commit(state: &Services, who: &Principal, ingested: Ingested, name: &str, mime: &str, folder: Option<&Folder>) -> AppResult<Uploaded> {
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
        folder_files: folder.map(|f| f.files),
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
        let FileRow { id, name, cid, car_cid, mime, size, uploaded_at, replicas, public: _, folder_files } = r;
        Self { id, name, cid, car_cid, mime, size, uploaded_at, replicas, wanted: 0, share_url: None, folder_files }
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
    let token = state.tokens.issue_download(&who.token_account(), &cid, None, state.settings.download_link_ttl_secs)?;
    // A folder has no bytes of its own: its link gives it as a CAR.
    let format = if file.folder_files.is_some() { "&format=car" } else { "" };
    Ok(format!(
        "{}/ipfs/{cid}?filename={}&token={token}{format}",
        public_base(state),
        crate::util::percent_encode(&file.name)
    ))
}

/// A signed link to the file at `path` (names, `/`-separated) in the
/// account's folder `cid`; with `car`, to that folder (or file) as a CAR.
/// It opens that path only: not the rest of the folder, nor its blocks.
pub async fn download_link_at(state: &Services, who: &Principal, cid: &str, path: &str, car: bool) -> AppResult<String> {
    let cid = parse_cid(cid)?.to_string();
    state.db.file_by_cid(who.user_id, &cid).await?.ok_or_else(not_stored)?;
    // The link opens that path only (the whole folder when it is its root).
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let only = (!parts.is_empty()).then(|| parts.join("/"));
    let token = state.tokens.issue_download(&who.token_account(), &cid, only.as_deref(), state.settings.download_link_ttl_secs)?;
    let encoded: Vec<String> = parts.iter().map(|p| crate::util::percent_encode(p)).collect();
    let rest = if encoded.is_empty() { String::new() } else { format!("/{}", encoded.join("/")) };
    let format = if car { "&format=car" } else { "" };
    Ok(format!("{}/ipfs/{cid}{rest}?token={token}{format}", public_base(state)))
}

/// The entries of the account's folder `cid` at `path`: name, bytes, and
/// whether each is a folder (names in the order the folder lists them).
pub async fn folder_entries(state: &Services, who: &Principal, cid: &str, path: &str) -> AppResult<(FileRow, Vec<(String, u64, bool)>)> {
    let cid = parse_cid(cid)?.to_string();
    let file = state.db.file_by_cid(who.user_id, &cid).await?.ok_or_else(not_stored)?;
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let located = super::download::locate_object(state, &cid, file.size.max(0) as u64, None, &parts).await?;
    if !located.directory {
        return Err(AppError::bad_request("Not a folder"));
    }
    let entries = super::download::entries(&located)?.into_iter().map(|(name, _, size, dir)| (name, size, dir)).collect();
    Ok((file, entries))
}

/// What a valid download link opens.
pub struct Download {
    pub owner_id: i64,
    pub file: FileRow,
    /// A block of the file's DAG other than its root, when one was asked for.
    pub block: Option<ContentCid>,
    /// The only path in the folder the link opens, if it names one.
    pub path: Option<String>,
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
    Ok(Download { owner_id, file, block, path: claims.path })
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

/// Shared content at `cid`, served without a token to `client` (within
/// the shared content's request budgets, the client's and everyone's: 429
/// past them): a shared file, or with `any_block` any block of a shared
/// file's DAG; `None` when nobody shares it.
pub async fn open_public(state: &Services, cid: &str, any_block: bool, client: &str) -> AppResult<Option<Download>> {
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
    // The client's own budget first: past it, it is refused without
    // counting (or writing) anything more, so one client cannot use up
    // what everyone shares.
    let mine = format!("share:{}:{client}", file.cid);
    // At least enough for the client to fetch the whole DAG block by block
    // twice (a trustless client asks for each block by itself): about one
    // block per MiB and a root, one or two more per file of a folder.
    let blocks = (file.size.max(0) as u64 >> 20) + 1 + 2 * file.folder_files.unwrap_or(0).max(0) as u64;
    let per_client = (state.settings.share_requests_per_client.max(0) as u64).max(2 * blocks).min(u64::from(u32::MAX)) as u32;
    if state.throttle.is_blocked(&mine, per_client).await? || state.throttle.over_budget(&[(&mine, per_client)]).await? {
        return Err(AppError::new(429, "You asked for this shared file too often: try again later"));
    }
    let budget = u32::try_from(state.settings.share_requests_per_window).unwrap_or(u32::MAX);
    if state.throttle.over_budget(&[(&format!("share:{}", file.cid), budget)]).await? {
        return Err(AppError::new(429, "This shared file is asked for too often: try again later"));
    }
    Ok(Some(Download { owner_id, file, block, path: None }))
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
