//! `/v1/agent` handlers: the protocol between fipd and its host agents.

use std::time::Duration;

use axum::extract::State;
use fip_types::{DesiredState, LeaseRequest, LeaseResponse, ReportBatch, ReportResult};

use super::error::{ApiError, ApiResult, Problem};
use super::extract::{AgentAuth, Json, Query};
use super::model::DesiredStateParams;
use crate::app::agent::MAX_WAIT_MS;
use crate::app::App;

/// Renew this host's lease and describe the agent.
#[utoipa::path(post, path = "/v1/agent/lease", tag = "agent", operation_id = "agent_lease_renew",
    request_body = LeaseRequest,
    responses(
        (status = 200, body = LeaseResponse),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed JSON"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "Not an agent token"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "Invalid field"),
    ))]
pub async fn agent_lease_renew(
    State(app): State<App>,
    AgentAuth(who): AgentAuth,
    Json(body): Json<LeaseRequest>,
) -> ApiResult<axum::Json<LeaseResponse>> {
    Ok(axum::Json(app.agent_lease(&who, body).await?))
}

/// Long-poll this host's desired state: answers at once when it is newer
/// than `after`, else when it changes, else after `wait_ms`.
#[utoipa::path(get, path = "/v1/agent/desired-state", tag = "agent", operation_id = "agent_desired_state_view",
    params(DesiredStateParams),
    responses(
        (status = 200, body = DesiredState),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Invalid query"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "Not an agent token"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "`poll_superseded`: a newer poll of this host took over"),
    ))]
pub async fn agent_desired_state_view(
    State(app): State<App>,
    AgentAuth(who): AgentAuth,
    Query(q): Query<DesiredStateParams>,
) -> ApiResult<axum::Json<DesiredState>> {
    let wait = q.wait_ms.unwrap_or(30_000);
    if wait > MAX_WAIT_MS {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("wait_ms must be at most {MAX_WAIT_MS}"),
        ));
    }
    let state = app
        .agent_desired_state(&who, q.after.unwrap_or(0), Duration::from_millis(wait))
        .await?;
    Ok(axum::Json(state))
}

/// Report what this host observed for its floating IPs.
#[utoipa::path(post, path = "/v1/agent/reports", tag = "agent", operation_id = "agent_report_create",
    request_body = ReportBatch,
    responses(
        (status = 200, body = ReportResult),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed JSON"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "Not an agent token"),
        (status = 413, body = Problem, content_type = "application/problem+json", description = "Body too large"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "Invalid field"),
    ))]
pub async fn agent_report_create(
    State(app): State<App>,
    AgentAuth(who): AgentAuth,
    Json(body): Json<ReportBatch>,
) -> ApiResult<axum::Json<ReportResult>> {
    Ok(axum::Json(app.agent_reports(&who, body.reports).await?))
}
