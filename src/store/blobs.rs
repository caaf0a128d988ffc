//! Object storage for file content, keyed by root CID. Blocking calls: run
//! them on the blocking pool. Two implementations: files under the data
//! directory (here) and an S3-compatible bucket ([`super::s3`]).
//!
//! An object appears atomically: bytes go to a staging file, which is
//! fsynced and then renamed into place (and the directory fsynced). A crash
//! leaves either nothing visible or a complete object; staging files left
//! by a crash are removed by `sweep_staging` at start-up.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// An object being written; dropping it without `commit` discards it.
pub trait Staged: Write + Send {
    /// Reads back what was written so far, from the start.
    fn read_back(&mut self) -> io::Result<Box<dyn Read + '_>>;
    /// Reads back `len` bytes written from `from`.
    fn read_range(&mut self, from: u64, len: u64) -> io::Result<Box<dyn Read + '_>>;
    /// Makes the bytes durable and visible under `key` (if an object with
    /// that key exists already, it is identical content and stays). The
    /// staged bytes are kept until this is dropped, so it can be done again
    /// if the object was removed meanwhile.
    fn commit(&mut self, key: &str) -> io::Result<()>;
}

pub trait BlobStore: Send + Sync {
    fn stage(&self) -> io::Result<Box<dyn Staged>>;
    /// A reader of `len` bytes from `start`; `None` when there is no such object.
    fn open_range(&self, key: &str, start: u64, len: u64) -> io::Result<Option<Box<dyn Read + Send>>>;
    fn contains(&self, key: &str) -> io::Result<bool>;
    /// Removes the object; `false` if it was not there.
    fn remove(&self, key: &str) -> io::Result<bool>;
    /// Removes staging leftovers of an earlier run; returns how many.
    fn sweep_staging(&self) -> io::Result<usize>;
    /// Every stored key (for removing objects no row refers to).
    fn keys(&self) -> io::Result<Vec<String>>;
    /// Multipart objects, put together where they are stored (S3); `None`
    /// when the store has no such thing (local files).
    fn multipart(&self) -> Option<&dyn Multipart> {
        None
    }
}

/// An object sent in parts over many requests (each part but the last at
/// least [`Multipart::min_part`] bytes), put together in the store.
pub trait Multipart: Send + Sync {
    /// The least size of a part that is not the last.
    fn min_part(&self) -> u64;
    /// Starts an object under `key`; returns the id its parts are sent under.
    fn start(&self, key: &str) -> io::Result<String>;
    /// Sends parts of the sizes `sizes`, read in order from `data`, as
    /// parts `first`, `first + 1`, ... (counted from 0), the first starting
    /// at byte `at` of the object; returns their tags.
    fn put_parts(&self, key: &str, upload: &str, first: usize, at: u64, sizes: &[u64], data: &mut dyn Read) -> io::Result<Vec<String>>;
    /// Puts the parts (every part from 0, their tags in order) together: the
    /// object appears under `key`.
    fn complete(&self, key: &str, upload: &str, tags: Vec<String>) -> io::Result<()>;
    /// Forgets an unfinished object and its parts.
    fn abort(&self, key: &str, upload: &str) -> io::Result<()>;
    /// Copies object `from` to `to` inside the store (if `to` exists already,
    /// it is identical content and stays).
    fn copy(&self, from: &str, to: &str) -> io::Result<()>;
    /// Whether bytes can be written straight into an unfinished object ([`Multipart::writer`]).
    fn in_place(&self) -> bool {
        false
    }
    /// A writer straight into the unfinished object from byte `at`, its
    /// bytes one part once synced (only when [`Multipart::in_place`]).
    fn writer(&self, _key: &str, _upload: &str, _at: u64) -> io::Result<Box<dyn PartWriter>> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "this store takes parts only whole"))
    }
    /// Unfinished objects the store can list, as (key, upload): for the
    /// start-up sweep (an S3 bucket's are left to its lifecycle rule).
    fn unfinished(&self) -> io::Result<Vec<(String, String)>> {
        Ok(Vec::new())
    }
}

/// Bytes written into an unfinished object where they belong.
pub trait PartWriter: Write + Send {
    /// Makes what was written durable.
    fn sync(&mut self) -> io::Result<()>;
}

/// The least size of a multipart object's part that is not the last (S3's).
pub const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;

/// Objects as files: `<root>/objects/<last 2 chars of key>/<key>`, staging
/// in `<root>/staging/`, unfinished multipart objects in
/// `<root>/multipart/<key>.<upload>` (one file, parts written in place).
pub struct LocalBlobs {
    objects: PathBuf,
    staging: PathBuf,
    multipart: PathBuf,
}

