//! `/files`: upload (with real progress and drag and drop), the file list,
//! download and delete. The upload form and the list work without JavaScript.

use crate::components::copy_button::CopyButton;
use crate::components::form_error::FormError;
use crate::error::AppError;
use crate::model::{human_bytes, replicas_text, utc_minute, FileView, UploadedView};
use leptos::prelude::*;
use leptos::server_fn::codec::{MultipartData, MultipartFormData};
use crate::components::session::{load_failed, ToLogin};

/// The signed-in user's files, newest first; `None` when nobody is signed in.
#[server(endpoint = "list_my_files")]
pub async fn list_my_files() -> Result<Option<Vec<FileView>>, AppError> {
    use super::ssr;
    let Some(who) = ssr::session().await? else { return Ok(None) };
    let state = ssr::state()?;
    let rows = crate::service::files::list(&state, &who).await?;
    let wanted = state.settings.replicas;
    Ok(Some(rows.into_iter().map(FileView::from).map(|f| FileView { wanted, ..f }).collect()))
}

/// Uploads from the page: the same multipart reading and service as `POST /upload_file`.
#[server(endpoint = "upload_my_file", input = MultipartFormData)]
pub async fn upload_my_file(data: MultipartData) -> Result<UploadedView, AppError> {
    use super::ssr;
    let who = ssr::require_user().await?;
    let parts = data.into_inner().ok_or_else(|| AppError::bad_request("Malformed multipart body"))?;
    let up = crate::transport::multipart::upload(&ssr::state()?, &who, parts).await?;
    Ok(UploadedView { cid: up.cid, car_cid: up.car_cid, size: up.size })
}

#[server(endpoint = "delete_my_file")]
pub async fn delete_my_file(cid: String) -> Result<(), AppError> {
    use super::ssr;
    let who = ssr::require_user().await?;
    crate::service::files::delete(&*ssr::state()?, &who, &cid).await
}

/// A signed link to the file. A plain form post (no JavaScript) is sent
/// straight to it; the page's script opens it itself.
#[server(endpoint = "download_my_file")]
pub async fn download_my_file(cid: String) -> Result<String, AppError> {
    use super::ssr;
    let who = ssr::require_user().await?;
    let url = crate::service::files::download_link(&*ssr::state()?, &who, &cid).await?;
    if ssr::is_plain_form_post().await? {
        leptos_axum::redirect(&url);
    }
    Ok(url)
}

#[component]
pub fn FilesPage() -> impl IntoView {
    let delete = ServerAction::<DeleteMyFile>::new();
    let download = ServerAction::<DownloadMyFile>::new();
    let (uploads, set_uploads) = signal(0u32);
    let files = Resource::new(
        move || (uploads.get(), delete.version().get()),
        |_| list_my_files(),
    );
    // Open the link a successful Download produced.
    Effect::new(move |_| {
        if let Some(Ok(url)) = download.value().get() {
            #[cfg(feature = "hydrate")]
            if let Some(w) = web_sys::window() {
                let _ = w.location().set_href(&url);
            }
            #[cfg(not(feature = "hydrate"))]
            let _ = url;
        }
    });
    let delete_error = Signal::derive(move || delete.value().get().and_then(Result::err));
    let download_error = Signal::derive(move || download.value().get().and_then(Result::err));
    view! {
        <section>
            <h1>"Files"</h1>
            <UploadForm on_done=move || set_uploads.update(|n| *n += 1)/>
            <FormError error=delete_error/>
            <FormError error=download_error/>
            <Suspense fallback=|| view! { <p class="loading">"Loading your files…"</p> }>
                <ErrorBoundary fallback=load_failed("Your files")>
                    {move || Suspend::new(async move {
                        files.await.map(|found| match found {
                            None => view! { <ToLogin/> }.into_any(),
                            Some(list) if list.is_empty() => view! {
                                <p class="empty">"No files yet. Upload one above."</p>
                            }.into_any(),
                            Some(list) => view! { <FileTable list delete download/> }.into_any(),
                        })
                    })}
                </ErrorBoundary>
            </Suspense>
        </section>
    }
}

