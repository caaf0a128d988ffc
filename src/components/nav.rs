use crate::components::session::SessionEpoch;
use crate::pages::session::{whoami, LogOut};
use leptos::prelude::*;
use leptos_router::components::A;

/// The top bar: the brand, and the links that fit whether one is signed in.
#[component]
pub fn Nav() -> impl IntoView {
    // Asked once, and again when the session changed (a login, a logout,
    // an account deleted), so that shows at once.
    let user = Resource::new(SessionEpoch::get, |_| whoami());
    let logout = ServerAction::<LogOut>::new();
    SessionEpoch::after(logout);
    view! {
        <header class="topbar">
            <nav aria-label="Main">
                <A href="/" attr:class="brand">"peervault"</A>
                <Transition fallback=|| ()>
                    {move || Suspend::new(async move {
                        match user.await {
                            Ok(Some(name)) => view! {
                                <A href="/dashboard">"Dashboard"</A>
                                <A href="/files">"Files"</A>
                                <A href="/onboarding">"Onboarding"</A>
                                <A href="/account">"Account"</A>
                                <span class="who">{name}</span>
                                <ActionForm action=logout attr:class="inline">
                                    <button type="submit" class="button secondary small">"Log out"</button>
                                </ActionForm>
                            }.into_any(),
                            _ => view! {
                                <A href="/login">"Log in"</A>
                                <A href="/register">"Register"</A>
                            }.into_any(),
                        }
                    })}
                </Transition>
            </nav>
        </header>
    }
}
