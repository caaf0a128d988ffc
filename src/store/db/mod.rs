//! The database and every query the services need: SQLite (the embedded
//! default) or PostgreSQL (several instances sharing one database), chosen
//! by the URL. One set of queries serves both: the SQL sticks to what the
//! two share (`$N` parameters, `ON CONFLICT`, `RETURNING`, `IS NOT DISTINCT
//! FROM`, sums cast to BIGINT), and [`with_pool!`] runs each body against
//! whichever pool this is. Only the migrations differ per backend (the key
//! columns), kept in step by a unit test.
//!
//! One file per aggregate, each query written once: `accounts`, `devices`
//! (pledges, heartbeats, the ledger, traffic, the dashboard), `files`
//! (files and blobs), `resets`, `throttle`; here the pool, the migrations
//! and the CID lock.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

/// Adds to an account's traffic of one day: ($1 user, $2 day, $3 files up,
/// $4 files down, $5 peer in, $6 peer out).
const ADD_TRAFFIC: &str = "INSERT INTO traffic_daily (user_id, day, files_up, files_down, peer_in, peer_out) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_id, day) DO UPDATE SET \
     files_up = traffic_daily.files_up + excluded.files_up, files_down = traffic_daily.files_down + excluded.files_down, \
     peer_in = traffic_daily.peer_in + excluded.peer_in, peer_out = traffic_daily.peer_out + excluded.peer_out";

/// Where byte counters stop growing: the largest integer a JSON client reads
/// exactly (2^53 - 1). Sums that would pass it stay at it.
pub const COUNTER_CAP: i64 = 9_007_199_254_740_991;

/// The UTC day of a timestamp in ms.
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(86_400_000)
}

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to this database's pool, whichever
/// backend it is: the same query text, compiled for each driver.
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match &$db.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

/// Makes SQLite's `users` ids AUTOINCREMENT, so the id of a deleted account
/// is never given to a later one (plain `INTEGER PRIMARY KEY` reuses the
/// highest id after a delete). SQLite cannot change a key column in place:
/// the table is rebuilt from its own definition, on one connection with
/// foreign keys off (else dropping the old table would cascade to every
/// row referring to it), in one transaction, then checked. Runs once; a
/// table that already is AUTOINCREMENT is left alone.
async fn never_reuse_user_ids(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let table: String = sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'users'")
        .fetch_one(&mut *conn)
        .await?;
    if table.contains("AUTOINCREMENT") {
        return Ok(());
    }
    let indexes: Vec<String> =
        sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'users' AND sql IS NOT NULL")
            .fetch_all(&mut *conn)
            .await?;
    let rebuilt = table
        .replacen("CREATE TABLE users", "CREATE TABLE users_rebuilt", 1)
        .replacen("INTEGER PRIMARY KEY", "INTEGER PRIMARY KEY AUTOINCREMENT", 1);
    sqlx::query("PRAGMA foreign_keys = OFF").execute(&mut *conn).await?;
    let result: Result<(), sqlx::Error> = async {
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        sqlx::query(&rebuilt).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO users_rebuilt SELECT * FROM users").execute(&mut *tx).await?;
        sqlx::query("DROP TABLE users").execute(&mut *tx).await?;
        sqlx::query("ALTER TABLE users_rebuilt RENAME TO users").execute(&mut *tx).await?;
        for index in &indexes {
            sqlx::query(index).execute(&mut *tx).await?;
        }
        let broken: Vec<sqlx::sqlite::SqliteRow> = sqlx::query("PRAGMA foreign_key_check").fetch_all(&mut *tx).await?;
        if !broken.is_empty() {
            return Err(sqlx::Error::Protocol(format!("{} rows lost their account in the rebuild", broken.len())));
        }
        tx.commit().await
    }
    .await;
    sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await?;
    result
}

#[derive(Clone)]
pub struct Db {
    pool: Pool,
    /// Bounds the CID locks held at once (each keeps a connection while its
    /// holder needs another for its queries): half the pool, at least one.
    lock_slots: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Result<Self, String> {
        match url.split_once(':').map(|(scheme, _)| scheme) {
            Some("sqlite") => Ok(Self::Sqlite),
            Some("postgres" | "postgresql") => Ok(Self::Postgres),
            other => Err(format!(
                "unsupported DATABASE_URL scheme {:?}: use sqlite: or postgres://",
                other.unwrap_or_default()
            )),
        }
    }
}