#[component]
fn FileTable(
    list: Vec<FileView>,
    delete: ServerAction<DeleteMyFile>,
    download: ServerAction<DownloadMyFile>,
) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table class="files">
                <thead>
                    <tr><th>"Name"</th><th>"Size"</th><th>"Type"</th><th>"Uploaded"</th><th>"Copies"</th><th>"CID"</th><th><span class="sr-only">"Actions"</span></th></tr>
                </thead>
                <tbody>
                    {list.into_iter().map(|f| {
                        let FileView { name, cid, mime, size, uploaded_at, replicas, wanted, .. } = f;
                        let short = replicas < wanted;
                        let label = format!("Copy CID of {name}");
                        let (row_cid, title, shown, copy, download_cid, delete_cid) =
                            (cid.clone(), cid.clone(), cid.clone(), cid.clone(), cid.clone(), cid);
                        view! {
                            <tr data-cid=row_cid>
                                <td class="name" data-label="Name">{name}</td>
                                <td class="nowrap" data-label="Size">{human_bytes(size)}</td>
                                <td data-label="Type">{mime}</td>
                                <td data-label="Uploaded">{utc_minute(uploaded_at)}</td>
                                <td class="nowrap replicas" class:short=short data-label="Copies"
                                    title="Copies held by the network's storage nodes; the server keeps its own copy as well">
                                    {replicas_text(replicas, wanted)}
                                    {short.then(|| view! { <span class="warn-badge">" fewer than wanted"</span> })}
                                </td>
                                <td data-label="CID">
                                    <div class="cid"><code title=title>{shown}</code><CopyButton text=copy label/></div>
                                </td>
                                <td class="actions">
                                    <ActionForm action=download attr:class="inline">
                                        <input type="hidden" name="cid" value=download_cid/>
                                        <button type="submit" class="button small">"Download"</button>
                                    </ActionForm>
                                    <ActionForm action=delete attr:class="inline">
                                        <input type="hidden" name="cid" value=delete_cid/>
                                        <button type="submit" class="button secondary small">"Delete"</button>
                                    </ActionForm>
                                </td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

/// A plain multipart form (works without JavaScript); once hydrated, the
/// submission goes through XMLHttpRequest so the bar shows real progress.
#[component]
fn UploadForm(on_done: impl Fn() + Clone + Send + Sync + 'static) -> impl IntoView {
    let action = <UploadMyFile as leptos::server_fn::ServerFn>::PATH;
    let (progress, set_progress) = signal(None::<f64>);
    // A plain form post that failed comes back here with the error in the URL.
    let (error, set_error) = signal(returned_error(action));
    let (chosen, set_chosen) = signal(None::<String>);
    let (dragging, set_dragging) = signal(false);
    let form_ref = NodeRef::<leptos::html::Form>::new();
    let input_ref = NodeRef::<leptos::html::Input>::new();

    let on_submit = {
        let on_done = on_done.clone();
        move |ev: leptos::ev::SubmitEvent| {
            #[cfg(feature = "hydrate")]
            {
                ev.prevent_default();
                if let Some(form) = form_ref.get() {
                    xhr::send(&form, action, set_progress, set_error, on_done.clone());
                }
            }
            #[cfg(not(feature = "hydrate"))]
            let _ = (&ev, &on_done, form_ref, set_progress, set_error);
        }
    };
    let on_change = move |_| {
        let name = input_ref.get().and_then(|i| i.files()).and_then(|f| f.get(0)).map(|f| f.name());
        set_chosen.set(name);
    };
    let on_drop = move |ev: leptos::ev::DragEvent| {
        ev.prevent_default();
        set_dragging.set(false);
        if let (Some(input), Some(files)) = (input_ref.get(), ev.data_transfer().and_then(|d| d.files())) {
            input.set_files(Some(&files));
            set_chosen.set(files.get(0).map(|f| f.name()));
        }
    };
    view! {
        <form node_ref=form_ref class="form upload" method="post" enctype="multipart/form-data" action=action on:submit=on_submit>
            <div
                class="dropzone"
                class:dragging=move || dragging.get()
                on:dragover=move |ev: leptos::ev::DragEvent| { ev.prevent_default(); set_dragging.set(true); }
                on:dragleave=move |_| set_dragging.set(false)
                on:drop=on_drop
            >
                <label for="upload-file">"File"</label>
                <input id="upload-file" node_ref=input_ref name="file" type="file" required on:change=on_change/>
                <p class="hint">{move || chosen.get().map(|n| format!("Selected: {n}")).unwrap_or_else(|| "Choose a file or drop it here.".into())}</p>
            </div>
            <label for="upload-name">"Name"</label>
            <input id="upload-name" name="name" type="text" maxlength="255" placeholder="Defaults to the file's name"/>
            <FormError error/>
            <Show when=move || progress.get().is_some()>
                <label for="upload-progress">"Upload progress"</label>
                <progress id="upload-progress" max="100" value=move || progress.get().unwrap_or(0.0).to_string()>
                    {move || format!("{:.0}%", progress.get().unwrap_or(0.0))}
                </progress>
            </Show>
            <button type="submit" class="button" disabled=move || progress.get().is_some()>
                {move || if progress.get().is_some() { "Uploading…" } else { "Upload" }}
            </button>
        </form>
    }
}

/// The error a plain (no JavaScript) post to `path` was redirected back with.
fn returned_error(path: &str) -> Option<AppError> {
    use leptos::server::ServerActionError;
    use leptos::server_fn::error::ServerFnUrlError;
    use_context::<ServerActionError>()
        .filter(|e| e.path() == path)
        .map(|e| ServerFnUrlError::<AppError>::decode_err(e.err()))
}

#[cfg(feature = "hydrate")]
mod xhr {
    //! The upload request, sent with XMLHttpRequest for its progress events.
    use crate::error::AppError;
    use leptos::prelude::*;
    use wasm_bindgen::prelude::*;
    use web_sys::{FormData, HtmlFormElement, ProgressEvent, XmlHttpRequest};

    pub fn send(
        form: &HtmlFormElement,
        url: &str,
        set_progress: WriteSignal<Option<f64>>,
        set_error: WriteSignal<Option<AppError>>,
        on_done: impl Fn() + 'static,
    ) {
        let fail = move |message: &str| {
            set_progress.set(None);
            set_error.set(Some(AppError::new(0, message)));
        };
        let (Ok(data), Ok(xhr)) = (FormData::new_with_form(form), XmlHttpRequest::new()) else {
            return fail("This browser cannot send the file.");
        };
        set_error.set(None);
        set_progress.set(Some(0.0));
        let on_progress = Closure::<dyn FnMut(ProgressEvent)>::new(move |e: ProgressEvent| {
            if e.length_computable() && e.total() > 0.0 {
                set_progress.set(Some(e.loaded() / e.total() * 100.0));
            }
        });
        let upload = xhr.upload().ok();
        if let Some(upload) = &upload {
            upload.set_onprogress(Some(on_progress.as_ref().unchecked_ref()));
        }
        // One handler for the end (success, failure or interruption): it runs
        // once, frees itself, and drops the progress handler with it, so no
        // closure outlives its upload.
        let done_xhr = xhr.clone();
        let on_end = Closure::once_into_js(move || {
            if let Some(upload) = &upload {
                upload.set_onprogress(None);
            }
            drop(on_progress);
            set_progress.set(None);
            let status = done_xhr.status().unwrap_or(0);
            if status == 0 {
                return fail("The upload was interrupted. Check your connection.");
            }
            if (200..300).contains(&status) {
                on_done();
                return;
            }
            let body = done_xhr.response_text().ok().flatten().unwrap_or_default();
            let error = serde_json::from_str::<AppError>(&body)
                .unwrap_or_else(|_| AppError::new(status, format!("The upload failed (HTTP {status}).")));
            set_error.set(Some(error));
        });
        xhr.set_onloadend(Some(on_end.unchecked_ref()));
        let sent = xhr
            .open("POST", url)
            .and_then(|()| xhr.set_request_header("Accept", "application/json"))
            .and_then(|()| xhr.send_with_opt_form_data(Some(&data)));
        if sent.is_err() {
            fail("The upload could not be started.");
        }
    }
}
