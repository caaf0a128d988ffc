//! The HTML shell, the root component and the route table.

use crate::components::nav::Nav;
use crate::pages::{
    account::AccountPage, onboarding::OnboardingPage,
    dashboard::DashboardPage, files::FilesPage, folder::FolderPage, home::HomePage, login::LoginPage, not_found::NotFound, register::RegisterPage,
    reset::ResetPasswordPage,
};
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    SsrMode, StaticSegment,
};

pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    crate::components::session::SessionEpoch::provide();
    view! {
        <Stylesheet id="leptos" href="/pkg/peervault.css"/>
        <Title text="peervault"/>
        <Router>
            <Nav/>
            <main class="page">
                <Routes fallback=NotFound>
                    <Route path=StaticSegment("") view=HomePage/>
                    <Route path=StaticSegment("register") view=RegisterPage/>
                    <Route path=StaticSegment("login") view=LoginPage/>
                    <Route path=StaticSegment("reset-password") view=ResetPasswordPage/>
                    // Rendered whole before it is sent, so a signed-out
                    // visitor gets a real redirect to /login.
                    <Route path=StaticSegment("dashboard") view=DashboardPage ssr=SsrMode::Async/>
                    <Route path=StaticSegment("files") view=FilesPage ssr=SsrMode::Async/>
                    <Route path=(StaticSegment("files"), StaticSegment("folder")) view=FolderPage ssr=SsrMode::Async/>
                    <Route path=StaticSegment("onboarding") view=OnboardingPage ssr=SsrMode::Async/>
                    <Route path=StaticSegment("account") view=AccountPage ssr=SsrMode::Async/>
                </Routes>
            </main>
        </Router>
    }
}
