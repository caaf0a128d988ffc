//! Password resets: one pending code per account.

use super::{Db, Pool};

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

impl Db {
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
}
