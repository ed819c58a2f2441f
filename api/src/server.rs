//! Starting and stopping fipd: data directory, admin token, migrations,
//! the HTTP listener and graceful shutdown.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::TcpListener;

use crate::app::{hash_token, tokens::generate_secret, App, AppConfig};
use crate::config::Settings;
use crate::http;
use crate::store::{now_ms, Store, StoreError};

/// Name of the file in the data directory that keeps a generated admin token.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot create data directory {0}")]
    DataDir(PathBuf, #[source] std::io::Error),
    #[error("cannot read or write the admin token file {0}")]
    AdminToken(PathBuf, #[source] std::io::Error),
    #[error("cannot open the database")]
    Store(#[from] StoreError),
    #[error("cannot listen on {0}")]
    Listen(std::net::SocketAddr, #[source] std::io::Error),
    #[error("server failed")]
    Serve(#[source] std::io::Error),
}

/// Opens the store and applies migrations.
pub async fn open_store(settings: &Settings) -> Result<Store, ServeError> {
    std::fs::create_dir_all(&settings.data_dir)
        .map_err(|e| ServeError::DataDir(settings.data_dir.clone(), e))?;
    let store = Store::connect(&settings.database_url).await?;
    store.migrate().await?;
    Ok(store)
}

/// The admin token: configured, or kept in the data directory, or generated
/// now (printed once, stored with mode 0600).
pub fn admin_token(settings: &Settings) -> Result<String, ServeError> {
    if let Some(t) = &settings.admin_token {
        return Ok(t.clone());
    }
    let path = settings.data_dir.join(ADMIN_TOKEN_FILE);
    let err = |e| ServeError::AdminToken(path.clone(), e);
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let token = generate_secret("fipa_");
    write_secret(&path, &token).map_err(err)?;
    println!(
        "Generated the admin token (shown once; stored in {}):",
        path.display()
    );
    println!("{token}");
    Ok(token)
}

fn write_secret(path: &Path, secret: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    writeln!(f, "{secret}")?;
    f.sync_all()
}

/// Runs fipd until SIGTERM or SIGINT, then drains in-flight requests.
pub async fn serve(settings: Settings) -> Result<(), ServeError> {
    let store = open_store(&settings).await?;
    let token = admin_token(&settings)?;
    let app = App::new(store.clone(), app_config(&settings, &token));
    // Install the signal handler before announcing readiness, so a SIGTERM
    // that arrives right after start-up drains instead of killing us.
    let shutdown = shutdown_signal()?;
    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|e| ServeError::Listen(settings.listen, e))?;
    let addr = listener.local_addr().map_err(ServeError::Serve)?;
    // Tests and scripts read this line to learn the port when listening on :0.
    println!("fipd listening on http://{addr}");
    let _ = std::io::stdout().flush();
    tracing::info!(%addr, backend = ?store.backend(), "fipd started");

    let background = [
        tokio::spawn(janitor(app.clone())),
        tokio::spawn(crate::background::controller_loop(app.clone())),
        tokio::spawn(crate::background::peer_listener(app.clone())),
    ];
    let changes = app.changes.clone();
    axum::serve(listener, http::router(app))
        .with_graceful_shutdown(async move {
            shutdown.await;
            // End long polls now instead of after their full wait.
            changes.shut_down();
        })
        .await
        .map_err(ServeError::Serve)?;
    for task in background {
        task.abort();
    }
    store.close().await;
    tracing::info!("fipd stopped");
    Ok(())
}

/// The application settings derived from the server settings.
pub fn app_config(settings: &Settings, admin_token: &str) -> AppConfig {
    let ms = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    AppConfig {
        admin_token_hash: hash_token(admin_token),
        quarantine_ms: ms(settings.quarantine_ms),
        lease_ttl_ms: ms(settings.lease_ttl_ms),
        fence_grace_ms: ms(settings.fence_grace_ms),
        dad: settings.dad_mode,
        na_count: settings.na_count,
        na_interval_ms: settings.na_interval_ms,
    }
}

/// Periodic clean-up: tombstones past quarantine, expired idempotency keys.
async fn janitor(app: App) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        tick.tick().await;
        let now = now_ms();
        if let Err(e) = app
            .store
            .purge_released(now - app.config.quarantine_ms)
            .await
        {
            tracing::warn!(error = %http::error::error_chain(&e), "purging released addresses failed");
        }
        if let Err(e) = app
            .store
            .idempotency_purge(now - http::IDEMPOTENCY_TTL_MS)
            .await
        {
            tracing::warn!(error = %http::error::error_chain(&e), "purging idempotency keys failed");
        }
    }
}

/// Resolves on SIGTERM or SIGINT. The handlers are registered when this is
/// called, not when the future is first polled.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, ServeError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(ServeError::Serve)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ServeError::Serve)?;
    Ok(async move {
        tokio::select! {
            // Both arms only wait for a signal; dropping the other is harmless.
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::info!("shutdown requested; draining in-flight requests");
    })
}