/// An open task of `$kind` for node `$node` on placement `$placement`
/// (object `$cid` of `$size` bytes), made at `$now` through `$exec` (a pool
/// or `&mut *tx`); evaluates to its id. Every kind of task is made here.
macro_rules! insert_task {
    ($exec:expr, $node:expr, $placement:expr, $kind:expr, $cid:expr, $size:expr, $now:expr) => {
        insert_task!($exec, $node, $placement, $kind, $cid, $size, $now, None::<&str>)
    };
    ($exec:expr, $node:expr, $placement:expr, $kind:expr, $cid:expr, $size:expr, $now:expr, $instance:expr) => {
        sqlx::query(
            "INSERT INTO tasks (node_user, placement_id, kind, cid, size, state, created_at, instance) \
             VALUES ($1, $2, $3, $4, $5, 'open', $6, $7) RETURNING id",
        )
        .bind($node)
        .bind($placement)
        .bind($kind)
        .bind($cid)
        .bind($size)
        .bind($now)
        .bind($instance)
        .fetch_one($exec)
        .await?
        .get::<i64, _>(0)
    };
}

/// Inside transaction `$tx`: cancels the open tasks and audits of placement `$p`.
macro_rules! cancel_open_work {
    ($tx:expr, $p:expr) => {{
        sqlx::query("UPDATE tasks SET state = 'cancelled' WHERE placement_id = $1 AND state = 'open'")
            .bind($p)
            .execute(&mut *$tx)
            .await?;
        sqlx::query("UPDATE audits SET outcome = 'cancelled' WHERE placement_id = $1 AND outcome = 'open'")
            .bind($p)
            .execute(&mut *$tx)
            .await?;
    }};
}

/// The bytes of distinct content an account stores, as an SQL expression;
/// `$user` is the SQL that names the account's id.
macro_rules! space_used_of {
    ($user:literal) => {
        concat!(
            "CAST((SELECT COALESCE(SUM(d.size), 0) FROM (SELECT DISTINCT f.cid, f.size FROM files f WHERE f.user_id = ",
            $user,
            ") d) AS BIGINT)"
        )
    };
}

mod accounts;
mod audits;
mod devices;
mod files;
mod network;
mod resets;
mod throttle;
mod uploads;

pub use accounts::{AccountRow, Credentials, InsertUser, TokenSubject};
pub use audits::{storage_coins, AuditRow, AuditRules, AuditTally, DueAudit, NetworkFigures, NodeFigures, Settled, StorageCredit, Verdict};
pub use devices::{DashboardRow, HeartbeatState, LedgerDay, TrafficDay};
pub use files::{FileRow, InsertFile, NewFile};
pub use network::{Finished, HolderRow, NodeTaskRow, PlacementRow, TaskRow};
pub use resets::{EmailOwner, ResetRow};
pub use uploads::{Appended, Claim, NewUpload, UploadRow};

impl Db {
    /// Opens (creating if needed) the database and applies the migrations.
    /// Errors name what went wrong without echoing the URL (it may hold a password).
    /// `acquire_timeout`: how long a query waits for a PostgreSQL connection
    /// before it fails (and the request answers 503). SQLite has no server
    /// to lose: its pool keeps sqlx's default.
    pub async fn connect(url: &str, max_connections: u32, acquire_timeout: Duration) -> Result<Self, String> {
        let pool = match Backend::of_url(url)? {
            Backend::Sqlite => {
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(|e| format!("invalid DATABASE_URL: {e}"))?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10));
                let pool = SqlitePoolOptions::new()
                    .max_connections(max_connections)
                    .connect_with(options)
                    .await
                    .map_err(|e| format!("cannot open database: {e}"))?;
                SQLITE_MIGRATOR.run(&pool).await.map_err(|e| format!("migration failed: {e}"))?;
                never_reuse_user_ids(&pool).await.map_err(|e| format!("migration failed: {e}"))?;
                Pool::Sqlite(pool)
            }
            Backend::Postgres => {
                let options = PgConnectOptions::from_str(url).map_err(|e| format!("invalid DATABASE_URL: {e}"))?;
                let pool = PgPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(acquire_timeout)
                    .connect_with(options)
                    .await
                    .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
                // The migrator takes an advisory lock: instances starting together apply them once.
                POSTGRES_MIGRATOR.run(&pool).await.map_err(|e| format!("migration failed: {e}"))?;
                Pool::Postgres(pool)
            }
        };
        let lock_slots = std::sync::Arc::new(tokio::sync::Semaphore::new((max_connections as usize / 2).max(1)));
        Ok(Self { pool, lock_slots })
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await.map(|_| ())
        })
    }

    /// Takes the database-wide lock on a CID, for the instances that share
    /// this database: held from an upload's object write to its row commit,
    /// and around a delete's row removal and object removal, so no instance
    /// removes an object another is about to reference. PostgreSQL: a session
    /// advisory lock on a connection the guard keeps. SQLite: `None`, the
    /// database has one instance and its in-process lock is enough.
    pub async fn lock_cid(&self, cid: &str) -> Result<Option<DbLock>, sqlx::Error> {
        let Pool::Postgres(pool) = &self.pool else { return Ok(None) };
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(format!("peervault cid lock {cid}").as_bytes());
        let key = i64::from_be_bytes(digest[..8].try_into().unwrap_or_default());
        let slots = self.lock_slots.clone();
        let pool = pool.clone();
        // In a task of its own: if the caller gives up while waiting (its
        // client went away), the lock is still taken and then released by
        // dropping the guard, never left behind on a pooled connection.
        let taking = tokio::spawn(async move {
            let slot = slots.acquire_owned().await.map_err(|_| sqlx::Error::PoolClosed)?;
            let mut conn = pool.acquire().await?;
            sqlx::query("SELECT pg_advisory_lock($1)").bind(key).execute(&mut *conn).await?;
            Ok(DbLock { conn: Some(conn), key, _slot: slot })
        });
        match taking.await {
            Ok(lock) => lock.map(Some),
            Err(e) => Err(sqlx::Error::Protocol(format!("taking a lock: {e}"))),
        }
    }
}

