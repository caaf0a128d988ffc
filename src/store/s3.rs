//! Objects in an S3-compatible bucket (`PEERVAULT_BLOB_URL=s3://bucket/prefix`),
//! for instances that share their storage. Credentials and endpoint come
//! from the usual `AWS_*` variables (`AWS_ENDPOINT`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ALLOW_HTTP`).
//!
//! An upload is staged in a local file while it is imported (so a refused
//! or interrupted upload never reaches the bucket), then sent as an S3
//! multipart upload in 8 MiB parts, at most two in flight: memory stays
//! bounded whatever the size, and the object appears only when the upload
//! completes. Reads ask the bucket for the byte range needed, in ranged GETs
//! of at most 4 MiB made as the reader is drained.
//!
//! The [`BlobStore`] trait is blocking (it runs on the blocking pool); the
//! calls here wait on the runtime the store was opened on.

use super::blobs::{check_key, sweep_dir, BlobStore, Multipart, Staged, StagingFile};
use bytes::Bytes;
use futures::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, RetryConfig, WriteMultipart};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Handle;

const PART_BYTES: usize = 8 * 1024 * 1024;
const PARTS_IN_FLIGHT: usize = 2;
/// The largest ranged GET a download makes.
const READ_BYTES: u64 = 4 * 1024 * 1024;

pub struct S3Blobs {
    store: Arc<AmazonS3>,
    prefix: String,
    staging: PathBuf,
    runtime: Handle,
    /// Shown in logs: `s3://bucket/prefix`, never a credential.
    pub location: String,
}

/// An object store error as an I/O error of the kind the service maps to
/// an answer: not found; no space (the bucket refused for space: 507);
/// denied; or, for the rest (connection refused or reset, timeouts, 5xx
/// after the retries), the store out of reach (503).
fn other(e: object_store::Error) -> io::Error {
    use io::ErrorKind as K;
    match e {
        object_store::Error::NotFound { .. } => io::Error::new(K::NotFound, "object not found"),
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
            io::Error::new(K::PermissionDenied, format!("object store: {e}"))
        }
        e => {
            let text = e.to_string();
            let full = ["QuotaExceeded", "InsufficientStorage", "EntityTooLarge", "no space", "Insufficient Storage"]
                .iter()
                .any(|w| text.contains(w));
            io::Error::new(if full { K::StorageFull } else { K::ConnectionAborted }, format!("object store: {text}"))
        }
    }
}

/// Where the object of `key` lives: `<prefix>/<key>`.
fn object_path(prefix: &str, key: &str) -> io::Result<ObjectPath> {
    check_key(key)?;
    Ok(if prefix.is_empty() { ObjectPath::from(key) } else { ObjectPath::from(format!("{prefix}/{key}")) })
}

/// `s3://bucket/some/prefix` → ("bucket", "some/prefix").
pub fn parse_url(url: &str) -> Result<(String, String), String> {
    let rest = url.strip_prefix("s3://").ok_or_else(|| "PEERVAULT_BLOB_URL must start with s3://".to_owned())?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !valid_bucket {
        return Err(format!("PEERVAULT_BLOB_URL: {bucket:?} is not a valid bucket name"));
    }
    let prefix = prefix.trim_matches('/');
    // The start-up sweep removes objects under the prefix that no file refers
    // to: with no prefix it would look at (and could delete) the whole bucket.
    if prefix.is_empty() {
        return Err("PEERVAULT_BLOB_URL needs a prefix of its own in the bucket (s3://bucket/prefix): \
                    objects under it that no file refers to are removed at start-up"
            .to_owned());
    }
    if prefix.split('/').any(|part| part == "." || part == "..") {
        return Err("PEERVAULT_BLOB_URL: the prefix may not contain . or .. segments".to_owned());
    }
    Ok((bucket.to_owned(), prefix.to_owned()))
}

impl S3Blobs {
    /// Connects to the bucket (checking it answers) with staging under `staging`.
    /// `timeout`: how long a request may take to connect, and how long it is
    /// retried (at most 3 times): a bucket out of reach fails a request in
    /// about that time (the caller answers 503), not in minutes.
    pub async fn open(url: &str, staging: &Path, timeout: Duration) -> Result<Self, String> {
        let (bucket, prefix) = parse_url(url)?;
        let retry = RetryConfig { max_retries: 3, retry_timeout: timeout, ..Default::default() };
        let store = AmazonS3Builder::from_env()
            .with_bucket_name(&bucket)
            .with_retry(retry)
            // (a config key, not with_client_options: that would drop the AWS_* client settings)
            .with_config(
                object_store::aws::AmazonS3ConfigKey::Client(object_store::ClientConfigKey::ConnectTimeout),
                format!("{}ms", timeout.as_millis()),
            )
            .build()
            .map_err(|e| format!("cannot configure the S3 store: {e}"))?;
        std::fs::create_dir_all(staging).map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
        let blobs = Self {
            store: Arc::new(store),
            prefix,
            staging: staging.to_owned(),
            runtime: Handle::current(),
            location: format!("s3://{}", url.trim_start_matches("s3://")),
        };
        // One listing call: wrong credentials or a missing bucket stop the start-up here.
        let probe = blobs.prefix_path();
        let mut listing = blobs.store.list(Some(&probe));
        if let Some(Err(e)) = listing.next().await {
            return Err(format!("cannot reach the bucket {bucket}: {e}"));
        }
        Ok(blobs)
    }

