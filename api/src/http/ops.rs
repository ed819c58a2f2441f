//! Operational endpoints: health, readiness and Prometheus metrics.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::error::{ApiError, ApiResult, Problem};
use crate::app::App;

/// The process-wide Prometheus recorder. `metrics` has one global recorder,
/// so every server in a process (tests run several) shares it.
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("fipd_http_request_duration_seconds".into()),
                &[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
                ],
            )
            .expect("bucket list is non-empty")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may be installed already (an embedding program);
        // then our metrics go there and /metrics shows what we recorded.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", operation_id = "health_view",
    responses((status = 200, description = "Alive", body = String)))]
pub async fn health_view() -> &'static str {
    "ok"
}

/// The process can serve: its database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations", operation_id = "ready_view",
    responses(
        (status = 200, description = "Ready", body = String),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Database unreachable"),
    ))]
pub async fn ready_view(State(app): State<App>) -> ApiResult<&'static str> {
    match app.store.ping().await {
        Ok(()) => Ok("ready"),
        Err(e) => {
            tracing::warn!(error = %super::error::error_chain(&e), "readiness check failed");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unreachable",
                "the database does not answer",
            ))
        }
    }
}

/// Prometheus metrics: requests by route and status, latency histogram,
/// allocations, pool usage.
#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "metrics_view",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics_view(State(app): State<App>) -> Response {
    let mut text = metrics_handle().render();
    // Pool figures come from the shared database (every replica reports
    // the same truth), refreshed in the background: a scrape costs no
    // query, and a deleted pool's series go with the next refresh.
    let stats = app
        .pool_stats
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    if !stats.is_empty() {
        text.push_str("# HELP fipd_pool_allocated Live floating IPs per pool.\n");
        text.push_str("# TYPE fipd_pool_allocated gauge\n");
        for s in &stats {
            text.push_str(&format!(
                "fipd_pool_allocated{{pool_id=\"{}\"}} {}\n",
                s.pool_id, s.allocated
            ));
        }
        text.push_str("# HELP fipd_pool_capacity Allocatable addresses per pool.\n");
        text.push_str("# TYPE fipd_pool_capacity gauge\n");
        for s in &stats {
            // f64 loses precision past 2^53, but Prometheus values are f64.
            text.push_str(&format!(
                "fipd_pool_capacity{{pool_id=\"{}\"}} {}\n",
                s.pool_id, s.capacity as f64
            ));
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