/// A held [`Db::lock_cid`] lock; released when dropped.
pub struct DbLock {
    conn: Option<sqlx::pool::PoolConnection<sqlx::Postgres>>,
    key: i64,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for DbLock {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else { return };
        let key = self.key;
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)").bind(key).execute(&mut *conn).await;
                    if unlocked.is_err() {
                        // Ending the session releases every lock it holds.
                        let _ = conn.detach();
                    }
                });
            }
            // No runtime left: close the session instead of pooling it locked.
            Err(_) => drop(conn.detach()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Migrations written per backend on purpose (random functions differ);
    /// both sets must still have them.
    const BACKEND_SPECIFIC: &[&str] = &["0006_account_nonce_and_revoked_sessions.sql", "0007_block_index.sql", "0012_uploads.sql"];

    /// The two migration sets differ only in how a row id is generated.
    #[test]
    fn migrations_are_kept_in_step() {
        let dir = |backend: &str| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(backend);
        let names = |backend: &str| {
            let mut v: Vec<String> = std::fs::read_dir(dir(backend))
                .expect("migrations dir")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names("sqlite"), names("postgres"));
        assert!(!names("sqlite").is_empty());
        for name in names("sqlite").into_iter().filter(|n| !BACKEND_SPECIFIC.contains(&n.as_str())) {
            let read = |backend: &str| std::fs::read_to_string(dir(backend).join(&name)).expect("migration");
            let sqlite = read("sqlite")
                .replace("INTEGER PRIMARY KEY", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
                .replace("so PostgreSQL can follow", "shared with migrations/sqlite");
            assert_eq!(sqlite, read("postgres"), "{name}");
        }
    }

    #[tokio::test]
    async fn sqlite_user_ids_are_never_reused() {
        let dir = std::env::temp_dir().join(format!("peervault-ids-{}", crate::util::random_hex(8)));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let url = format!("sqlite://{}", dir.join("t.db").display());
        let db = Db::connect(&url, 2, Duration::from_secs(2)).await.expect("database");
        let add = |name: &'static str| {
            let db = db.clone();
            async move {
                match db.insert_user(name, &format!("{name}@x.org"), "h", &format!("p-{name}"), "n", 0).await.expect("insert") {
                    InsertUser::Created(id) => id,
                    InsertUser::Taken => panic!("taken"),
                }
            }
        };
        let (a, b) = (add("alice").await, add("bob").await);
        db.set_storage_rented(a, 5.0, 1).await.expect("pledge");
        db.record_heartbeat(a, None, 1, 0, 5.0, 0.01, 0.0).await.expect("beat");
        db.record_heartbeat(a, Some(1), 2, 1000, 5.0, 0.01, 1.0).await.expect("beat");
        db.delete_user(b).await.expect("delete");
        let c = add("carol").await;
        assert!(c > b, "id {c} reuses a deleted one ({b})");
        // a second start leaves the rebuilt table (and its rows) alone
        drop(db);
        let db = Db::connect(&url, 2, Duration::from_secs(2)).await.expect("database again");
        assert_eq!(db.dashboard(a).await.expect("dashboard").expect("alice").coins, 1.0);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn backend_follows_the_url_scheme() {
        assert_eq!(Backend::of_url("sqlite:///tmp/x.db"), Ok(Backend::Sqlite));
        assert_eq!(Backend::of_url("postgres://u@h/db"), Ok(Backend::Postgres));
        assert_eq!(Backend::of_url("postgresql://u@h/db"), Ok(Backend::Postgres));
        let err = Backend::of_url("mysql://root:secret@h/db").unwrap_err();
        assert!(err.contains("mysql") && !err.contains("secret"), "{err}");
    }
}