/// A key is a CID string: letters and digits only, so it is a safe file name.
pub(crate) fn check_key(key: &str) -> io::Result<()> {
    if !key.is_empty() && key.len() <= 128 && key.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::InvalidInput, "invalid object key"))
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl LocalBlobs {
    pub fn open(root: &Path) -> io::Result<Self> {
        let objects = root.join("objects");
        let staging = root.join("staging");
        let multipart = root.join("multipart");
        fs::create_dir_all(&objects)?;
        fs::create_dir_all(&staging)?;
        fs::create_dir_all(&multipart)?;
        Ok(Self { objects, staging, multipart })
    }

    /// The file of an unfinished multipart object.
    fn unfinished_path(&self, key: &str, upload: &str) -> io::Result<PathBuf> {
        check_key(key)?;
        check_key(upload)?;
        Ok(self.multipart.join(format!("{key}.{upload}")))
    }

    fn link(&self, from: &Path, key: &str) -> io::Result<()> {
        link_object(&self.objects, from, key)
    }

    fn path(&self, key: &str) -> io::Result<PathBuf> {
        object_file(&self.objects, key)
    }
}

/// The file of object `key` under `objects`.
fn object_file(objects: &Path, key: &str) -> io::Result<PathBuf> {
    check_key(key)?;
    Ok(objects.join(&key[key.len().saturating_sub(2)..]).join(key))
}

/// Gives `from` (a durable file on this file system) the name of object
/// `key`, atomically, unless it has one (identical content): a second name
/// for the same file, so `from` stays until removed.
fn link_object(objects: &Path, from: &Path, key: &str) -> io::Result<()> {
    let target = object_file(objects, key)?;
    if target.exists() {
        return Ok(());
    }
    let shard_dir = target.parent().ok_or_else(|| io::Error::other("object path without a directory"))?;
    fs::create_dir_all(shard_dir)?;
    match fs::hard_link(from, &target) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", from.display()))),
    }
    sync_dir(shard_dir)
}

/// A multipart object's file, written in place.
struct LocalPartWriter {
    file: io::BufWriter<File>,
}

impl Write for LocalPartWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl PartWriter for LocalPartWriter {
    fn sync(&mut self) -> io::Result<()> {
        self.file.flush()?;
        self.file.get_ref().sync_data()
    }
}

/// Multipart objects as one file each, every part written at its place:
/// completing one is a rename, copying one a second name (hard link).
impl Multipart for LocalBlobs {
    fn min_part(&self) -> u64 {
        0
    }

    fn start(&self, key: &str) -> io::Result<String> {
        let upload = crate::util::random_hex(16);
        File::create_new(self.unfinished_path(key, &upload)?)?;
        sync_dir(&self.multipart)?;
        Ok(upload)
    }

    fn put_parts(&self, key: &str, upload: &str, _first: usize, at: u64, sizes: &[u64], data: &mut dyn Read) -> io::Result<Vec<String>> {
        let mut writer = self.writer(key, upload, at)?;
        let total = sizes.iter().sum::<u64>();
        if io::copy(&mut data.take(total), &mut writer)? != total {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "a part is shorter than its size"));
        }
        writer.sync()?;
        Ok(sizes.iter().map(|s| s.to_string()).collect())
    }

    fn complete(&self, key: &str, upload: &str, tags: Vec<String>) -> io::Result<()> {
        let from = self.unfinished_path(key, upload)?;
        // A part's tag is its size; bytes past them (written by a request
        // that did not count) are cut.
        let size = tags.iter().map(|t| t.parse::<u64>().map_err(io::Error::other)).sum::<io::Result<u64>>()?;
        let file = OpenOptions::new().write(true).open(&from)?;
        file.set_len(size)?;
        file.sync_all()?;
        self.link(&from, key)?;
        fs::remove_file(&from)?;
        sync_dir(&self.multipart)
    }

    fn abort(&self, key: &str, upload: &str) -> io::Result<()> {
        match fs::remove_file(self.unfinished_path(key, upload)?) {
            Ok(()) => sync_dir(&self.multipart),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn copy(&self, from: &str, to: &str) -> io::Result<()> {
        self.link(&self.path(from)?, to)
    }

    fn in_place(&self) -> bool {
        true
    }

    fn writer(&self, key: &str, upload: &str, at: u64) -> io::Result<Box<dyn PartWriter>> {
        let mut file = OpenOptions::new().write(true).open(self.unfinished_path(key, upload)?)?;
        file.seek(SeekFrom::Start(at))?;
        Ok(Box::new(LocalPartWriter { file: io::BufWriter::with_capacity(1 << 20, file) }))
    }

    fn unfinished(&self) -> io::Result<Vec<(String, String)>> {
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.multipart)? {
            if let Some((key, upload)) = entry?.file_name().to_str().and_then(|n| n.split_once('.')) {
                found.push((key.to_owned(), upload.to_owned()));
            }
        }
        Ok(found)
    }
}

/// A staging file under a staging directory; removed on drop.
pub(crate) struct StagingFile {
    file: File,
    path: PathBuf,
}

impl StagingFile {
    pub(crate) fn create(dir: &Path) -> io::Result<Self> {
        let path = dir.join(format!("{}.part", crate::util::random_hex(16)));
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
        Ok(Self { file, path })
    }

