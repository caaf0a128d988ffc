use leptos::prelude::*;
use leptos_router::{components::A, hooks::use_query_map};

#[component]
pub fn HomePage() -> impl IntoView {
    let query = use_query_map();
    let deleted = move || query.read().get("deleted").is_some();
    view! {
        <Show when=deleted>
            <p class="notice" role="status">"Your account and its files were deleted."</p>
        </Show>
        <section class="hero">
            <h1>"peervault"</h1>
            <p class="lead">
                "The coordinator of a decentralized storage network. Store files addressed by their content, "
                "the same CIDs IPFS uses; rent out spare storage on your Android device and earn coins "
                "for every hour it stays online."
            </p>
            <p class="actions">
                <A href="/register" attr:class="button">"Create an account"</A>
                <A href="/login" attr:class="button secondary">"Log in"</A>
            </p>
        </section>
        <section class="cards">
            <article class="card">
                <h2>"Rent out storage"</h2>
                <p>"Pledge storage from your phone; the server measures its uptime from heartbeats and credits coins per GB-hour."</p>
            </article>
            <article class="card">
                <h2>"Follow your node"</h2>
                <p>"The dashboard shows your pledge, coins, traffic and the space you use, all from recorded facts."</p>
            </article>
            <article class="card">
                <h2>"For Android developers"</h2>
                <p>"The JSON API is described in " <a href="/openapi.json">"/openapi.json"</a> " and in docs/API.md."</p>
            </article>
        </section>
    }
}
