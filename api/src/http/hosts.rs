//! `/v1/hosts` handlers (admin).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::error::{ApiResult, Problem};
use super::extract::{Auth, IdempotencyKey, Json, Path, Query};
use super::middleware::ReplayAs;
use super::model::{Host, HostCreate, HostCreated, Page, PageParams};
use super::page;
use crate::app::App;

/// Register a host (admin); its agent token is returned this once.
#[utoipa::path(post, path = "/v1/hosts", tag = "hosts", operation_id = "host_create",
    request_body = HostCreate,
    params(("Idempotency-Key" = inline(Option<IdempotencyKey>), Header, description = "Makes a retried create return the first response")),
    responses(
        (status = 201, body = HostCreated),
        (status = 200, body = Host, description = "A replay (same Idempotency-Key and body): the host without its token, which is shown only once and never stored"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed JSON"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "Not the admin token"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "`name_taken`"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "Invalid field"),
    ))]
pub async fn host_create(
    State(app): State<App>,
    Auth(who): Auth,
    Json(body): Json<HostCreate>,
) -> ApiResult<Response> {
    let (row, token) = app.host_create(&who, body.name).await?;
    let host = Host::new(row, app.lease_clock_now().await?);
    let replay = ReplayAs {
        status: StatusCode::OK,
        body: serde_json::to_string(&host).expect("serialisable"),
    };
    let mut resp = (StatusCode::CREATED, axum::Json(HostCreated { host, token })).into_response();
    resp.extensions_mut().insert(replay);
    Ok(resp)
}

/// List hosts with their lease state (admin).
#[utoipa::path(get, path = "/v1/hosts", tag = "hosts", operation_id = "host_list",
    params(PageParams),
    responses(
        (status = 200, body = Page<Host>),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Invalid query"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "Not the admin token"),
    ))]
pub async fn host_list(
    State(app): State<App>,
    Auth(who): Auth,
    Query(q): Query<PageParams>,
) -> ApiResult<axum::Json<Page<Host>>> {
    let page = page(q.limit, q.page_token);
    let (rows, next) = app.host_list(&who, &page).await?;
    let now = app.lease_clock_now().await?;
    Ok(axum::Json(Page::new(rows, next, |r| Host::new(r, now))))
}

/// Show a host: agent version, served networks, lease (admin).
#[utoipa::path(get, path = "/v1/hosts/{id}", tag = "hosts", operation_id = "host_view",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = Host),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "Not the admin token"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such host"),
    ))]
pub async fn host_view(
    State(app): State<App>,
    Auth(who): Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Host>> {
    let row = app.host_get(&who, &id.to_string()).await?;
    Ok(axum::Json(Host::new(row, app.lease_clock_now().await?)))
}

/// Delete a host that holds no floating IPs (admin).
#[utoipa::path(delete, path = "/v1/hosts/{id}", tag = "hosts", operation_id = "host_delete",
    params(("id" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "Not the admin token"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such host"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "`host_in_use`"),
    ))]
pub async fn host_delete(
    State(app): State<App>,
    Auth(who): Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    app.host_delete(&who, &id.to_string()).await?;
    Ok(StatusCode::NO_CONTENT)
}
