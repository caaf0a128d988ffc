//! The database and every query the services need: SQLite (the embedded
//! default) or PostgreSQL (several instances sharing one database), chosen
//! by the URL. One set of queries serves both: the SQL sticks to what the
//! two share (`$N` parameters, `ON CONFLICT`, `RETURNING`, `IS NOT DISTINCT
//! FROM`, sums cast to BIGINT), and [`with_pool!`] runs each body against
//! whichever pool this is. Only the migrations differ per backend (the key
//! columns), kept in step by a unit test.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Row, SqlitePool};
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

/// What login needs of an account.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Credentials {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub peer_id: String,
    pub token_version: i64,
    pub nonce: String,
}

/// What token verification needs of an account.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenSubject {
    pub username: String,
    pub token_version: i64,
    pub peer_id: String,
    pub nonce: String,
    /// The token's id is on the revoked list (its session was logged out).
    pub revoked: bool,
}

/// What the account page shows.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccountRow {
    pub username: String,
    pub email: String,
    pub peer_id: String,
    pub password_hash: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HeartbeatState {
    pub storage_rented_mb: f64,
    pub last_heartbeat_at: Option<i64>,
}

/// The stored facts behind the dashboard.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DashboardRow {
    pub username: String,
    pub peer_id: String,
    pub storage_rented_mb: f64,
    pub coins: f64,
    pub uptime_ms: i64,
    pub last_heartbeat_at: Option<i64>,
    pub files_uploaded_bytes: i64,
    pub files_downloaded_bytes: i64,
    pub peer_in: i64,
    pub peer_out: i64,
    pub space_used: i64,
}

/// A file as listed to its owner.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FileRow {
    pub id: i64,
    pub name: String,
    pub cid: String,
    pub car_cid: String,
    pub mime: String,
    pub size: i64,
    pub uploaded_at: i64,
}

/// What a new file row needs.
pub struct NewFile<'a> {
    pub user_id: i64,
    pub cid: &'a str,
    pub car_cid: &'a str,
    pub name: &'a str,
    pub mime: &'a str,
    pub size: i64,
    pub now: i64,
    /// The object's block index (`content::BlockIndex`, encoded).
    pub block_index: &'a [u8],
}

pub enum InsertFile {
    Stored,
    OverQuota,
    NoAccount,
}

/// A pending password reset.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ResetRow {
    pub code_hash: String,
    pub expires_at: i64,
    pub attempts: i64,
}

/// The account an email belongs to.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EmailOwner {
    pub id: i64,
    pub email: String,
}

