//! The server binary: configuration, state, router, serve.

use axum::Router;
use leptos::config::get_configuration;
use leptos_axum::{generate_route_list, LeptosRoutes};
use peervault::app::{shell, App};
use peervault::clock::Clock;
use peervault::transport::server;
use peervault::config::Settings;
use peervault::service::{passwords::Hasher, throttle::Throttle, tokens::TokenKeys, Services};
use peervault::state::{AppState, Inner};
use peervault::store::blobs::{BlobStore, LocalBlobs};
use peervault::store::s3::S3Blobs;
use peervault::store::Db;
use std::sync::Arc;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: peervault [serve]\n\
       peervault cid FILE\n\
       peervault car FILE -o OUT.car\n\n\
  serve   start the web server (the default)\n\
  cid     print {\"cid\",\"carCid\",\"size\"} of FILE as the server would answer its upload\n\
  car     write the CAR of FILE, byte-identical to `ipfs-car pack FILE --no-wrap`\n\
  node    run a storage node for a coordinator (peervault node --help)\n\n\
Configuration: Leptos.toml ([package.metadata.leptos] and [peervault]), overridden by\n\
LEPTOS_* and PEERVAULT_* environment variables; DATABASE_URL overrides the database.";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        None | Some("serve") => serve().await,
        Some("cid") => cli::cid(&args[1..]),
        Some("car") => cli::car(&args[1..]),
        Some("node") => match peervault::node::NodeArgs::parse(&args[1..]) {
            Ok(node) => {
                init_logging();
                let _ = rustls::crypto::ring::default_provider().install_default();
                peervault::node::run(node).await
            }
            Err(e) => Err(e),
        },
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command {other:?}\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peervault: {e}");
            ExitCode::FAILURE
        }
    }
}

mod cli {
    //! `peervault cid` and `peervault car`: what an upload of FILE (or of a
    //! folder's files) would answer; a folder as `ipfs-car pack <dir>` packs it.
    use peervault::content::{car_cid_of, folder, import_path, js_order, CarWriter, FolderFile, Imported, Params};
    use std::io::{BufReader, BufWriter, Read};
    use std::path::{Path, PathBuf};

    struct Args {
        file: PathBuf,
        out: Option<PathBuf>,
        params: Params,
        hidden: bool,
    }

