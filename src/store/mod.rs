//! Persistence. `db` is the only place that speaks SQL.
pub mod blobs;
pub mod db;
pub mod s3;

pub use db::Db;

/// Milliseconds since the Unix epoch: the one clock every stored timestamp uses.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
