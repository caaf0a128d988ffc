use crate::components::form_error::FormError;
use crate::error::AppError;
use leptos::prelude::*;
use leptos_router::{components::A, hooks::use_query_map};

/// Checks the password, sets the session cookie and opens the dashboard.
#[server(endpoint = "log_in")]
pub async fn log_in(username: String, password: String, next: Option<String>) -> Result<(), AppError> {
    use super::ssr;
    let state = ssr::state()?;
    let client = ssr::client_addr().await?;
    let token = crate::service::accounts::login(&state, &username, &password, &client).await?;
    ssr::set_session_cookie(&token)?;
    leptos_axum::redirect(&local_path(next.as_deref()));
    Ok(())
}

/// Where to go after logging in: `next` if it is a path on this site, else
/// the dashboard. Accepted: a path that starts with one `/`, without
/// backslashes, control characters or spaces, which (decoded once more, for
/// clients that decode) still is such a path, and which a URL parser
/// resolves to this site. Browsers drop tabs and newlines and read `\` as
/// `/`, so `/\t/evil.example` would be another site: anything odd is refused.
pub fn local_path(next: Option<&str>) -> String {
    const HOME: &str = "/dashboard";
    fn plain(p: &str) -> bool {
        p.starts_with('/')
            && !p.starts_with("//")
            && !p.bytes().any(|b| b == b'\\' || b <= b' ' || b == 0x7f)
            && !p.chars().any(char::is_whitespace)
    }
    let Some(p) = next else { return HOME.to_owned() };
    if p.len() > 2048 || !plain(p) || !plain(&percent_decode(p)) {
        return HOME.to_owned();
    }
    #[cfg(feature = "ssr")]
    {
        let base = url::Url::parse("http://peervault.invalid/").expect("a valid base URL");
        match base.join(p) {
            Ok(u) if u.origin() == base.origin() => p.to_owned(),
            _ => HOME.to_owned(),
        }
    }
    #[cfg(not(feature = "ssr"))]
    p.to_owned()
}

/// `%XX` escapes decoded (bytes read as Latin-1: only ASCII matters here).
fn percent_decode(p: &str) -> String {
    let b = p.as_bytes();
    let mut out = String::with_capacity(p.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push(char::from((h * 16 + l) as u8));
                i += 3;
            }
            (c, _, _) => {
                out.push(char::from(c));
                i += 1;
            }
        }
    }
    out
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let login = ServerAction::<LogIn>::new();
    crate::components::session::SessionEpoch::after(login);
    let error = Signal::derive(move || login.value().get().and_then(Result::err));
    let query = use_query_map();
    let registered = move || query.read().get("registered").is_some();
    let was_reset = move || query.read().get("reset").is_some();
    let next = move || query.read().get("next").unwrap_or_default();
    view! {
        <section class="narrow">
            <h1>"Log in"</h1>
            <Show when=registered>
                <p class="notice" role="status">"Your account is ready. Log in to continue."</p>
            </Show>
            <Show when=was_reset>
                <p class="notice" role="status">"Your password was changed. Log in with the new one."</p>
            </Show>
            <ActionForm action=login attr:class="form">
                <input type="hidden" name="next" value=next/>
                <label for="login-username">"Username"</label>
                <input id="login-username" name="username" type="text" autocomplete="username" required/>
                <p class="hint">"Your email works too."</p>
                <label for="login-password">"Password"</label>
                <input id="login-password" name="password" type="password" autocomplete="current-password" required/>
                <FormError error/>
                <button type="submit" class="button" disabled=move || login.pending().get()>
                    {move || if login.pending().get() { "Logging in…" } else { "Log in" }}
                </button>
            </ActionForm>
            <p><A href="/reset-password">"Forgot password?"</A></p>
            <p>"No account yet? " <A href="/register">"Register"</A></p>
        </section>
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn next_stays_on_this_site() {
        use super::local_path;
        assert_eq!(local_path(Some("/files")), "/files");
        assert_eq!(local_path(Some("/files?x=1")), "/files?x=1");
        for bad in [
            "", "https://evil.example", "//evil.example", "/\\evil.example", "files", "/\t/evil.example/x",
            "/\n/evil.example", "/\r\nSet-Cookie: x=y", " /files", "/%2F%2Fevil.example", "/%5Cevil.example",
            "/%09/evil.example", "http:/evil.example", "\\\\evil.example", "/files x",
        ] {
            assert_eq!(local_path(Some(bad)), "/dashboard", "{bad}");
        }
        assert_eq!(local_path(None), "/dashboard");
    }
}