    /// FILE (or a folder), `-o OUT`, `--hidden` (a folder's dot files too,
    /// as `ipfs-car pack --hidden`), and (for tests of the tree shape)
    /// `--chunk-size N`, `--width N`.
    fn parse(args: &[String]) -> Result<Args, String> {
        let mut file = None;
        let mut out = None;
        let mut hidden = false;
        let mut params = Params::IPFS_CAR;
        let mut it = args.iter();
        let number = |v: Option<&String>, name: &str, min: usize| -> Result<usize, String> {
            v.and_then(|v| v.parse::<usize>().ok())
                .filter(|n| *n >= min)
                .ok_or_else(|| format!("{name} needs a number of at least {min}"))
        };
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "-o" | "--output" => out = Some(PathBuf::from(it.next().ok_or("-o needs a file name")?)),
                "--chunk-size" => params.chunk_size = number(it.next(), "--chunk-size", 1)?,
                "--width" => params.width = number(it.next(), "--width", 2)?,
                "--hidden" => hidden = true,
                other if file.is_none() && !other.starts_with('-') => file = Some(PathBuf::from(other)),
                other => return Err(format!("unexpected argument {other:?}")),
            }
        }
        Ok(Args { file: file.ok_or("missing FILE")?, out, params, hidden })
    }

    fn import(path: &Path, params: Params) -> Result<Imported, String> {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        import_path(path, params, threads).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// What is packed: a file, or a folder's files (their paths in it, in
    /// the order their bytes follow each other) and the folder's DAG.
    struct Packed {
        imported: Imported,
        files: Vec<PathBuf>,
    }

    /// The files under `dir` (dot files only with `hidden`), as
    /// `(path relative to dir, path)`.
    fn files_under(dir: &Path, hidden: bool) -> Result<Vec<(String, PathBuf)>, String> {
        let mut out = Vec::new();
        let mut todo = vec![(String::new(), dir.to_path_buf())];
        while let Some((rel, path)) = todo.pop() {
            let entries = std::fs::read_dir(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            for entry in entries {
                let entry = entry.map_err(|e| format!("{}: {e}", path.display()))?;
                let name = entry.file_name().into_string().map_err(|n| format!("{n:?}: not a UTF-8 name"))?;
                if !hidden && name.starts_with('.') {
                    continue;
                }
                let inner = if rel.is_empty() { name } else { format!("{rel}/{name}") };
                // Symbolic links are followed, as ipfs-car's stat does.
                let meta = std::fs::metadata(entry.path()).map_err(|e| format!("{}: {e}", entry.path().display()))?;
                if meta.is_dir() {
                    todo.push((inner, entry.path()));
                } else if meta.is_file() {
                    out.push((inner, entry.path()));
                }
            }
        }
        Ok(out)
    }

    fn pack(args: &Args) -> Result<Packed, String> {
        let meta = std::fs::metadata(&args.file).map_err(|e| format!("{}: {e}", args.file.display()))?;
        if !meta.is_dir() {
            return Ok(Packed { imported: import(&args.file, args.params)?, files: vec![args.file.clone()] });
        }
        let mut found = files_under(&args.file, args.hidden)?;
        // The bytes in the order the CAR reads them: ipfs-car's order of paths.
        found.sort_by(|a, b| js_order(&a.0, &b.0));
        let mut imported = Vec::with_capacity(found.len());
        for (_, path) in &found {
            imported.push(import(path, args.params)?);
        }
        let mut base = 0;
        let mut listed = Vec::with_capacity(found.len());
        for ((rel, _), file) in found.iter().zip(&imported) {
            listed.push(FolderFile { path: rel, imported: file, base });
            base += file.size;
        }
        let imported = folder(&listed).map_err(|e| format!("{}: {e}", args.file.display()))?;
        Ok(Packed { imported, files: found.into_iter().map(|(_, p)| p).collect() })
    }

    /// The packed files' bytes one after the other.
    fn content(packed: &Packed) -> Result<impl Read, String> {
        let mut chained: Box<dyn Read> = Box::new(std::io::empty());
        for path in &packed.files {
            let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
            chained = Box::new(chained.chain(BufReader::with_capacity(1 << 20, file)));
        }
        Ok(chained)
    }

    pub fn cid(args: &[String]) -> Result<(), String> {
        let args = parse(args)?;
        let packed = pack(&args)?;
        let car = car_cid_of(&packed.imported, content(&packed)?).map_err(|e| format!("{}: {e}", args.file.display()))?;
        let imported = &packed.imported;
        println!(
            "{}",
            serde_json::json!({ "cid": imported.root.to_string(), "carCid": car.to_string(), "size": imported.size })
        );
        Ok(())
    }

    pub fn car(args: &[String]) -> Result<(), String> {
        let args = parse(args)?;
        let out_path = args.out.clone().ok_or("car needs -o OUT.car")?;
        let packed = pack(&args)?;
        let out = std::fs::File::create(&out_path).map_err(|e| format!("{}: {e}", out_path.display()))?;
        let mut car = CarWriter::new(&packed.imported.root, BufWriter::with_capacity(1 << 20, out)).map_err(|e| e.to_string())?;
        car.plan(&packed.imported, content(&packed)?).map_err(|e| format!("{}: {e}", args.file.display()))?;
        let out = car.into_inner();
        out.into_inner().map_err(|e| e.to_string())?.sync_all().map_err(|e| e.to_string())?;
        println!("{}", packed.imported.root);
        Ok(())
    }
}

/// Log lines to stderr; `RUST_LOG` filters them (default: info).
fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// The config file: `PEERVAULT_CONFIG`, else `Leptos.toml` in the working directory.
fn config_path() -> String {
    std::env::var("PEERVAULT_CONFIG").unwrap_or_else(|_| "Leptos.toml".into())
}

async fn serve() -> Result<(), String> {
    // TLS (S3 over HTTPS, SMTP) uses ring; no second crypto library is built.
    let _ = rustls::crypto::ring::default_provider().install_default();
    init_logging();

    let path = config_path();
    let file = Path::new(&path);
    // cargo-leptos passes the Leptos options as LEPTOS_* variables; on its
    // own the binary reads them from the config file (still overridable by LEPTOS_*).
    let conf = if std::env::var_os("LEPTOS_OUTPUT_NAME").is_some() || !file.exists() {
        get_configuration(None)
    } else {
        get_configuration(Some(&path))
    }
    .map_err(|e| format!("Leptos configuration: {e}"))?;
    let leptos_options = conf.leptos_options;
    let settings = Settings::load(Some(file))?;

    let data_dir = settings.data_dir();
    create_private_dir(&data_dir).map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    let dependency_timeout = Duration::from_secs(settings.dependency_timeout_secs);
    let db = Db::connect(&settings.database_url(), settings.db_max_connections, dependency_timeout).await?;
    let clock = Arc::new(if settings.test_clock {
        tracing::warn!("test_clock is on: POST /test/clock (loopback only) can move this server's clock forward");
        Clock::movable()
    } else {
        Clock::system()
    });
    let tokens = TokenKeys::load(&data_dir)?.with_clock(clock.clone());
    let hasher = Hasher::new(&settings)?;
    let throttle = Throttle::new(db.clone(), Duration::from_secs(settings.throttle_window_secs), clock.clone());
    let blobs: Arc<dyn BlobStore> = if settings.blob_url.trim().is_empty() {
        Arc::new(LocalBlobs::open(&data_dir.join("blobs")).map_err(|e| format!("cannot open the blob store: {e}"))?)
    } else {
        let s3 = S3Blobs::open(settings.blob_url.trim(), &data_dir.join("staging"), dependency_timeout).await?;
        tracing::info!(location = %s3.location, "files are stored in S3");
        Arc::new(s3)
    };
    let swept = blocking({
        let blobs = blobs.clone();
        move || blobs.sweep_staging().map_err(|e| format!("cannot sweep the blob store: {e}"))
    })
    .await?;
    if swept > 0 {
        tracing::info!(swept, "removed unfinished uploads left by an earlier run");
    }
    remove_orphans(&db, &blobs).await?;
    let mailer = peervault::mail::from_settings(&settings, &data_dir)?;

    let addr: SocketAddr = leptos_options.site_addr;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let listen_addr = listener.local_addr().map_err(|e| e.to_string())?;
    let services = Services {
        settings,
        db,
        tokens,
        hasher,
        throttle,
        blobs,
        mailer,
        cid_locks: Default::default(),
        clock,
        listen_addr,
        network_wake: Default::default(),
        deliveries: Default::default(),
        instance: peervault::util::random_hex(8).into(),
        download_slots: Default::default(),
    };
    let state = AppState::new(Inner { leptos_options: leptos_options.clone(), services });
    tokio::spawn(peervault::service::network::run_loop(state.clone()));
    tokio::spawn(peervault::service::uploads::run_sweeper(state.clone()));
    tokio::spawn(peervault::service::files::record_shared_blocks(state.clone()));

    let routes = generate_route_list(App);
    let timeouts = server::Timeouts {
        header_read: Duration::from_secs(state.settings.header_read_timeout_secs),
        body: Duration::from_secs(state.settings.body_timeout_secs),
        send: Duration::from_secs(state.settings.send_timeout_secs),
    };
    let mut api = peervault::api::router();
    if state.settings.test_clock {
        api = api.merge(peervault::api::testing::test_router());
    }
    let routes = Router::new()
        .merge(api)
        .leptos_routes_with_context(&state, routes, server::provide_csp_nonce, {
            let options = leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context::<AppState, _>(server::provide_csp_nonce, shell))
        .layer(axum::middleware::from_fn_with_state(state.clone(), peervault::pages::ssr::session_layer))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panic_response));
    let app = server::with_layers(routes, &state).with_state(state);

    tracing::info!("peervault listening on http://{listen_addr}");
    server::serve(listener, app, timeouts, shutdown_signal()).await;
    Ok(())
}

