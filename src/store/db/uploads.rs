//! Resumable uploads (tus): the state any instance resumes from.

use super::{Db, Pool};
use sqlx::Row;

/// An upload as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UploadRow {
    pub id: String,
    pub user_id: i64,
    /// `None` while the length is deferred.
    pub length: Option<i64>,
    /// Bytes received and kept (the parts and the tail).
    pub received: i64,
    /// Each part object written so far: `<leaf count>:<name>,` (the
    /// object is `tus<id>p<name>`).
    pub parts: String,
    /// SHA-256 digests of the complete leaves, in hex, in order.
    pub leaves: String,
    /// On an S3 store, the multipart upload that holds the first leaves
    /// (object `tus<id>p0` once completed), and its parts: `<leaf
    /// count>:<ETag in hex>,` each. The leaves in `parts` come after them.
    pub multipart: Option<String>,
    pub multipart_parts: String,
    /// The bytes after the last complete leaf.
    pub tail: Vec<u8>,
    /// `Upload-Metadata` as the client sent it.
    pub metadata: String,
    pub name: String,
    pub mime: String,
    pub expires_at: i64,
    pub cid: Option<String>,
    pub car_cid: Option<String>,
    /// Until when (ms) a request holds the upload, if one does.
    pub lease_until: Option<i64>,
}

/// What a new upload needs.
pub struct NewUpload<'a> {
    pub id: &'a str,
    pub user_id: i64,
    pub length: Option<i64>,
    pub metadata: &'a str,
    pub name: &'a str,
    pub mime: &'a str,
    pub now: i64,
    pub expires_at: i64,
}

/// What one PATCH added.
pub struct Appended<'a> {
    pub received: i64,
    /// The part objects (`<leaf count>:<name>,` each) after it.
    pub parts: &'a str,
    pub multipart: Option<&'a str>,
    pub multipart_parts: &'a str,
    /// Hex digests of the leaves the PATCH completed.
    pub new_leaves: &'a str,
    pub tail: &'a [u8],
}

const COLUMNS: &str = "id, user_id, length, received, parts, leaves, multipart, multipart_parts, tail, metadata, name, mime, expires_at, cid, car_cid, lease_until";

/// What claiming an upload for a request gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    Claimed,
    /// Another request holds it.
    Busy,
    /// Its offset is not the one asked for.
    Moved,
    Gone,
}

