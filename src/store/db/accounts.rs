//! Accounts: registration, credentials, token subjects and revoked
//! sessions, the account page, password and peerId changes, deletion.

use super::{Db, Pool};
use sqlx::Row;

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

pub enum InsertUser {
    Created(i64),
    Taken,
}

impl Db {
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
}
