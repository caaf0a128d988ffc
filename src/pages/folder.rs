//! `/files/folder?cid=…&path=…`: a folder the account uploaded, browsed:
//! its entries (folders open further down), each file downloaded by
//! itself, the whole folder as a CAR (plain links to
//! `GET /files/folder/download`, which hands out a signed link). Works
//! without JavaScript.

use crate::components::session::{load_failed, ToLogin};
use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::model::{human_bytes, FolderView};
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

/// The signed-in user's folder `cid` at `path`, as HTML made on the server
/// (the listing needs no script, so none of it is in the browser's bundle);
/// `None` when nobody is signed in.
#[server(endpoint = "my_folder_html")]
pub async fn my_folder_html(cid: String, path: String) -> Result<Option<String>, AppError> {
    use super::ssr;
    let Some(who) = ssr::session().await? else { return Ok(None) };
    let state = ssr::state()?;
    let (file, entries) = crate::service::files::folder_entries(&state, &who, &cid, &path).await?;
    Ok(Some(render(&FolderView { name: file.name, cid: file.cid, path, entries })))
}

#[component]
pub fn FolderPage() -> impl IntoView {
    let query = use_query_map();
    let listing = Resource::new(
        move || query.with(|q| (q.get("cid").unwrap_or_default(), q.get("path").unwrap_or_default())),
        |(cid, path)| my_folder_html(cid, path),
    );
    view! {
        <section>
            <p><a href="/files">"← All files"</a></p>
            <Suspense fallback=|| view! { <p class="loading">"Loading the folder…"</p> }>
                <ErrorBoundary fallback=load_failed("This folder")>
                    {move || Suspend::new(async move {
                        listing.await.map(|found| match found {
                            None => view! { <ToLogin/> }.into_any(),
                            Some(html) => view! { <div class="folder-view" inner_html=html></div> }.into_any(),
                        })
                    })}
                </ErrorBoundary>
            </Suspense>
        </section>
    }
}

#[cfg(feature = "ssr")]
mod html {
    /// `text` safe inside HTML text and double-quoted attributes.
    pub fn escape(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&#39;"),
                c => out.push(c),
            }
        }
        out
    }
}

/// `a/b` below `path`.
#[cfg(feature = "ssr")]
fn below(path: &str, name: &str) -> String {
    if path.is_empty() { name.to_owned() } else { format!("{path}/{name}") }
}

/// `text` percent-encoded for a query value (UTF-8; unreserved characters kept).
#[cfg(feature = "ssr")]
fn encode(text: &str) -> String {
    crate::util::percent_encode(text)
}

#[cfg(feature = "ssr")]
fn folder_href(cid: &str, path: &str) -> String {
    let mut href = format!("/files/folder?cid={}", encode(cid));
    if !path.is_empty() {
        href.push_str("&path=");
        href.push_str(&encode(path));
    }
    href
}

/// A link sending the browser to a fresh signed link of the file at
/// `path` (or, with `car`, the folder as a CAR): `GET /files/folder/download`.
#[cfg(feature = "ssr")]
fn download_link(cid: &str, path: &str, car: bool, text: &str, label: &str) -> String {
    let href = format!("/files/folder/download?cid={}&path={}{}", encode(cid), encode(path), if car { "&car=true" } else { "" });
    format!(r#"<a href="{}" rel="external" class="button small" aria-label="{}">{text}</a>"#, html::escape(&href), html::escape(label))
}

/// The folder's page body: title, breadcrumbs, the CAR link, the entries.
#[cfg(feature = "ssr")]
fn render(folder: &FolderView) -> String {
    use html::escape;
    let FolderView { name, cid, path, entries } = folder;
    let mut out = format!(r#"<h1 class="folder-title">{}</h1><nav class="crumbs" aria-label="Where in the folder">"#, escape(name));
    let mut crumbs = vec![(name.clone(), folder_href(cid, ""))];
    let mut at = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        at = below(&at, part);
        crumbs.push((part.to_owned(), folder_href(cid, &at)));
    }
    for (label, href) in crumbs {
        out.push_str(&format!(r#"<a href="{}">{}</a> / "#, escape(&href), escape(&label)));
    }
    out.push_str("</nav>");
    out.push_str(&download_link(cid, path, true, "Download as CAR", &format!("Download {name} as a CAR")));
    out.push_str(r#"<div class="table-wrap"><table class="files folder"><thead><tr><th>Name</th><th>Size</th><th><span class="sr-only">Actions</span></th></tr></thead><tbody>"#);
    for (entry, size, dir) in entries {
        let inner = below(path, entry);
        let size = human_bytes(*size as i64);
        if *dir {
            out.push_str(&format!(
                r#"<tr class="dir"><td class="name" data-label="Name"><a href="{}">{}/</a></td><td class="nowrap" data-label="Size">{size}</td><td></td></tr>"#,
                escape(&folder_href(cid, &inner)),
                escape(entry)
            ));
        } else {
            let link = download_link(cid, &inner, false, "Download", &format!("Download {entry}"));
            out.push_str(&format!(
                r#"<tr><td class="name" data-label="Name">{}</td><td class="nowrap" data-label="Size">{size}</td><td class="actions">{link}</td></tr>"#,
                escape(entry)
            ));
        }
    }
    out.push_str("</tbody></table></div>");
    out
}