impl Db {
    /// Bytes the account's unfinished uploads hold or announced (their
    /// length, or what arrived while it is deferred), besides `except`.
    pub async fn upload_reserved(&self, user_id: i64, now: i64, except: &str) -> Result<i64, sqlx::Error> {
        with_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT CAST(COALESCE(SUM(COALESCE(length, received)), 0) AS BIGINT) FROM uploads \
                 WHERE user_id = $1 AND cid IS NULL AND expires_at > $2 AND id <> $3",
            )
            .bind(user_id)
            .bind(now)
            .bind(except)
            .fetch_one(pool)
            .await?;
            Ok(row.get(0))
        })
    }

    pub async fn insert_upload(&self, u: &NewUpload<'_>) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO uploads (id, user_id, length, received, parts, leaves, tail, metadata, name, mime, created_at, expires_at) \
                 VALUES ($1, $2, $3, 0, '', '', $4, $5, $6, $7, $8, $9)",
            )
            .bind(u.id)
            .bind(u.user_id)
            .bind(u.length)
            .bind(Vec::<u8>::new())
            .bind(u.metadata)
            .bind(u.name)
            .bind(u.mime)
            .bind(u.now)
            .bind(u.expires_at)
            .execute(pool)
            .await
            .map(|_| ())
        })
    }

    /// The upload `id`, whoever owns it.
    pub async fn upload(&self, id: &str) -> Result<Option<UploadRow>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM uploads WHERE id = $1")).bind(id).fetch_optional(pool).await
        })
    }

    /// Every upload of the account (for removing their bytes with it).
    pub async fn uploads_of(&self, user_id: i64) -> Result<Vec<UploadRow>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM uploads WHERE user_id = $1")).bind(user_id).fetch_all(pool).await
        })
    }

    /// Sets a deferred length; false if it was set meanwhile.
    pub async fn set_upload_length(&self, id: &str, length: i64) -> Result<bool, sqlx::Error> {
        with_pool!(self, pool => {
            Ok(sqlx::query("UPDATE uploads SET length = $2 WHERE id = $1 AND length IS NULL")
                .bind(id)
                .bind(length)
                .execute(pool)
                .await?
                .rows_affected()
                > 0)
        })
    }

    /// Claims upload `id` for the request `lease` until `until`, if no
    /// other request holds it (its lease ran out at `now`) and, given
    /// `offset`, it is at that offset.
    pub async fn claim_upload(&self, id: &str, offset: Option<i64>, lease: &str, now: i64, until: i64) -> Result<Claim, sqlx::Error> {
        with_pool!(self, pool => {
            let claimed = sqlx::query(
                "UPDATE uploads SET lease = $3, lease_until = $5 WHERE id = $1 AND ($2 IS NULL OR received = $2) \
                 AND (lease_until IS NULL OR lease_until <= $4)",
            )
            .bind(id)
            .bind(offset)
            .bind(lease)
            .bind(now)
            .bind(until)
            .execute(pool)
            .await?
            .rows_affected();
            if claimed > 0 {
                return Ok(Claim::Claimed);
            }
            let row = sqlx::query("SELECT received, lease_until FROM uploads WHERE id = $1").bind(id).fetch_optional(pool).await?;
            Ok(match row {
                None => Claim::Gone,
                Some(r) if offset.is_some_and(|o| r.get::<i64, _>(0) != o) => Claim::Moved,
                Some(_) => Claim::Busy,
            })
        })
    }

    /// Keeps request `lease`'s hold on `id` until `until`; false if it lost it.
    pub async fn renew_upload_lease(&self, id: &str, lease: &str, until: i64) -> Result<bool, sqlx::Error> {
        with_pool!(self, pool => {
            Ok(sqlx::query("UPDATE uploads SET lease_until = $3 WHERE id = $1 AND lease = $2")
                .bind(id)
                .bind(lease)
                .bind(until)
                .execute(pool)
                .await?
                .rows_affected()
                > 0)
        })
    }

    /// Lets go of request `lease`'s hold on `id`.
    pub async fn release_upload(&self, id: &str, lease: &str) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE uploads SET lease = NULL, lease_until = NULL WHERE id = $1 AND lease = $2")
                .bind(id)
                .bind(lease)
                .execute(pool)
                .await
                .map(|_| ())
        })
    }

    /// Unfinished, unexpired uploads of the account.
    pub async fn open_uploads(&self, user_id: i64, now: i64) -> Result<i64, sqlx::Error> {
        with_pool!(self, pool => {
            Ok(sqlx::query("SELECT COUNT(*) FROM uploads WHERE user_id = $1 AND cid IS NULL AND expires_at > $2")
                .bind(user_id)
                .bind(now)
                .fetch_one(pool)
                .await?
                .get(0))
        })
    }

    /// Records a PATCH that started at `from`, made under `lease`; false if
    /// the upload moved meanwhile, is gone, or the lease was lost.
    pub async fn append_upload(&self, id: &str, from: i64, lease: &str, a: &Appended<'_>) -> Result<bool, sqlx::Error> {
        with_pool!(self, pool => {
            Ok(sqlx::query(
                "UPDATE uploads SET received = $3, parts = $4, leaves = leaves || $5, tail = $6, multipart = $8, multipart_parts = $9 \
                 WHERE id = $1 AND received = $2 AND cid IS NULL AND lease = $7",
            )
            .bind(id)
            .bind(from)
            .bind(a.received)
            .bind(a.parts)
            .bind(a.new_leaves)
            .bind(a.tail)
            .bind(lease)
            .bind(a.multipart)
            .bind(a.multipart_parts)
            .execute(pool)
            .await?
            .rows_affected()
                > 0)
        })
    }

    /// The upload became file `cid`: its parts are gone, its row stays (a
    /// client asking where it is learns it is complete) until it expires.
    pub async fn finish_upload(&self, id: &str, cid: &str, car_cid: &str) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE uploads SET cid = $2, car_cid = $3, parts = '', leaves = '', tail = $4, multipart = NULL, multipart_parts = '' WHERE id = $1")
                .bind(id)
                .bind(cid)
                .bind(car_cid)
                .bind(Vec::<u8>::new())
                .execute(pool)
                .await
                .map(|_| ())
        })
    }

    pub async fn delete_upload(&self, id: &str) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query("DELETE FROM uploads WHERE id = $1").bind(id).execute(pool).await.map(|_| ())
        })
    }

    /// Expired uploads that still hold bytes (at most `limit`).
    pub async fn expired_uploads(&self, now: i64, limit: i64) -> Result<Vec<String>, sqlx::Error> {
        with_pool!(self, pool => {
            Ok(sqlx::query(
                "SELECT id FROM uploads WHERE expires_at <= $1 \
                 AND (parts <> '' OR leaves <> '' OR length(tail) > 0 OR multipart IS NOT NULL) \
                 AND (lease_until IS NULL OR lease_until <= $1) \
                 ORDER BY expires_at LIMIT $2",
            )
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|r| r.get(0))
            .collect())
        })
    }

    /// An expired upload's bytes are gone; its row stays to answer 410.
    pub async fn clear_upload(&self, id: &str) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE uploads SET parts = '', leaves = '', tail = $2, multipart = NULL, multipart_parts = '' WHERE id = $1")
                .bind(id)
                .bind(Vec::<u8>::new())
                .execute(pool)
                .await
                .map(|_| ())
        })
    }

    /// Forgets uploads that expired before `before`; returns how many.
    pub async fn forget_uploads(&self, before: i64) -> Result<u64, sqlx::Error> {
        with_pool!(self, pool => {
            Ok(sqlx::query("DELETE FROM uploads WHERE expires_at <= $1").bind(before).execute(pool).await?.rows_affected())
        })
    }
}
