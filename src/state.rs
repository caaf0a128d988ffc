//! Everything a request handler or server function needs, shared by reference.

use crate::config::Settings;
use crate::service::{files::CidLocks, passwords::Hasher, throttle::Throttle, tokens::TokenKeys};
use crate::store::{blobs::BlobStore, Db};
use std::net::SocketAddr;
use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub leptos_options: LeptosOptions,
    pub settings: Settings,
    pub db: Db,
    pub tokens: TokenKeys,
    pub hasher: Hasher,
    pub throttle: Throttle,
    pub blobs: Arc<dyn BlobStore>,
    pub mailer: Box<dyn crate::mail::MailSender>,
    pub cid_locks: CidLocks,
    /// Real time; movable only with `test_clock` (see [`crate::clock`]).
    pub clock: Arc<crate::clock::Clock>,
    /// The address the server actually listens on.
    pub listen_addr: SocketAddr,
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}