/// Removes stored objects that no row refers to: what a crash between an
/// object's rename and its row's commit (or a delete's commit and the
/// object's removal) leaves behind. Runs before the server accepts requests.
async fn remove_orphans(db: &Db, blobs: &Arc<dyn BlobStore>) -> Result<(), String> {
    let keys = blocking({
        let blobs = blobs.clone();
        move || blobs.keys().map_err(|e| format!("cannot list the blob store: {e}"))
    })
    .await?;
    let mut removed = 0;
    for key in keys {
        let (what, _lock) = match peervault::service::uploads::upload_of_key(&key) {
            // A part of a resumable upload: kept while the upload is.
            Some(upload) => {
                if db.upload(upload).await.map_err(|e| format!("database: {e}"))?.is_some() {
                    continue;
                }
                ("upload part", None)
            }
            None => {
                if db.blob_exists(&key).await.map_err(|e| format!("database: {e}"))? {
                    continue;
                }
                // Another instance on the same database may be between storing this
                // object and committing its row: it holds the CID's lock until then.
                let lock = db.lock_cid(&key).await.map_err(|e| format!("database: {e}"))?;
                if db.blob_exists(&key).await.map_err(|e| format!("database: {e}"))? {
                    continue;
                }
                ("object", lock)
            }
        };
        let blobs = blobs.clone();
        let what = format!("cannot remove orphan {what} {key}");
        blocking(move || blobs.remove(&key).map_err(|e| format!("{what}: {e}"))).await?;
        removed += 1;
    }
    // Multipart objects of resumable uploads that are gone, or that their
    // upload does not record (a request that failed before recording one).
    let unfinished = blocking({
        let blobs = blobs.clone();
        move || blobs.multipart().map_or(Ok(Vec::new()), |m| m.unfinished()).map_err(|e| format!("cannot list unfinished uploads: {e}"))
    })
    .await?;
    for (key, upload) in unfinished {
        if let Some(id) = peervault::service::uploads::upload_of_key(&key) {
            let row = db.upload(id).await.map_err(|e| format!("database: {e}"))?;
            if row.is_some_and(|r| r.multipart.as_deref() == Some(upload.as_str())) {
                continue;
            }
        }
        let blobs = blobs.clone();
        blocking(move || {
            blobs.multipart().map_or(Ok(()), |m| m.abort(&key, &upload)).map_err(|e| format!("cannot remove unfinished upload {key}: {e}"))
        })
        .await?;
        removed += 1;
    }
    if removed > 0 {
        tracing::info!(removed, "removed objects no file refers to");
    }
    Ok(())
}

/// Runs blocking store calls on the blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, String> + Send + 'static) -> Result<T, String> {
    tokio::task::spawn_blocking(f).await.map_err(|e| format!("start-up task failed: {e}"))?
}

/// Creates the data directory readable by its owner only (it holds the
/// database and the JWT secret); an existing directory is left as it is.
fn create_private_dir(path: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

/// A panic becomes a JSON 500; its message goes to the log only.
fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    peervault::error::AppError::internal("a request handler panicked").into_response_json()
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
    tracing::info!("shutting down");
}