pub enum InsertUser {
    Created(i64),
    Taken,
}

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

    pub async fn insert_user(
        &self,
        username: &str,
        email: &str,
        password_hash: &str,
        peer_id: &str,
        nonce: &str,
        now: i64,
    ) -> Result<InsertUser, sqlx::Error> {
        with_pool!(self, pool => {
            let res = sqlx::query(
                "INSERT INTO users (username, email, password_hash, peer_id, created_at, nonce) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(username)
            .bind(email)
            .bind(password_hash)
            .bind(peer_id)
            .bind(now)
            .bind(nonce)
            .fetch_one(pool)
            .await;
            match res {
                Ok(row) => Ok(InsertUser::Created(row.get(0))),
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(InsertUser::Taken),
                Err(e) => Err(e),
            }
        })
    }

    pub async fn username_or_email_taken(&self, username: &str, email: &str) -> Result<bool, sqlx::Error> {
        with_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT EXISTS (SELECT 1 FROM users WHERE lower(username) = lower($1) OR lower(email) = lower($2))",
            )
            .bind(username)
            .bind(email)
            .fetch_one(pool)
            .await?;
            Ok(row.get::<bool, _>(0))
        })
    }

    /// Finds an account by username or email, both case-insensitively.
    pub async fn credentials_by_login(&self, login: &str) -> Result<Option<Credentials>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, username, password_hash, peer_id, token_version, nonce FROM users \
                 WHERE lower(username) = lower($1) OR lower(email) = lower($1) \
                 ORDER BY lower(username) = lower($1) DESC LIMIT 1",
            )
            .bind(login)
            .fetch_optional(pool)
            .await
        })
    }

    pub async fn credentials_by_username(&self, username: &str) -> Result<Option<Credentials>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, username, password_hash, peer_id, token_version, nonce FROM users WHERE lower(username) = lower($1)",
            )
            .bind(username)
            .fetch_optional(pool)
            .await
        })
    }

    /// The account a token names, and whether the token's id (`jti`) was revoked.
    pub async fn token_subject(&self, user_id: i64, jti: &str) -> Result<Option<TokenSubject>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT username, token_version, peer_id, nonce, \
                   EXISTS (SELECT 1 FROM revoked_tokens r WHERE r.jti = $2) AS revoked \
                 FROM users WHERE id = $1",
            )
            .bind(user_id)
            .bind(jti)
            .fetch_optional(pool)
            .await
        })
    }

    /// Revokes one token (by its id) until it expires; forgets revocations
    /// of tokens that have expired by `now`.
    pub async fn revoke_token(&self, jti: &str, expires_at: i64, now: i64) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < $1").bind(now).execute(pool).await?;
            sqlx::query("INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING")
                .bind(jti)
                .bind(expires_at)
                .execute(pool)
                .await
                .map(|_| ())
        })
    }

    pub async fn set_storage_rented(&self, user_id: i64, mb: f64, now: i64) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE users SET storage_rented_mb = $1, onboarded_at = $2 WHERE id = $3")
                .bind(mb)
                .bind(now)
                .bind(user_id)
                .execute(pool)
                .await
                .map(|_| ())
        })
    }

    pub async fn heartbeat_state(&self, user_id: i64) -> Result<Option<HeartbeatState>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_as("SELECT storage_rented_mb, last_heartbeat_at FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(pool)
                .await
        })
    }

    /// Records a heartbeat at `now` if the previous one is still `previous`
    /// (compare-and-set), crediting `credited_ms` of uptime and appending a
    /// ledger entry of `coins` in the same transaction. Returns false when
    /// another heartbeat won the race: the caller re-reads and retries, so an
    /// interval is never credited twice.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_heartbeat(
        &self,
        user_id: i64,
        previous: Option<i64>,
        now: i64,
        credited_ms: i64,
        storage_rented_mb: f64,
        coin_rate: f64,
        coins: f64,
    ) -> Result<bool, sqlx::Error> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // The write comes first, so the transaction holds the write lock from
            // its first statement on (no read-to-write upgrade to deadlock on).
            let updated = sqlx::query(
                "UPDATE users SET last_heartbeat_at = $1, uptime_ms = uptime_ms + $2 \
                 WHERE id = $3 AND last_heartbeat_at IS NOT DISTINCT FROM $4",
            )
            .bind(now)
            .bind(credited_ms)
            .bind(user_id)
            .bind(previous)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
            if credited_ms > 0 {
                sqlx::query(
                    "INSERT INTO coin_ledger (user_id, credited_ms, storage_rented_mb, coin_rate, coins, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(user_id)
                .bind(credited_ms)
                .bind(storage_rented_mb)
                .bind(coin_rate)
                .bind(coins)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Stores a bandwidth report, banking a stored total that the new one is lower than.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_bandwidth(
        &self,
        user_id: i64,
        total_in: i64,
        total_out: i64,
        rate_in: f64,
        rate_out: f64,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // Lock the account's row first (a no-op write): on PostgreSQL two
            // reports of one account then run one after the other, each
            // reading the totals the previous one stored.
            sqlx::query("UPDATE users SET uptime_ms = uptime_ms WHERE id = $1").bind(user_id).execute(&mut *tx).await?;
            // The day's peer traffic grows by what the totals grew since the last
            // report (all of a total after a restart, when it went down). Read
            // from the stored row inside this write, so reports cannot race.
            sqlx::query(
                "INSERT INTO traffic_daily (user_id, day, files_up, files_down, peer_in, peer_out) \
                 SELECT $1, $2, 0, 0, \
                   CASE WHEN b.total_in IS NULL OR $3 < b.total_in THEN $3 ELSE $3 - b.total_in END, \
                   CASE WHEN b.total_out IS NULL OR $4 < b.total_out THEN $4 ELSE $4 - b.total_out END \
                 FROM (SELECT 1) one LEFT JOIN peer_bandwidth b ON b.user_id = $1 WHERE true \
                 ON CONFLICT (user_id, day) DO UPDATE SET \
                   peer_in = CASE WHEN traffic_daily.peer_in > $5 - excluded.peer_in THEN $5 \
                     ELSE traffic_daily.peer_in + excluded.peer_in END, \
                   peer_out = CASE WHEN traffic_daily.peer_out > $5 - excluded.peer_out THEN $5 \
                     ELSE traffic_daily.peer_out + excluded.peer_out END",
            )
            .bind(user_id)
            .bind(day_of(now))
            .bind(total_in)
            .bind(total_out)
            .bind(COUNTER_CAP)
            .execute(&mut *tx)
            .await?;
            // The banking decision reads the stored row under the same write, so
            // concurrent reports cannot lose a banked total. Banked sums stop
            // at COUNTER_CAP ($7) instead of overflowing.
            sqlx::query(
                "INSERT INTO peer_bandwidth (user_id, total_in, total_out, rate_in, rate_out, banked_in, banked_out, reported_at) \
                 VALUES ($1, $2, $3, $4, $5, 0, 0, $6) \
                 ON CONFLICT (user_id) DO UPDATE SET \
                   banked_in = CASE WHEN excluded.total_in >= peer_bandwidth.total_in THEN peer_bandwidth.banked_in \
                     WHEN peer_bandwidth.banked_in > $7 - peer_bandwidth.total_in THEN $7 \
                     ELSE peer_bandwidth.banked_in + peer_bandwidth.total_in END, \
                   banked_out = CASE WHEN excluded.total_out >= peer_bandwidth.total_out THEN peer_bandwidth.banked_out \
                     WHEN peer_bandwidth.banked_out > $7 - peer_bandwidth.total_out THEN $7 \
                     ELSE peer_bandwidth.banked_out + peer_bandwidth.total_out END, \
                   total_in = excluded.total_in, total_out = excluded.total_out, \
                   rate_in = excluded.rate_in, rate_out = excluded.rate_out, reported_at = excluded.reported_at",
            )
            .bind(user_id)
            .bind(total_in)
            .bind(total_out)
            .bind(rate_in)
            .bind(rate_out)
            .bind(now)
            .bind(COUNTER_CAP)
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        })
    }

    pub async fn dashboard(&self, user_id: i64) -> Result<Option<DashboardRow>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT u.username, u.peer_id, u.storage_rented_mb, \
                   CAST(COALESCE((SELECT SUM(l.coins) FROM coin_ledger l WHERE l.user_id = u.id), 0) AS DOUBLE PRECISION) AS coins, \
                   u.uptime_ms, u.last_heartbeat_at, u.files_uploaded_bytes, u.files_downloaded_bytes, \
                   COALESCE(b.total_in + b.banked_in, 0) AS peer_in, \
                   COALESCE(b.total_out + b.banked_out, 0) AS peer_out, \
                   CAST((SELECT COALESCE(SUM(d.size), 0) FROM (SELECT DISTINCT f.cid, f.size FROM files f WHERE f.user_id = u.id) d) AS BIGINT) AS space_used \
                 FROM users u LEFT JOIN peer_bandwidth b ON b.user_id = u.id WHERE u.id = $1",
            )
            .bind(user_id)
            .fetch_optional(pool)
            .await
        })
    }

    pub async fn space_used(&self, user_id: i64) -> Result<i64, sqlx::Error> {
        with_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT CAST(COALESCE(SUM(d.size), 0) AS BIGINT) FROM (SELECT DISTINCT cid, size FROM files WHERE user_id = $1) d",
            )
            .bind(user_id)
            .fetch_one(pool)
            .await?;
            Ok(row.get(0))
        })
    }

    /// Records an upload whose object is already in the blob store: the blob
    /// row (once per CID), the file row and the upload counter, in one
    /// transaction that is rolled back if the account would exceed `quota`.
    pub async fn insert_file(&self, f: &NewFile<'_>, quota: i64) -> Result<InsertFile, sqlx::Error> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // The account's row first: SQLite takes its write lock at once, and
            // PostgreSQL locks the row, so one account's uploads commit one at a
            // time and the quota check below sees every earlier one.
            let account = sqlx::query("UPDATE users SET files_uploaded_bytes = files_uploaded_bytes + $1 WHERE id = $2")
                .bind(f.size)
                .bind(f.user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if account == 0 {
                // The account was deleted while the file streamed in.
                tx.rollback().await?;
                return Ok(InsertFile::NoAccount);
            }
            // The blob row is locked too (DO UPDATE, not DO NOTHING), so a
            // delete of the same content cannot count its files meanwhile.
            sqlx::query(
                "INSERT INTO blobs (cid, car_cid, size, created_at, block_index) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (cid) DO UPDATE SET car_cid = excluded.car_cid, \
                   block_index = COALESCE(blobs.block_index, excluded.block_index)",
            )
            .bind(f.cid)
            .bind(f.car_cid)
            .bind(f.size)
            .bind(f.now)
            .bind(f.block_index)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO files (user_id, cid, name, mime, size, uploaded_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(f.user_id)
            .bind(f.cid)
            .bind(f.name)
            .bind(f.mime)
            .bind(f.size)
            .bind(f.now)
            .execute(&mut *tx)
            .await?;
            let used: i64 = sqlx::query(
                "SELECT CAST(COALESCE(SUM(d.size), 0) AS BIGINT) FROM (SELECT DISTINCT cid, size FROM files WHERE user_id = $1) d",
            )
            .bind(f.user_id)
            .fetch_one(&mut *tx)
            .await?
            .get(0);
            if used > quota {
                tx.rollback().await?;
                return Ok(InsertFile::OverQuota);
            }
            sqlx::query(ADD_TRAFFIC)
                .bind(f.user_id)
                .bind(day_of(f.now))
                .bind(f.size)
                .bind(0i64)
                .bind(0i64)
                .bind(0i64)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(InsertFile::Stored)
        })
    }

    /// The account's files, newest first.
    pub async fn list_files(&self, user_id: i64) -> Result<Vec<FileRow>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT f.id, f.name, f.cid, b.car_cid, f.mime, f.size, f.uploaded_at \
                 FROM files f JOIN blobs b ON b.cid = f.cid \
                 WHERE f.user_id = $1 ORDER BY f.uploaded_at DESC, f.id DESC",
            )
            .bind(user_id)
            .fetch_all(pool)
            .await
        })
    }

    /// The account's newest file with this CID.
    pub async fn file_by_cid(&self, user_id: i64, cid: &str) -> Result<Option<FileRow>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT f.id, f.name, f.cid, b.car_cid, f.mime, f.size, f.uploaded_at \
                 FROM files f JOIN blobs b ON b.cid = f.cid \
                 WHERE f.user_id = $1 AND f.cid = $2 ORDER BY f.uploaded_at DESC, f.id DESC LIMIT 1",
            )
            .bind(user_id)
            .bind(cid)
            .fetch_optional(pool)
            .await
        })
    }

    /// Removes the account's files with this CID. Returns `None` if it had
    /// none, else whether the content is now unreferenced (its blob row is
    /// then deleted too, in the same transaction).
    pub async fn delete_files(&self, user_id: i64, cid: &str) -> Result<Option<bool>, sqlx::Error> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let deleted = sqlx::query("DELETE FROM files WHERE user_id = $1 AND cid = $2")
                .bind(user_id)
                .bind(cid)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if deleted == 0 {
                tx.rollback().await?;
                return Ok(None);
            }
            // Lock the blob row before counting: concurrent deletes (and
            // uploads) of this content queue here, and the count, a fresh
            // read after the lock, sees what they committed.
            sqlx::query("UPDATE blobs SET size = size WHERE cid = $1").bind(cid).execute(&mut *tx).await?;
            let left: i64 = sqlx::query("SELECT COUNT(*) FROM files WHERE cid = $1").bind(cid).fetch_one(&mut *tx).await?.get(0);
            if left == 0 {
                sqlx::query("DELETE FROM blobs WHERE cid = $1").bind(cid).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(Some(left == 0))
        })
    }

    pub async fn blob_exists(&self, cid: &str) -> Result<bool, sqlx::Error> {
        with_pool!(self, pool => {
            let row = sqlx::query("SELECT EXISTS (SELECT 1 FROM blobs WHERE cid = $1)").bind(cid).fetch_one(pool).await?;
            Ok(row.get::<bool, _>(0))
        })
    }

    /// The stored object's block index: `None` without a blob row,
    /// `Some(None)` for an object stored before indexes were kept.
    pub async fn block_index(&self, cid: &str) -> Result<Option<Option<Vec<u8>>>, sqlx::Error> {
        with_pool!(self, pool => {
            let row = sqlx::query("SELECT block_index FROM blobs WHERE cid = $1").bind(cid).fetch_optional(pool).await?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    /// Keeps the block index of an object stored without one.
    pub async fn fill_block_index(&self, cid: &str, index: &[u8]) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE blobs SET block_index = $1 WHERE cid = $2 AND block_index IS NULL")
                .bind(index)
                .bind(cid)
                .execute(pool)
                .await
                .map(|_| ())
        })
    }

    pub async fn add_downloaded(&self, user_id: i64, bytes: i64, now: i64) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE users SET files_downloaded_bytes = files_downloaded_bytes + $1 WHERE id = $2")
                .bind(bytes)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(ADD_TRAFFIC)
                .bind(user_id)
                .bind(day_of(now))
                .bind(0i64)
                .bind(bytes)
                .bind(0i64)
                .bind(0i64)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        })
    }

    /// Per day since `first_day`: (day, coins, credited ms) from the ledger.
    pub async fn ledger_by_day(&self, user_id: i64, first_day: i64) -> Result<Vec<(i64, f64, i64)>, sqlx::Error> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT created_at / 86400000 AS day, CAST(SUM(coins) AS DOUBLE PRECISION), CAST(SUM(credited_ms) AS BIGINT) \
                 FROM coin_ledger WHERE user_id = $1 AND created_at >= $2 GROUP BY created_at / 86400000",
            )
            .bind(user_id)
            .bind(first_day * 86_400_000)
            .fetch_all(pool)
            .await?;
            Ok(rows.into_iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
        })
    }

    /// Per day since `first_day`: (day, files up, files down, peer in, peer out).
    pub async fn traffic_by_day(&self, user_id: i64, first_day: i64) -> Result<Vec<(i64, i64, i64, i64, i64)>, sqlx::Error> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT day, files_up, files_down, peer_in, peer_out FROM traffic_daily WHERE user_id = $1 AND day >= $2",
            )
            .bind(user_id)
            .bind(first_day)
            .fetch_all(pool)
            .await?;
            Ok(rows.into_iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))).collect())
        })
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<EmailOwner>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_as("SELECT id, email FROM users WHERE lower(email) = lower($1)")
                .bind(email)
                .fetch_optional(pool)
                .await
        })
    }

    /// Stores a new reset code for the account, replacing any earlier one.
    pub async fn put_reset(&self, user_id: i64, code_hash: &str, expires_at: i64, now: i64) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO password_resets (user_id, code_hash, expires_at, attempts, created_at) VALUES ($1, $2, $3, 0, $4) \
                 ON CONFLICT (user_id) DO UPDATE SET code_hash = excluded.code_hash, expires_at = excluded.expires_at, \
                 attempts = 0, created_at = excluded.created_at",
            )
            .bind(user_id)
            .bind(code_hash)
            .bind(expires_at)
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ())
        })
    }

    pub async fn drop_reset(&self, user_id: i64) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query("DELETE FROM password_resets WHERE user_id = $1").bind(user_id).execute(pool).await.map(|_| ())
        })
    }

    pub async fn reset_of(&self, user_id: i64) -> Result<Option<ResetRow>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_as("SELECT code_hash, expires_at, attempts FROM password_resets WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(pool)
                .await
        })
    }

    /// Counts a wrong guess; the code is deleted once `max` guesses were wrong.
    pub async fn wrong_guess(&self, user_id: i64, max: i64) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE password_resets SET attempts = attempts + 1 WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM password_resets WHERE user_id = $1 AND attempts >= $2")
                .bind(user_id)
                .bind(max)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        })
    }

    /// Consumes the code (if it is still this one, unexpired and not burnt)
    /// and sets the new password, revoking every older token, atomically.
    /// Returns false when the code was no longer usable.
    pub async fn complete_reset(
        &self,
        user_id: i64,
        code_hash: &str,
        password_hash: &str,
        now: i64,
        max_attempts: i64,
    ) -> Result<bool, sqlx::Error> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let consumed = sqlx::query(
                "DELETE FROM password_resets WHERE user_id = $1 AND code_hash = $2 AND expires_at > $3 AND attempts < $4",
            )
            .bind(user_id)
            .bind(code_hash)
            .bind(now)
            .bind(max_attempts)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if consumed != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
            sqlx::query("UPDATE users SET password_hash = $1, token_version = token_version + 1 WHERE id = $2")
                .bind(password_hash)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    pub async fn account(&self, user_id: i64) -> Result<Option<AccountRow>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_as("SELECT username, email, peer_id, password_hash FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(pool)
                .await
        })
    }

    pub async fn set_peer_id(&self, user_id: i64, peer_id: &str) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE users SET peer_id = $1 WHERE id = $2").bind(peer_id).bind(user_id).execute(pool).await.map(|_| ())
        })
    }

    /// Sets a new password hash and revokes every token issued before;
    /// returns the new token version.
    pub async fn set_password(&self, user_id: i64, password_hash: &str) -> Result<i64, sqlx::Error> {
        with_pool!(self, pool => {
            let row = sqlx::query(
                "UPDATE users SET password_hash = $1, token_version = token_version + 1 WHERE id = $2 RETURNING token_version",
            )
            .bind(password_hash)
            .bind(user_id)
            .fetch_one(pool)
            .await?;
            Ok(row.get(0))
        })
    }

    /// The distinct CIDs the account stores.
    pub async fn cids_of(&self, user_id: i64) -> Result<Vec<String>, sqlx::Error> {
        with_pool!(self, pool => {
            let rows = sqlx::query("SELECT DISTINCT cid FROM files WHERE user_id = $1").bind(user_id).fetch_all(pool).await?;
            Ok(rows.into_iter().map(|r| r.get(0)).collect())
        })
    }

    /// Deletes the account and its files in one transaction; returns the
    /// CIDs no account references any more (their blob rows are gone: the
    /// caller removes the objects). The account's row is locked first, as
    /// an upload's commit does, so an upload either commits before (and its
    /// file goes here) or finds no account and commits nothing.
    pub async fn delete_account(&self, user_id: i64) -> Result<Vec<String>, sqlx::Error> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let found = sqlx::query("UPDATE users SET files_uploaded_bytes = files_uploaded_bytes WHERE id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if found == 0 {
                tx.rollback().await?;
                return Ok(Vec::new());
            }
            let cids: Vec<String> = sqlx::query("SELECT DISTINCT cid FROM files WHERE user_id = $1 ORDER BY cid")
                .bind(user_id)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(|r| r.get(0))
                .collect();
            sqlx::query("DELETE FROM files WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
            let mut unreferenced = Vec::new();
            for cid in cids {
                // As in `delete_files`: lock the blob row, then count.
                sqlx::query("UPDATE blobs SET size = size WHERE cid = $1").bind(&cid).execute(&mut *tx).await?;
                let left: i64 =
                    sqlx::query("SELECT COUNT(*) FROM files WHERE cid = $1").bind(&cid).fetch_one(&mut *tx).await?.get(0);
                if left == 0 {
                    sqlx::query("DELETE FROM blobs WHERE cid = $1").bind(&cid).execute(&mut *tx).await?;
                    unreferenced.push(cid);
                }
            }
            sqlx::query("DELETE FROM users WHERE id = $1").bind(user_id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(unreferenced)
        })
    }

    /// Deletes the account; its ledger, reports, resets and file rows go with it.
    pub async fn delete_user(&self, user_id: i64) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query("DELETE FROM users WHERE id = $1").bind(user_id).execute(pool).await.map(|_| ())
        })
    }

    /// Failures counted against `key` in the window that started after `since`.
    pub async fn throttle_failures(&self, key: &str, since: i64) -> Result<i64, sqlx::Error> {
        with_pool!(self, pool => {
            let row = sqlx::query("SELECT failures FROM throttle WHERE key = $1 AND window_start > $2")
                .bind(key)
                .bind(since)
                .fetch_optional(pool)
                .await?;
            Ok(row.map_or(0, |r| r.get(0)))
        })
    }

    /// Counts one attempt against `key` and returns the count of its window;
    /// a window that started at or before `since` is over, and a new one
    /// starts `now`. One atomic statement: attempts counted at once, on any
    /// instance, each see a different count.
    pub async fn throttle_record(&self, key: &str, now: i64, since: i64) -> Result<i64, sqlx::Error> {
        with_pool!(self, pool => {
            let row = sqlx::query(
                "INSERT INTO throttle (key, window_start, failures) VALUES ($1, $2, 1) \
                 ON CONFLICT (key) DO UPDATE SET \
                   failures = CASE WHEN throttle.window_start <= $3 THEN 1 ELSE throttle.failures + 1 END, \
                   window_start = CASE WHEN throttle.window_start <= $3 THEN excluded.window_start ELSE throttle.window_start END \
                 RETURNING failures",
            )
            .bind(key)
            .bind(now)
            .bind(since)
            .fetch_one(pool)
            .await?;
            Ok(row.get(0))
        })
    }

    /// Takes back one counted attempt of `key` (an attempt that succeeded).
    pub async fn throttle_refund(&self, key: &str) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE throttle SET failures = failures - 1 WHERE key = $1 AND failures > 0")
                .bind(key)
                .execute(pool)
                .await
                .map(|_| ())
        })
    }

    pub async fn throttle_clear(&self, key: &str) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query("DELETE FROM throttle WHERE key = $1").bind(key).execute(pool).await.map(|_| ())
        })
    }

    /// Forgets every window that started at or before `since`; returns how many.
    pub async fn throttle_sweep(&self, since: i64) -> Result<u64, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query("DELETE FROM throttle WHERE window_start <= $1")
                .bind(since)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
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
    const BACKEND_SPECIFIC: &[&str] = &["0006_account_nonce_and_revoked_sessions.sql", "0007_block_index.sql"];

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
