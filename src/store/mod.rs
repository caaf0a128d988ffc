//! Persistence. `db` is the only place that speaks SQL.
//!
//! Layering: below the services; rows stay rows here (the services map
//! them to models); imports nothing above it.
pub mod blobs;
pub mod db;
pub mod s3;

pub use db::Db;

