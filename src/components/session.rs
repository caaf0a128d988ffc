//! The session as the pages see it: who is signed in (asked once, and again
//! only when a login, a logout or an account deletion changed it), the
//! redirect a signed-out visitor gets, and what a page shows when its data
//! could not be loaded.

use leptos::prelude::*;
use leptos_router::{components::Redirect, hooks::use_location};

/// Counts changes of the session: the navigation bar asks who is signed in
/// again when it moves (not on every navigation).
#[derive(Clone, Copy)]
pub struct SessionEpoch(RwSignal<u64>);

impl SessionEpoch {
    /// Provided once, by the app's root.
    pub fn provide() {
        provide_context(Self(RwSignal::new(0)));
    }

    /// The current count, tracked: a resource keyed on it is fetched again when it moves.
    pub fn get() -> u64 {
        use_context::<Self>().map_or(0, |e| e.0.get())
    }

    /// Marks the session as changed once `action` has succeeded.
    pub fn after<I, O, E>(action: ServerAction<I>)
    where
        I: leptos::server_fn::ServerFn<Output = O, Error = E> + Clone + Send + Sync + 'static,
        O: Clone + Send + Sync + 'static,
        E: Clone + Send + Sync + 'static,
    {
        let epoch = use_context::<Self>();
        Effect::new(move |_| {
            if matches!(action.value().get(), Some(Ok(_))) {
                if let Some(epoch) = epoch {
                    epoch.0.update(|n| *n += 1);
                }
            }
        });
    }
}

/// Sends a signed-out visitor to log in, and back to this page afterwards.
#[component]
pub fn ToLogin() -> impl IntoView {
    let here = use_location().pathname.get_untracked();
    view! { <Redirect path=format!("/login?next={here}")/> }
}

/// What a page that loads data shows in its `ErrorBoundary` when loading
/// failed: `what` (e.g. "Your files") could not be loaded, and why.
pub fn load_failed(what: &'static str) -> impl FnMut(ArcRwSignal<Errors>) -> AnyView + Send + 'static {
    move |errors| {
        view! {
            <div class="form-error" role="alert">
                <p>{format!("{what} could not be loaded:")}</p>
                <ul>
                    {move || errors.get().into_iter().map(|(_, e)| view! { <li>{e.to_string()}</li> }).collect_view()}
                </ul>
            </div>
        }
        .into_any()
    }
}
