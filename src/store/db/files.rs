//! Files and blobs: stored content (one blob row per CID, with its block
//! index) and the files that name it.

use super::{ADD_TRAFFIC, Db, Pool, day_of};
use sqlx::Row;

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
    /// Replicas of its content stored on nodes.
    pub replicas: i64,
    /// 1 while its owner shares it (`/share_file`).
    pub public: i64,
    /// How many files the folder holds; `None` for a single file.
    pub folder_files: Option<i64>,
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
    /// How many files, for a folder.
    pub folder_files: Option<i64>,
}

pub enum InsertFile {
    Stored,
    OverQuota,
    NoAccount,
}

impl Db {
    pub async fn space_used(&self, user_id: i64) -> Result<i64, sqlx::Error> {
        with_pool!(self, pool => {
            let row = sqlx::query(
                concat!("SELECT ", space_used_of!("$1")),
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
                "INSERT INTO files (user_id, cid, name, mime, size, uploaded_at, folder_files) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(f.user_id)
            .bind(f.cid)
            .bind(f.name)
            .bind(f.mime)
            .bind(f.size)
            .bind(f.now)
            .bind(f.folder_files)
            .execute(&mut *tx)
            .await?;
            let used: i64 = sqlx::query(
                concat!("SELECT ", space_used_of!("$1")),
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
                "SELECT f.id, f.name, f.cid, b.car_cid, f.mime, f.size, f.uploaded_at, f.public, f.folder_files, \
                   (SELECT COUNT(*) FROM placements p WHERE p.cid = f.cid AND p.state = 'stored') AS replicas \
                 FROM files f JOIN blobs b ON b.cid = f.cid \
                 WHERE f.user_id = $1 ORDER BY f.uploaded_at DESC, f.id DESC",
            )
            .bind(user_id)
            .fetch_all(pool)
            .await
        })
    }

    /// Turns sharing of the account's files of `cid` on or off; how many there are.
    pub async fn set_public(&self, user_id: i64, cid: &str, public: bool) -> Result<u64, sqlx::Error> {
        with_pool!(self, pool => {
            Ok(sqlx::query("UPDATE files SET public = $3 WHERE user_id = $1 AND cid = $2")
                .bind(user_id)
                .bind(cid)
                .bind(i64::from(public))
                .execute(pool)
                .await?
                .rows_affected())
        })
    }

    /// The file of `cid` shared first, of whichever account, with its owner.
    pub async fn public_file(&self, cid: &str) -> Result<Option<(i64, FileRow)>, sqlx::Error> {
        with_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT f.user_id, f.id, f.name, f.cid, b.car_cid, f.mime, f.size, f.uploaded_at, f.folder_files \
                 FROM files f JOIN blobs b ON b.cid = f.cid \
                 WHERE f.cid = $1 AND f.public = 1 ORDER BY f.uploaded_at, f.id LIMIT 1",
            )
            .bind(cid)
            .fetch_optional(pool)
            .await?;
            Ok(row.map(|r| {
                let file = FileRow {
                    id: r.get(1),
                    name: r.get(2),
                    cid: r.get(3),
                    car_cid: r.get(4),
                    mime: r.get(5),
                    size: r.get(6),
                    uploaded_at: r.get(7),
                    replicas: 0,
                    public: 1,
                    folder_files: r.get(8),
                };
                (r.get(0), file)
            }))
        })
    }

    /// Records the blocks of the stored DAG `root` (see migration 0015),
    /// all in one transaction; blocks already recorded are left as they are.
    /// False when the object is no longer stored.
    pub async fn record_dag_blocks(&self, root: &str, blocks: &[String]) -> Result<bool, sqlx::Error> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // A write first (SQLite then holds the write lock from here on),
            // which also checks the object is still there.
            let present = sqlx::query("UPDATE blobs SET size = size WHERE cid = $1").bind(root).execute(&mut *tx).await?.rows_affected();
            if present == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
            for batch in blocks.chunks(400) {
                let mut sql = String::from("INSERT INTO dag_blocks (block, root) VALUES ");
                for i in 0..batch.len() {
                    if i > 0 {
                        sql.push(',');
                    }
                    sql.push_str(&format!("(${}, $1)", i + 2));
                }
                sql.push_str(" ON CONFLICT DO NOTHING");
                let mut query = sqlx::query(&sql).bind(root);
                for block in batch {
                    query = query.bind(block);
                }
                query.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Shared content whose blocks are not recorded yet, with its size.
    pub async fn shared_roots_unrecorded(&self) -> Result<Vec<(String, i64)>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT b.cid, b.size FROM blobs b \
                 WHERE EXISTS (SELECT 1 FROM files f WHERE f.cid = b.cid AND f.public = 1) \
                 AND NOT EXISTS (SELECT 1 FROM dag_blocks d WHERE d.root = b.cid)",
            )
            .fetch_all(pool)
            .await
        })
    }

    /// A shared root whose DAG holds `block`, if any.
    pub async fn shared_root_of(&self, block: &str) -> Result<Option<String>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT d.root FROM dag_blocks d \
                 WHERE d.block = $1 AND EXISTS (SELECT 1 FROM files f WHERE f.cid = d.root AND f.public = 1) \
                 ORDER BY d.root LIMIT 1",
            )
            .bind(block)
            .fetch_optional(pool)
            .await
        })
    }

    /// The account's newest file with this CID.
    pub async fn file_by_cid(&self, user_id: i64, cid: &str) -> Result<Option<FileRow>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT f.id, f.name, f.cid, b.car_cid, f.mime, f.size, f.uploaded_at, f.public, f.folder_files, \
                   (SELECT COUNT(*) FROM placements p WHERE p.cid = f.cid AND p.state = 'stored') AS replicas \
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

    /// The size of a stored object, if it is stored.
    pub async fn blob_size(&self, cid: &str) -> Result<Option<i64>, sqlx::Error> {
        with_pool!(self, pool => {
            let row = sqlx::query("SELECT size FROM blobs WHERE cid = $1").bind(cid).fetch_optional(pool).await?;
            Ok(row.map(|r| r.get(0)))
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
}
