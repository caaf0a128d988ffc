//! Persistence. `db` is the only place that speaks SQL.
pub mod blobs;
pub mod db;
pub mod s3;

pub use db::Db;

