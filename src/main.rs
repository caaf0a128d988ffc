//! The server binary: configuration, state, router, serve.

use axum::Router;
use leptos::config::get_configuration;
use leptos_axum::{generate_route_list, LeptosRoutes};
use peervault::app::{shell, App};
use peervault::config::Settings;
use peervault::service::{passwords::Hasher, throttle::Throttle, tokens::TokenKeys};
use peervault::state::{AppState, Inner};
use peervault::store::Db;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: peervault [serve]\n\n\
  serve   start the web server (the default)\n\n\
Configuration: Leptos.toml ([package.metadata.leptos] and [peervault]), overridden by\n\
LEPTOS_* and PEERVAULT_* environment variables; DATABASE_URL overrides the database.";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        None | Some("serve") => serve().await,
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

/// The config file: `PEERVAULT_CONFIG`, else `Leptos.toml` in the working directory.
fn config_path() -> String {
    std::env::var("PEERVAULT_CONFIG").unwrap_or_else(|_| "Leptos.toml".into())
}

async fn serve() -> Result<(), String> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

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
    let db = Db::connect(&settings.database_url(), settings.db_max_connections).await?;
    let tokens = TokenKeys::load(&data_dir)?;
    let hasher = Hasher::new(&settings)?;
    let throttle = Throttle::new(Duration::from_secs(settings.throttle_window_secs));
    let addr: SocketAddr = leptos_options.site_addr;
    let state = AppState::new(Inner { leptos_options: leptos_options.clone(), settings, db, tokens, hasher, throttle });

    let routes = generate_route_list(App);
    let app = Router::new()
        .merge(peervault::api::router())
        .leptos_routes(&state, routes, {
            let options = leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panic_response))
        .with_state(state);

    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!("peervault listening on http://{local}");
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"))
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
