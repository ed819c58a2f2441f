//! Background tasks of a running fipd: the lease controller and the
//! listener that hears other replicas' changes.

use std::time::Duration;

use crate::app::{App, Touched};
use crate::http::error::error_chain;
use crate::store::Backend;

/// Runs the controller pass (lease expiry, failover, fencing) often enough
/// that a lost host is noticed within a fraction of the lease TTL.
pub async fn controller_loop(app: App) {
    let period = Duration::from_millis((app.config.lease_ttl_ms / 10).clamp(50, 1_000) as u64);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = app.controller_tick().await {
            tracing::warn!(error = %error_chain(&e), "controller pass failed");
        }
    }
}

/// On PostgreSQL, LISTENs for other replicas' NOTIFYs and wakes this
/// replica's long-polling agents, so a change made through any replica
/// reaches every agent in milliseconds.
pub async fn peer_listener(app: App) {
    if app.store.backend() != Backend::Postgres {
        return;
    }
    loop {
        match sqlx::postgres::PgListener::connect(app.store.url()).await {
            Ok(mut listener) => {
                if let Err(e) = listener.listen("fipd_changes").await {
                    tracing::warn!(error = %e, "LISTEN failed");
                } else {
                    // A notification may have been missed while connecting.
                    app.changes.bump(&Touched::All);
                    loop {
                        match listener.recv().await {
                            Ok(n) => app.changes.bump(&Touched::parse(n.payload())),
                            Err(e) => {
                                tracing::warn!(error = %e, "lost the LISTEN connection; reconnecting");
                                app.changes.bump(&Touched::All);
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot connect for LISTEN; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// How often pool figures for `/metrics` are recomputed.
const POOL_STATS_PERIOD: Duration = Duration::from_secs(15);

/// Keeps the pool figures of `/metrics` current.
pub async fn pool_stats_loop(app: App) {
    let mut tick = tokio::time::interval(POOL_STATS_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = app.refresh_pool_stats().await {
            tracing::warn!(error = %error_chain(&e), "refreshing pool figures failed");
        }
    }
}
