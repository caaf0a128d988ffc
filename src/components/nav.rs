use crate::pages::session::{whoami, LogOut};
use leptos::prelude::*;
use leptos_router::{components::A, hooks::use_location};

/// The top bar: the brand, and the links that fit whether one is signed in.
#[component]
pub fn Nav() -> impl IntoView {
    let location = use_location();
    // Asked again on every navigation, so logging in or out shows at once.
    let user = Resource::new(move || location.pathname.get(), |_| whoami());
    let logout = ServerAction::<LogOut>::new();
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
