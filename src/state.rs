//! What a request handler or server function needs, shared by reference:
//! the services, plus what only the web transport uses (Leptos' options).
//! Derefs to [`Services`], so handlers write `state.db` and pass `&state`
//! to a service; the services know nothing of this type.

use crate::service::Services;
use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub leptos_options: LeptosOptions,
    pub services: Services,
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0.services
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.0.leptos_options.clone()
    }
}