    fn prefix_path(&self) -> ObjectPath {
        ObjectPath::from(self.prefix.as_str())
    }

    fn path(&self, key: &str) -> io::Result<ObjectPath> {
        object_path(&self.prefix, key)
    }

    fn wait<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }
}

struct S3Staged {
    staging: StagingFile,
    store: Arc<AmazonS3>,
    prefix: String,
    runtime: Handle,
}

impl Write for S3Staged {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.staging.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.staging.flush()
    }
}

impl Staged for S3Staged {
    fn read_back(&mut self) -> io::Result<Box<dyn Read + '_>> {
        Ok(Box::new(self.staging.reader()?))
    }

    fn read_range(&mut self, from: u64, len: u64) -> io::Result<Box<dyn Read + '_>> {
        Ok(Box::new(self.staging.range_reader(from, len)?))
    }

    fn commit(&mut self, key: &str) -> io::Result<()> {
        let location = object_path(&self.prefix, key)?;
        let store = self.store.clone();
        let mut reader = self.staging.reader()?;
        self.runtime.block_on(async move {
            match store.head(&location).await {
                // Identical content is stored once.
                Ok(_) => return Ok(()),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(other(e)),
            }
            let upload = store.put_multipart(&location).await.map_err(other)?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
            let mut buf = vec![0u8; 1 << 20];
            let sent: io::Result<()> = async {
                loop {
                    // A local file, read on this blocking-pool thread while
                    // the parts already handed over upload on the runtime.
                    let n = reader.read(&mut buf)?;
                    if n == 0 {
                        return Ok(());
                    }
                    writer.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(other)?;
                    writer.write(&buf[..n]);
                }
            }
            .await;
            match sent {
                Ok(()) => writer.finish().await.map(|_| ()).map_err(other),
                Err(e) => {
                    let _ = writer.abort().await;
                    Err(e)
                }
            }
        })
    }
}

/// A blocking reader over `start..end` of an object, fetched in ranged GETs
/// of at most [`READ_BYTES`], one at a time as the reader is drained. Each
/// request completes on its own, whatever pace the reader is drained at (a
/// slow client), so no request outlives the S3 client's timeouts, and memory
/// is one piece per open download.
struct RangeReader {
    store: Arc<AmazonS3>,
    location: ObjectPath,
    next: u64,
    end: u64,
    piece: Bytes,
    runtime: Handle,
}

impl RangeReader {
    fn fetch(&mut self) -> Result<(), object_store::Error> {
        let upto = self.end.min(self.next + READ_BYTES);
        let range = self.next..upto;
        self.piece = self.runtime.block_on(self.store.get_range(&self.location, range))?;
        self.next += self.piece.len() as u64;
        Ok(())
    }
}

impl Read for RangeReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.piece.is_empty() {
            if self.next >= self.end || out.is_empty() {
                return Ok(0);
            }
            self.fetch().map_err(other)?;
            if self.piece.is_empty() {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "object shorter than expected"));
            }
        }
        let n = out.len().min(self.piece.len());
        out[..n].copy_from_slice(&self.piece.split_to(n));
        Ok(n)
    }
}

impl BlobStore for S3Blobs {
    fn stage(&self) -> io::Result<Box<dyn Staged>> {
        Ok(Box::new(S3Staged {
            staging: StagingFile::create(&self.staging)?,
            store: self.store.clone(),
            prefix: self.prefix.clone(),
            runtime: self.runtime.clone(),
        }))
    }