    /// A reader of everything written so far, from the start.
    pub(crate) fn reader(&self) -> io::Result<impl Read + Send + 'static> {
        Ok(io::BufReader::with_capacity(1 << 20, File::open(&self.path)?))
    }

    /// `len` bytes from `from`.
    pub(crate) fn range_reader(&self, from: u64, len: u64) -> io::Result<impl Read + Send + 'static> {
        let mut file = File::open(&self.path)?;
        io::Seek::seek(&mut file, io::SeekFrom::Start(from))?;
        Ok(io::BufReader::with_capacity(1 << 20, file).take(len))
    }
}

impl StagingFile {
    /// The error with this file's path, its kind kept (a full disk stays `StorageFull`).
    pub(crate) fn at_path(&self, e: io::Error) -> io::Error {
        io::Error::new(e.kind(), format!("{}: {e}", self.path.display()))
    }
}

impl Write for StagingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf).map_err(|e| self.at_path(e))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush().map_err(|e| self.at_path(e))
    }
}

impl Drop for StagingFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Removes every file in a staging directory; returns how many.
pub(crate) fn sweep_dir(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

struct LocalStaged {
    staging: StagingFile,
    objects: PathBuf,
}

impl Write for LocalStaged {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.staging.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.staging.flush()
    }
}

impl Staged for LocalStaged {
    fn read_back(&mut self) -> io::Result<Box<dyn Read + '_>> {
        Ok(Box::new(self.staging.reader()?))
    }

    fn read_range(&mut self, from: u64, len: u64) -> io::Result<Box<dyn Read + '_>> {
        Ok(Box::new(self.staging.range_reader(from, len)?))
    }

    fn commit(&mut self, key: &str) -> io::Result<()> {
        if object_file(&self.objects, key)?.exists() {
            // Identical content is stored once; this copy goes away on drop.
            return Ok(());
        }
        self.staging.file.sync_all().map_err(|e| self.staging.at_path(e))?;
        // The staging name goes on drop.
        link_object(&self.objects, &self.staging.path, key)
    }
}

impl BlobStore for LocalBlobs {
    fn stage(&self) -> io::Result<Box<dyn Staged>> {
        Ok(Box::new(LocalStaged { staging: StagingFile::create(&self.staging)?, objects: self.objects.clone() }))
    }

    fn open_range(&self, key: &str, start: u64, len: u64) -> io::Result<Option<Box<dyn Read + Send>>> {
        let mut file = match File::open(self.path(key)?) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        file.seek(SeekFrom::Start(start))?;
        Ok(Some(Box::new(file.take(len))))
    }

    fn contains(&self, key: &str) -> io::Result<bool> {
        Ok(self.path(key)?.exists())
    }

    fn remove(&self, key: &str) -> io::Result<bool> {
        let path = self.path(key)?;
        match fs::remove_file(&path) {
            Ok(()) => {
                if let Some(dir) = path.parent() {
                    sync_dir(dir)?;
                }
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn sweep_staging(&self) -> io::Result<usize> {
        sweep_dir(&self.staging)
    }

    fn keys(&self) -> io::Result<Vec<String>> {
        let mut keys = Vec::new();
        for shard in fs::read_dir(&self.objects)? {
            let shard = shard?;
            if !shard.file_type()?.is_dir() {
                continue;
            }
            for entry in fs::read_dir(shard.path())? {
                if let Some(name) = entry?.file_name().to_str() {
                    keys.push(name.to_owned());
                }
            }
        }
        Ok(keys)
    }

    fn multipart(&self) -> Option<&dyn Multipart> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_commit_read_remove() {
        let root = std::env::temp_dir().join(format!("pv-blobs-{}", std::process::id()));
        let store = LocalBlobs::open(&root).unwrap();
        let mut staged = store.stage().unwrap();
        staged.write_all(b"hello world").unwrap();
        let mut back = String::new();
        staged.read_back().unwrap().read_to_string(&mut back).unwrap();
        assert_eq!(back, "hello world");
        staged.commit("bafkabc").unwrap();
        let mut part = String::new();
        store.open_range("bafkabc", 6, 5).unwrap().unwrap().read_to_string(&mut part).unwrap();
        assert_eq!(part, "world");
        // identical content: the second copy is dropped, the first stays
        let mut again = store.stage().unwrap();
        again.write_all(b"hello world").unwrap();
        again.commit("bafkabc").unwrap();
        // committing again after the object was removed puts it back
        assert!(store.remove("bafkabc").unwrap());
        staged.commit("bafkabc").unwrap();
        assert!(store.contains("bafkabc").unwrap());
        drop((staged, again));
        assert_eq!(fs::read_dir(root.join("staging")).unwrap().count(), 0);
        assert_eq!(store.keys().unwrap(), vec!["bafkabc".to_string()]);
        // an abandoned staging file is swept
        let abandoned = store.stage().unwrap();
        std::mem::forget(abandoned);
        assert_eq!(store.sweep_staging().unwrap(), 1);
        assert!(store.remove("bafkabc").unwrap());
        assert!(!store.contains("bafkabc").unwrap());
        assert!(store.open_range("../etc", 0, 1).is_err());
        fs::remove_dir_all(&root).unwrap();
    }
}
