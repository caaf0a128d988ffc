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
    let views = rows.into_iter().map(|row| {
        let share_url = (row.public != 0).then(|| crate::service::files::share_url(&state, &row.cid));
        FileView { wanted, share_url, ..FileView::from(row) }
    });
    Ok(Some(views.collect()))
}

/// Turns sharing on or off (`POST /share_file`'s service).
#[server(endpoint = "share_my_file")]
pub async fn share_my_file(cid: String, public: bool) -> Result<(), AppError> {
    use super::ssr;
    let who = ssr::require_user().await?;
    crate::service::files::share(&*ssr::state()?, &who, &cid, public).await.map(|_| ())
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
    let share = ServerAction::<ShareMyFile>::new();
    let (uploads, set_uploads) = signal(0u32);
    let files = Resource::new(
        move || (uploads.get(), delete.version().get(), share.version().get()),
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
    let share_error = Signal::derive(move || share.value().get().and_then(Result::err));
    view! {
        <section>
            <h1>"Files"</h1>
            <UploadForm on_done=move || set_uploads.update(|n| *n += 1)/>
            <FormError error=delete_error/>
            <FormError error=download_error/>
            <FormError error=share_error/>
            <Suspense fallback=|| view! { <p class="loading">"Loading your files…"</p> }>
                <ErrorBoundary fallback=load_failed("Your files")>
                    {move || Suspend::new(async move {
                        files.await.map(|found| match found {
                            None => view! { <ToLogin/> }.into_any(),
                            Some(list) if list.is_empty() => view! {
                                <p class="empty">"No files yet. Upload one above."</p>
                            }.into_any(),
                            Some(list) => view! { <FileTable list delete download share/> }.into_any(),
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
    share: ServerAction<ShareMyFile>,
) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table class="files">
                <thead>
                    <tr><th>"Name"</th><th>"Size"</th><th>"Type"</th><th>"Uploaded"</th><th>"Copies"</th><th>"CID"</th><th><span class="sr-only">"Actions"</span></th></tr>
                </thead>
                <tbody>
                    {list.into_iter().map(|f| {
                        let FileView { name, cid, mime, size, uploaded_at, replicas, wanted, share_url, folder_files, .. } = f;
                        let kind = match folder_files {
                            Some(n) => format!("Folder, {n} {}", if n == 1 { "file" } else { "files" }),
                            None => mime,
                        };
                        let browse = folder_files.map(|_| format!("/files/folder?cid={cid}"));
                        let shared = share_url.is_some();
                        let share_cid = cid.clone();
                        let share_label = format!("Copy the share link of {name}");
                        let short = replicas < wanted;
                        let label = format!("Copy CID of {name}");
                        let (row_cid, title, shown, copy, download_cid, delete_cid) =
                            (cid.clone(), cid.clone(), cid.clone(), cid.clone(), cid.clone(), cid);
                        view! {
                            <tr data-cid=row_cid>
                                <td class="name" data-label="Name">
                                    {match browse {
                                        Some(href) => view! { <a href=href class="browse">{name}"/"</a> }.into_any(),
                                        None => name.into_any(),
                                    }}
                                </td>
                                <td class="nowrap" data-label="Size">{human_bytes(size)}</td>
                                <td data-label="Type">{kind}</td>
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
                                    <ActionForm action=share attr:class="inline">
                                        <input type="hidden" name="cid" value=share_cid/>
                                        <input type="hidden" name="public" value=if shared { "false" } else { "true" }/>
                                        <button type="submit" class="button secondary small">{if shared { "Stop sharing" } else { "Share" }}</button>
                                    </ActionForm>
                                    <ActionForm action=delete attr:class="inline">
                                        <input type="hidden" name="cid" value=delete_cid/>
                                        <button type="submit" class="button secondary small">"Delete"</button>
                                    </ActionForm>
                                    {share_url.map(|url| view! {
                                        <div class="share-link">
                                            "Shared: "<a href=url.clone() class="share-url">{url.clone()}</a>
                                            <CopyButton text=url label=share_label/>
                                        </div>
                                    })}
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
/// file goes up as a resumable upload (tus, `/uploads`) in pieces, with
/// real progress: a dropped connection is retried from where the server
/// got to, and an upload cut by a reload resumes when the same file is
/// chosen again.
#[component]
fn UploadForm(on_done: impl Fn() + Clone + Send + Sync + 'static) -> impl IntoView {
    let action = <UploadMyFile as leptos::server_fn::ServerFn>::PATH;
    let (progress, set_progress) = signal(None::<f64>);
    // Where a resumable upload stands ("Resumed at …", "Connection lost …").
    let (note, set_note) = signal(None::<String>);
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| set_note.set(tus::unfinished()));
    // A plain form post that failed comes back here with the error in the URL.
    let (error, set_error) = signal(returned_error(action));
    let (chosen, set_chosen) = signal(None::<String>);
    let (dragging, set_dragging) = signal(false);
    let form_ref = NodeRef::<leptos::html::Form>::new();
    let input_ref = NodeRef::<leptos::html::Input>::new();
    let name_ref = NodeRef::<leptos::html::Input>::new();
    let folder_ref = NodeRef::<leptos::html::Input>::new();
    // Files dropped from a folder, with their paths (kept until the upload).
    #[cfg(feature = "hydrate")]
    let dropped_files = StoredValue::new_local(Vec::<(web_sys::File, String)>::new());
    #[cfg(not(feature = "hydrate"))]
    let dropped_files = ();

    let on_submit = {
        let on_done = on_done.clone();
        move |ev: leptos::ev::SubmitEvent| {
            #[cfg(feature = "hydrate")]
            {
                ev.prevent_default();
                let name = name_ref.get().map(|i| i.value()).unwrap_or_default();
                let ui = tus::Ui { set_progress, set_error, set_note };
                let list = |input: Option<web_sys::HtmlInputElement>| -> Vec<web_sys::File> {
                    let files = input.and_then(|i| i.files());
                    files.map(|f| (0..f.length()).filter_map(|i| f.get(i)).collect()).unwrap_or_default()
                };
                let folder = list(folder_ref.get());
                let chosen_files = list(input_ref.get());
                let mut dropped = dropped_files.get_value();
                if !folder.is_empty() {
                    // A folder: each file by its path in it.
                    let named = folder.into_iter().map(|f| { let path = tus::relative_path(&f); (f, path) }).collect();
                    tus::start_folder(named, name, ui, on_done.clone());
                } else if !dropped.is_empty() {
                    dropped_files.set_value(Vec::new());
                    tus::start_folder(std::mem::take(&mut dropped), name, ui, on_done.clone());
                } else if chosen_files.len() > 1 {
                    // Several files: a folder of them.
                    let named = chosen_files.into_iter().map(|f| { let path = f.name(); (f, path) }).collect();
                    tus::start_folder(named, name, ui, on_done.clone());
                } else if let Some(file) = chosen_files.into_iter().next() {
                    tus::start(file, name, ui, on_done.clone());
                } else {
                    set_error.set(Some(AppError::bad_request("No file Selected")));
                }
            }
            #[cfg(not(feature = "hydrate"))]
            let _ = (&ev, &on_done, form_ref, set_progress, set_error, set_note, folder_ref, dropped_files);
        }
    };
    let on_change = move |_| {
        let files = input_ref.get().and_then(|i| i.files());
        let shown = files.and_then(|f| match f.length() {
            0 => None,
            1 => f.get(0).map(|f| f.name()),
            n => Some(format!("{n} files")),
        });
        set_chosen.set(shown);
    };
    let on_folder = move |_| {
        let count = folder_ref.get().and_then(|i| i.files()).map_or(0, |f| f.length());
        set_chosen.set((count > 0).then(|| format!("a folder of {count} files")));
    };
    let on_drop = move |ev: leptos::ev::DragEvent| {
        ev.prevent_default();
        set_dragging.set(false);
        let Some(transfer) = ev.data_transfer() else { return };
        // A dropped folder (or several files) goes up as a folder; one file as before.
        #[cfg(feature = "hydrate")]
        {
            let items = transfer.items();
            let has_folder = (0..items.length())
                .filter_map(|i| items.get(i).and_then(|item| item.webkit_get_as_entry().ok().flatten()))
                .any(|entry| entry.is_directory());
            if has_folder || items.length() > 1 {
                // Loose files as the drop lists them, if its entries cannot be read.
                let loose: Vec<(web_sys::File, String)> = transfer
                    .files()
                    .map(|f| (0..f.length()).filter_map(|i| f.get(i)).map(|f| { let n = f.name(); (f, n) }).collect())
                    .unwrap_or_default();
                leptos::task::spawn_local(async move {
                    let mut files = tus::dropped(items).await;
                    if files.is_empty() {
                        files = loose;
                    }
                    set_chosen.set(Some(format!("{} dropped files", files.len())));
                    dropped_files.set_value(files);
                });
                return;
            }
        }
        if let (Some(input), Some(files)) = (input_ref.get(), transfer.files()) {
            input.set_files(Some(&files));
            set_chosen.set(files.get(0).map(|f| f.name()));
        }
    };
    // The folder picker: `webkitdirectory`, which the view macro does not know.
    let folder_input = leptos::html::input()
        .id("upload-folder")
        .node_ref(folder_ref)
        .name("file")
        .r#type("file")
        .multiple(true)
        .attr("webkitdirectory", "")
        .on(leptos::ev::change, on_folder);
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
                <input id="upload-file" node_ref=input_ref name="file" type="file" multiple on:change=on_change/>
                <label for="upload-folder">"Or a folder"</label>
                {folder_input}
                <p class="hint">{move || chosen.get().map(|n| format!("Selected: {n}")).unwrap_or_else(|| "Choose files or a folder, or drop them here. Several files go up as one folder.".into())}</p>
            </div>
            <label for="upload-name">"Name"</label>
            <input id="upload-name" node_ref=name_ref name="name" type="text" maxlength="255" placeholder="Defaults to the file's name"/>
            <FormError error/>
            <Show when=move || note.get().is_some()>
                <p class="hint upload-note" role="status">{move || note.get().unwrap_or_default()}</p>
            </Show>
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
mod tus {
    //! A tus 1.0 client (docs/API.md, `/uploads`): the file goes up in
    //! pieces of [`PIECE`] bytes with XMLHttpRequest (for progress events),
    //! authenticated by the session cookie. A piece cut by the network is
    //! retried, after asking the server where it got to, until the
    //! connection is back; the upload's address is kept in localStorage,
    //! so after a reload choosing the same file resumes it.
    use crate::error::AppError;
    use crate::model::human_bytes;
    use leptos::prelude::*;
    use std::rc::Rc;
    use wasm_bindgen::prelude::*;
    use wasm_bindgen_futures::JsFuture;
    use web_sys::{Blob, File, ProgressEvent, Storage, XmlHttpRequest};

    const PIECE: f64 = 4.0 * 1024.0 * 1024.0;
    const KEY_PREFIX: &str = "peervault-upload:";

    #[derive(Clone, Copy)]
    pub struct Ui {
        pub set_progress: WriteSignal<Option<f64>>,
        pub set_error: WriteSignal<Option<AppError>>,
        pub set_note: WriteSignal<Option<String>>,
    }

    fn storage() -> Option<Storage> {
        web_sys::window().and_then(|w| w.local_storage().ok().flatten())
    }

    /// A note on an upload a reload cut short, if there is one.
    pub fn unfinished() -> Option<String> {
        let storage = storage()?;
        let len = storage.length().ok()?;
        (0..len).filter_map(|i| storage.key(i).ok().flatten()).find_map(|key| {
            let name = key.strip_prefix(KEY_PREFIX)?.split('\n').next()?.to_owned();
            Some(format!("The upload of {name} did not finish: choose the same file and upload it again to resume."))
        })
    }

    pub fn start(file: File, name: String, ui: Ui, on_done: impl Fn() + 'static) {
        ui.set_error.set(None);
        ui.set_progress.set(Some(0.0));
        leptos::task::spawn_local(async move {
            let outcome = run(&file, name.trim(), ui).await;
            ui.set_progress.set(None);
            match outcome {
                Ok(()) => {
                    ui.set_note.set(None);
                    on_done();
                }
                Err(e) => ui.set_error.set(Some(e)),
            }
        });
    }

    /// Sends several files as one folder (each named by its path in it) in
    /// one multipart request to the page's upload function, with progress.
    pub fn start_folder(files: Vec<(File, String)>, name: String, ui: Ui, on_done: impl Fn() + 'static) {
        ui.set_error.set(None);
        ui.set_progress.set(Some(0.0));
        leptos::task::spawn_local(async move {
            let outcome = send_folder(&files, name.trim(), ui).await;
            ui.set_progress.set(None);
            match outcome {
                Ok(()) => on_done(),
                Err(e) => ui.set_error.set(Some(e)),
            }
        });
    }

    async fn send_folder(files: &[(File, String)], name: &str, ui: Ui) -> Result<(), AppError> {
        let form = web_sys::FormData::new().map_err(|_| AppError::internal("no FormData"))?;
        if !name.is_empty() {
            let _ = form.append_with_str("name", name);
        }
        let mut total = 0.0;
        for (file, path) in files {
            total += file.size();
            form.append_with_blob_and_filename("file", file, path).map_err(|_| AppError::internal("no FormData"))?;
        }
        let on_progress: Rc<dyn Fn(f64)> = Rc::new(move |sent| ui.set_progress.set(Some((sent / total.max(1.0) * 100.0).min(100.0))));
        let url = <super::UploadMyFile as leptos::server_fn::ServerFn>::PATH;
        let answer = request("POST", url, &[], Some(Body::Form(&form)), Some(on_progress)).await;
        match answer.status {
            200 => Ok(()),
            0 => Err(AppError::new(503, "The connection was lost: the folder was not uploaded. Try again.")),
            _ => Err(answer.error()),
        }
    }

    /// A file's path in the folder it was chosen with (`webkitRelativePath`).
    pub fn relative_path(file: &File) -> String {
        js_sys::Reflect::get(file, &JsValue::from_str("webkitRelativePath")).ok().and_then(|v| v.as_string()).unwrap_or_else(|| file.name())
    }

    /// The files of what was dropped: each folder read through (its files
    /// named by their paths), and loose files by their names.
    pub async fn dropped(items: web_sys::DataTransferItemList) -> Vec<(File, String)> {
        let mut entries = Vec::new();
        for i in 0..items.length() {
            if let Some(entry) = items.get(i).and_then(|item| item.webkit_get_as_entry().ok().flatten()) {
                entries.push(entry);
            }
        }
        let mut out = Vec::new();
        while let Some(entry) = entries.pop() {
            let path = entry.full_path().trim_start_matches('/').to_owned();
            if entry.is_directory() {
                let dir: web_sys::FileSystemDirectoryEntry = entry.unchecked_into();
                let reader = dir.create_reader();
                // readEntries gives a batch at a time, then an empty one.
                loop {
                    let batch = js_sys::Promise::new(&mut |resolve, reject| {
                        let _ = reader.read_entries_with_callback_and_callback(&resolve, &reject);
                    });
                    let Ok(batch) = JsFuture::from(batch).await else { break };
                    let batch: js_sys::Array = batch.unchecked_into();
                    if batch.length() == 0 {
                        break;
                    }
                    entries.extend(batch.iter().map(|e| e.unchecked_into::<web_sys::FileSystemEntry>()));
                }
            } else if entry.is_file() {
                let file_entry: web_sys::FileSystemFileEntry = entry.unchecked_into();
                let file = js_sys::Promise::new(&mut |resolve, reject| {
                    file_entry.file_with_callback_and_callback(&resolve, &reject);
                });
                if let Ok(file) = JsFuture::from(file).await {
                    out.push((file.unchecked_into::<File>(), path));
                }
            }
        }
        out
    }

    /// One request's answer (status 0: the network failed).
    struct Answer {
        status: u16,
        xhr: XmlHttpRequest,
    }

    impl Answer {
        fn header(&self, name: &str) -> Option<String> {
            self.xhr.get_response_header(name).ok().flatten()
        }

        fn offset(&self) -> Option<f64> {
            self.header("Upload-Offset").and_then(|v| v.parse().ok())
        }

        fn error(&self) -> AppError {
            // The JSON routes answer {"message": ...}.
            let body = self.xhr.response_text().ok().flatten().unwrap_or_default();
            serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
                .map(|message| AppError::new(self.status, message))
                .unwrap_or_else(|| AppError::new(self.status, format!("The upload failed (HTTP {}).", self.status)))
        }
    }

    /// What a request sends: a piece of a file, or a form (a folder's files).
    enum Body<'a> {
        Blob(&'a Blob),
        Form(&'a web_sys::FormData),
    }

    async fn request(method: &str, url: &str, headers: &[(&str, String)], body: Option<Body<'_>>, progress: Option<Rc<dyn Fn(f64)>>) -> Answer {
        let Ok(xhr) = XmlHttpRequest::new() else {
            return Answer { status: 0, xhr: JsValue::NULL.unchecked_into() };
        };
        let ended = js_sys::Promise::new(&mut |resolve, _| {
            let done = Closure::once_into_js(move || {
                let _ = resolve.call0(&JsValue::NULL);
            });
            xhr.set_onloadend(Some(done.unchecked_ref()));
        });
        let on_progress = progress.map(|p| Closure::<dyn FnMut(ProgressEvent)>::new(move |e: ProgressEvent| p(e.loaded())));
        let upload = xhr.upload().ok();
        if let (Some(upload), Some(p)) = (&upload, &on_progress) {
            upload.set_onprogress(Some(p.as_ref().unchecked_ref()));
        }
        let mut sent = xhr.open(method, url);
        sent = sent.and_then(|()| xhr.set_request_header("Tus-Resumable", "1.0.0"));
        sent = sent.and_then(|()| xhr.set_request_header("Accept", "application/json"));
        for (name, value) in headers {
            sent = sent.and_then(|()| xhr.set_request_header(name, value));
        }
        sent = sent.and_then(|()| match body {
            None => xhr.send(),
            Some(Body::Blob(blob)) => xhr.send_with_opt_blob(Some(blob)),
            Some(Body::Form(form)) => xhr.send_with_opt_form_data(Some(form)),
        });
        if sent.is_ok() {
            let _ = JsFuture::from(ended).await;
        }
        if let Some(upload) = &upload {
            upload.set_onprogress(None);
        }
        drop(on_progress);
        let status = if sent.is_ok() { xhr.status().unwrap_or(0) } else { 0 };
        Answer { status, xhr }
    }

    async fn sleep(ms: i32) {
        let wait = js_sys::Promise::new(&mut |resolve, _| {
            if let Some(w) = web_sys::window() {
                let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
            }
        });
        let _ = JsFuture::from(wait).await;
    }

    /// Base64 of `text`'s UTF-8 bytes (Upload-Metadata values).
    fn base64(text: &str) -> String {
        const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in text.as_bytes().chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..4 {
                out.push(if i <= chunk.len() { ABC[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
            }
        }
        out
    }

    /// Where the upload at `url` stands; `None` when the server no longer has it.
    async fn offset_of(url: &str, ui: Ui) -> Result<Option<f64>, AppError> {
        let mut wait = 500;
        loop {
            let answer = request("HEAD", url, &[], None, None).await;
            match answer.status {
                200 => return Ok(answer.offset()),
                0 => {
                    ui.set_note.set(Some("Connection lost: waiting for it to come back…".into()));
                    sleep(wait).await;
                    wait = (wait * 2).min(5000);
                }
                404 | 410 => return Ok(None),
                status => return Err(AppError::new(status, format!("The upload failed (HTTP {status})."))),
            }
        }
    }

    async fn run(file: &File, name: &str, ui: Ui) -> Result<(), AppError> {
        let name = if name.is_empty() { file.name() } else { name.to_owned() };
        let size = file.size();
        let total = |n: f64| human_bytes(n as i64);
        let key = format!("{KEY_PREFIX}{name}\n{}\n{size}\n{}", file.name(), file.last_modified());
        let storage = storage();
        let kept = storage.as_ref().and_then(|s| s.get_item(&key).ok().flatten());
        let mut offset = 0.0;
        let mut url = None;
        if let Some(kept) = kept {
            if let Some(at) = offset_of(&kept, ui).await? {
                offset = at;
                url = Some(kept);
                ui.set_note.set(Some(format!("Resumed at {} of {}", total(offset), total(size))));
            }
        }
        let url = match url {
            Some(url) => url,
            None => {
                let metadata = format!("filename {},filetype {}", base64(&name), base64(&file.type_()));
                let headers = [("Upload-Length", format!("{size}")), ("Upload-Metadata", metadata)];
                let answer = request("POST", "/uploads", &headers, None, None).await;
                if answer.status != 201 {
                    return Err(match answer.status {
                        0 => AppError::new(0, "The upload was interrupted. Check your connection."),
                        _ => answer.error(),
                    });
                }
                let url = answer.header("Location").ok_or_else(|| AppError::new(0, "The server did not say where to upload."))?;
                if let Some(s) = &storage {
                    let _ = s.set_item(&key, &url);
                }
                url
            }
        };
        let forget = || {
            if let Some(s) = &storage {
                let _ = s.remove_item(&key);
            }
        };
        while offset < size {
            let end = (offset + PIECE).min(size);
            let piece = file.slice_with_f64_and_f64(offset, end).map_err(|_| AppError::new(0, "This browser cannot read the file."))?;
            let from = offset;
            let set_progress = ui.set_progress;
            let on_progress: Rc<dyn Fn(f64)> = Rc::new(move |sent: f64| set_progress.set(Some((from + sent) / size * 100.0)));
            let headers = [("Upload-Offset", format!("{offset}")), ("Content-Type", "application/offset+octet-stream".to_owned())];
            let answer = request("PATCH", &url, &headers, Some(Body::Blob(&piece)), Some(on_progress)).await;
            match answer.status {
                204 => offset = answer.offset().unwrap_or(end),
                // Cut by the network, or the offset moved: ask where the server got to.
                0 | 409 => {
                    if answer.status == 0 {
                        ui.set_note.set(Some(format!("Connection lost at {} of {}: retrying…", total(offset), total(size))));
                    }
                    match offset_of(&url, ui).await? {
                        Some(at) => {
                            offset = at;
                            ui.set_note.set(Some(format!("Resumed at {} of {}", total(offset), total(size))));
                        }
                        None => {
                            forget();
                            return Err(AppError::new(410, "The upload expired: upload the file again."));
                        }
                    }
                }
                404 | 410 => {
                    forget();
                    return Err(answer.error());
                }
                _ => return Err(answer.error()),
            }
            ui.set_progress.set(Some(offset / size * 100.0));
        }
        forget();
        Ok(())
    }
}