    fn open_range(&self, key: &str, start: u64, len: u64) -> io::Result<Option<Box<dyn Read + Send>>> {
        let location = self.path(key)?;
        if len == 0 {
            // A zero-length range is not a valid Range header: only check the object is there.
            return Ok(if self.contains(key)? { Some(Box::new(io::empty())) } else { None });
        }
        let mut reader = RangeReader {
            store: self.store.clone(),
            location,
            next: start,
            end: start + len,
            piece: Bytes::new(),
            runtime: self.runtime.clone(),
        };
        // The first piece now: a missing object is None, not a failed read.
        match reader.fetch() {
            Ok(()) => Ok(Some(Box::new(reader))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(other(e)),
        }
    }

    fn contains(&self, key: &str) -> io::Result<bool> {
        let location = self.path(key)?;
        match self.wait(self.store.head(&location)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(other(e)),
        }
    }

    fn remove(&self, key: &str) -> io::Result<bool> {
        if !self.contains(key)? {
            return Ok(false);
        }
        let location = self.path(key)?;
        match self.wait(self.store.delete(&location)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(true),
            Err(e) => Err(other(e)),
        }
    }

    fn sweep_staging(&self) -> io::Result<usize> {
        // Staging is this instance's own local directory.
        sweep_dir(&self.staging)
    }

    fn keys(&self) -> io::Result<Vec<String>> {
        let prefix = self.prefix_path();
        self.wait(async {
            let mut keys = Vec::new();
            let mut listing = self.store.list(Some(&prefix));
            while let Some(meta) = listing.next().await {
                let meta = meta.map_err(other)?;
                if let Some(name) = meta.location.filename() {
                    if check_key(name).is_ok() {
                        keys.push(name.to_owned());
                    }
                }
            }
            Ok(keys)
        })
    }

    fn multipart(&self) -> Option<&dyn Multipart> {
        Some(self)
    }
}

/// S3's own multipart uploads, one request per call (an upload's parts
/// arrive over many PATCHes, on any instance: the id and tags are kept in
/// the database between them).
impl Multipart for S3Blobs {
    fn min_part(&self) -> u64 {
        super::blobs::MIN_PART_BYTES
    }

    fn start(&self, key: &str) -> io::Result<String> {
        let location = self.path(key)?;
        self.wait(self.store.create_multipart(&location)).map_err(other)
    }

    fn put_parts(&self, key: &str, upload: &str, first: usize, _at: u64, sizes: &[u64], data: &mut dyn Read) -> io::Result<Vec<String>> {
        let location = self.path(key)?;
        let mut in_flight = std::collections::VecDeque::new();
        let mut tags = Vec::with_capacity(sizes.len());
        let settle = |task: tokio::task::JoinHandle<object_store::Result<PartId>>, tags: &mut Vec<String>| -> io::Result<()> {
            let part = self.wait(task).map_err(|e| io::Error::other(format!("part upload task: {e}")))?.map_err(other)?;
            tags.push(part.content_id);
            Ok(())
        };
        for (i, &size) in sizes.iter().enumerate() {
            // Read here, on the blocking pool, while the previous part uploads.
            let mut buf = vec![0u8; usize::try_from(size).map_err(io::Error::other)?];
            data.read_exact(&mut buf)?;
            let (store, location, upload) = (self.store.clone(), location.clone(), upload.to_owned());
            in_flight.push_back(self.runtime.spawn(async move { store.put_part(&location, &upload, first + i, Bytes::from(buf).into()).await }));
            if in_flight.len() >= PARTS_IN_FLIGHT {
                settle(in_flight.pop_front().expect("a part in flight"), &mut tags)?;
            }
        }
        while let Some(task) = in_flight.pop_front() {
            settle(task, &mut tags)?;
        }
        Ok(tags)
    }

    fn complete(&self, key: &str, upload: &str, tags: Vec<String>) -> io::Result<()> {
        let location = self.path(key)?;
        let parts = tags.into_iter().map(|content_id| PartId { content_id }).collect();
        self.wait(self.store.complete_multipart(&location, &upload.to_owned(), parts)).map(|_| ()).map_err(other)
    }

    fn abort(&self, key: &str, upload: &str) -> io::Result<()> {
        let location = self.path(key)?;
        match self.wait(self.store.abort_multipart(&location, &upload.to_owned())) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(other(e)),
        }
    }

    fn copy(&self, from: &str, to: &str) -> io::Result<()> {
        if self.contains(to)? {
            return Ok(());
        }
        let (from, to) = (self.path(from)?, self.path(to)?);
        self.wait(self.store.copy(&from, &to)).map_err(other)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_url;

    #[test]
    fn blob_urls() {
        assert_eq!(parse_url("s3://bucket/a/b/").unwrap(), ("bucket".into(), "a/b".into()));
        assert_eq!(parse_url("s3://my.bucket-1/p").unwrap(), ("my.bucket-1".into(), "p".into()));
        for bad in ["file:///x", "s3://", "s3://UPPER/x", "s3://b/x", "s3://bucket/../x", "s3://bucket", "s3://bucket/", "s3://bucket//"] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
