//! argon2id hashing, off the async executor and never on every core at once.

use crate::config::Settings;
use crate::error::{AppError, AppResult};
use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::Arc;
use tokio::sync::{OnceCell, Semaphore};

pub struct Hasher {
    params: Params,
    permits: Arc<Semaphore>,
    /// A real hash of a random password: verified against when the account
    /// does not exist, so that case costs the same time as a wrong password.
    dummy: OnceCell<String>,
}

impl Hasher {
    pub fn new(settings: &Settings) -> Result<Self, String> {
        let params = Params::new(
            settings.argon2_memory_kib,
            settings.argon2_iterations,
            settings.argon2_parallelism,
            None,
        )
        .map_err(|e| format!("invalid argon2 parameters: {e}"))?;
        Ok(Self { params, permits: Arc::new(Semaphore::new(settings.hash_concurrency())), dummy: OnceCell::new() })
    }

    fn argon2(params: Params) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }

    async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> AppResult<T> {
        let permit = self.permits.clone().acquire_owned().await.map_err(AppError::internal)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            job()
        })
        .await
        .map_err(AppError::internal)
    }

    pub async fn hash(&self, password: &str) -> AppResult<String> {
        let password = password.to_owned();
        let params = self.params.clone();
        self.run(move || {
            let salt = SaltString::generate(&mut OsRng);
            Self::argon2(params).hash_password(password.as_bytes(), &salt).map(|h| h.to_string())
        })
        .await?
        .map_err(AppError::internal)
    }

    /// Verifies `password` against `stored`, or against the dummy hash when
    /// there is no account (and then always answers false).
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> AppResult<bool> {
        let (hash, real) = match stored {
            Some(h) => (h.to_owned(), true),
            None => (self.dummy_hash().await?.to_owned(), false),
        };
        let password = password.to_owned();
        let params = self.params.clone();
        let ok = self
            .run(move || match PasswordHash::new(&hash) {
                Ok(parsed) => Self::argon2(params).verify_password(password.as_bytes(), &parsed).is_ok(),
                Err(_) => false,
            })
            .await?;
        Ok(ok && real)
    }

    async fn dummy_hash(&self) -> AppResult<&String> {
        self.dummy
            .get_or_try_init(|| async {
                let random = crate::util::random_base58(24);
                self.hash(&random).await
            })
            .await
    }
}
