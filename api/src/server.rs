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
/// now and written once to its file with mode 0600. The token itself is
/// never printed: logs and terminals are kept, the file is the one copy.
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
        "Generated an admin token; it is in {} (mode 0600, readable by this user only)",
        path.display()
    );
    Ok(token)
}

/// Writes a secret to a fresh file with mode 0600 and renames it over
/// `path`, so it never sits in a file that others could read (an empty
/// file left by someone else keeps its own mode when truncated).
fn write_secret(path: &Path, secret: &str) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    writeln!(f, "{secret}")?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
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

    let background = spawn_background(&app);
    let changes = app.changes.clone();
    serve_http(listener, http::router(app), async move {
        shutdown.await;
        // End long polls now instead of after their full wait.
        changes.shut_down();
    })
    .await;
    for task in background {
        task.abort();
    }
    store.close().await;
    tracing::info!("fipd stopped");
    Ok(())
}

/// Starts the background tasks of a serving fipd: the lease controller,
/// the listener for other replicas' changes, the pool figures of
/// `/metrics` and the janitor. Abort them to stop.
pub fn spawn_background(app: &App) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        tokio::spawn(janitor(app.clone())),
        tokio::spawn(crate::background::controller_loop(app.clone())),
        tokio::spawn(crate::background::peer_listener(app.clone())),
        tokio::spawn(crate::background::pool_stats_loop(app.clone())),
    ]
}

/// A connection may sit this long between requests (and a request's
/// headers may take this long to arrive) before fipd closes it. Agents
/// drop idle connections well before (their pool keeps them 20 s), so a
/// request never races the close of the connection it reuses.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// After shutdown begins, in-flight requests get this long to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `router` on `listener` until `shutdown` resolves, then drains
/// in-flight requests. Our own loop instead of `axum::serve`, which has no
/// timeouts: a client that opens connections and sends nothing (or stops
/// half way through its headers) is cut off after [`IDLE_TIMEOUT`].
pub async fn serve_http(
    listener: TcpListener,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;

    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            // Cancel-safe: `accept` loses no connection when dropped.
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors or memory, or a connection reset
                    // before we took it: wait a moment instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            // Cancel-safe: the future is pinned outside the loop.
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(IDLE_TIMEOUT)
            .serve_connection(
                TokioIo::new(stream),
                TowerToHyperService::new(router.clone()),
            );
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // A client that goes away mid-request is normal; nothing to log.
            let _ = conn.await;
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some requests were still running after the drain timeout");
    }
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
        event_retention_count: ms(settings.event_retention_count),
        event_retention_ms: ms(settings
            .event_retention_days
            .saturating_mul(24 * 3600 * 1000)),
        default_quota: crate::app::quotas::Limits {
            floating_ips: (settings.quota_floating_ips >= 0).then_some(settings.quota_floating_ips),
            instances: (settings.quota_instances >= 0).then_some(settings.quota_instances),
        },
    }
}

/// Periodic clean-up: tombstones past quarantine, expired idempotency
/// keys, events past their retention.
async fn janitor(app: App) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    for round in 0u64.. {
        tick.tick().await;
        let now = now_ms();
        // Counting events per floating IP reads the whole log: every 10th
        // round (5 minutes) is often enough for a cap of its size.
        let keep = (round % 10 == 0).then_some(app.config.event_retention_count);
        match app
            .store
            .events_prune(now - app.config.event_retention_ms, keep)
            .await
        {
            Ok(n) if n > 0 => tracing::info!(deleted = n, "pruned events past their retention"),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %http::error::error_chain(&e), "pruning events failed")
            }
        }
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
