//! `/v1/floating-ips` handlers.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::error::{ApiResult, Problem};
use super::extract::{Auth, IdempotencyKey, IfMatchHeader, Json, Path, Query};
use super::model::{
    Event, EventPageParams, FloatingIp, FloatingIpCreate, FloatingIpListParams, FloatingIpUpdate,
    Limit, Page,
};
use super::page;
use crate::app::floating_ips::{FipPatch, NewFip};
use crate::app::{App, AppError};
use crate::domain::addr_key;
use crate::store::{FloatingIpFilter, FloatingIpRow};

/// The representation (with bindings) plus `ETag: "<revision>"` for `If-Match`.
async fn with_etag(app: &App, status: StatusCode, row: FloatingIpRow) -> ApiResult<Response> {
    let etag =
        HeaderValue::from_str(&format!("\"{}\"", row.revision)).expect("digits are a valid header");
    let mut bindings = app
        .store
        .bindings_of(std::slice::from_ref(&row.id))
        .await
        .map_err(AppError::from)?;
    let body = FloatingIp::with_bindings(row, &mut bindings);
    let mut resp = (status, axum::Json(body)).into_response();
    resp.headers_mut().insert(header::ETAG, etag);
    Ok(resp)
}

/// Allocate a floating IP, optionally at a given address and associated
/// with an instance.
#[utoipa::path(post, path = "/v1/floating-ips", tag = "floating-ips", operation_id = "floating_ip_create",
    request_body = FloatingIpCreate,
    params(("Idempotency-Key" = inline(Option<IdempotencyKey>), Header, description = "Makes a retried create return the first response")),
    responses(
        (status = 201, body = FloatingIp),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed JSON"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "Another project, or the admin token without `project_id`"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "`network_id`, `pool_id` or `instance_id` names nothing (in the project)"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "`address_in_use`, `address_unavailable` or `pool_exhausted`"),
        (status = 413, body = Problem, content_type = "application/problem+json", description = "Body over 64 KiB"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "Invalid field"),
    ))]
pub async fn floating_ip_create(
    State(app): State<App>,
    Auth(who): Auth,
    Json(body): Json<FloatingIpCreate>,
) -> ApiResult<Response> {
    let new = NewFip {
        network_id: body.network_id.map(|u| u.to_string()),
        pool_id: body.pool_id.map(|u| u.to_string()),
        address: body.address,
        project_id: body.project_id,
        description: body.description.unwrap_or_default(),
        instance_id: body.instance_id.map(|u| u.to_string()),
    };
    let row = app.fip_create(&who, new).await?;
    with_etag(&app, StatusCode::CREATED, row).await
}

/// List floating IPs, filtered; project tokens see their project's only.
#[utoipa::path(get, path = "/v1/floating-ips", tag = "floating-ips", operation_id = "floating_ip_list",
    params(FloatingIpListParams),
    responses(
        (status = 200, body = Page<FloatingIp>),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Invalid query"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
    ))]
pub async fn floating_ip_list(
    State(app): State<App>,
    Auth(who): Auth,
    Query(q): Query<FloatingIpListParams>,
) -> ApiResult<axum::Json<Page<FloatingIp>>> {
    let page = page(q.limit, q.page_token);
    let filter = FloatingIpFilter {
        network_id: q.network_id.map(|u| u.to_string()),
        pool_id: q.pool_id.map(|u| u.to_string()),
        project_id: q.project_id.map(|p| p.to_string()),
        instance_id: q.instance_id.map(|u| u.to_string()),
        status: q.status.map(|s| s.as_str().to_owned()),
        address_key: q.address.map(|a| addr_key(a.into())),
    };
    let (rows, next) = app.fip_list(&who, filter, &page).await?;
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let mut bindings = app.store.bindings_of(&ids).await.map_err(AppError::from)?;
    Ok(axum::Json(Page::new(rows, next, |r| {
        FloatingIp::with_bindings(r, &mut bindings)
    })))
}

/// Show a floating IP; poll `status` after a change.
#[utoipa::path(get, path = "/v1/floating-ips/{id}", tag = "floating-ips", operation_id = "floating_ip_view",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = FloatingIp, headers(("ETag" = String, description = "The quoted revision"))),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such floating IP"),
    ))]
pub async fn floating_ip_view(
    State(app): State<App>,
    Auth(who): Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Response> {
    let row = app.fip_get(&who, &id.to_string()).await?;
    with_etag(&app, StatusCode::OK, row).await
}

/// Associate, disassociate or describe a floating IP.
#[utoipa::path(patch, path = "/v1/floating-ips/{id}", tag = "floating-ips", operation_id = "floating_ip_update",
    params(("id" = Uuid, Path), ("If-Match" = inline(Option<IfMatchHeader>), Header, description = "The quoted revision the change is based on")),
    request_body = FloatingIpUpdate,
    responses(
        (status = 200, body = FloatingIp, headers(("ETag" = String, description = "The quoted revision"))),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed JSON or If-Match"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such floating IP, or `instance_id` or a standby names nothing in its project"),
        (status = 412, body = Problem, content_type = "application/problem+json", description = "`revision_mismatch`"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "Invalid field"),
    ))]
pub async fn floating_ip_update(
    State(app): State<App>,
    Auth(who): Auth,
    Path(id): Path<Uuid>,
    IfMatchHeader(if_match): IfMatchHeader,
    Json(body): Json<FloatingIpUpdate>,
) -> ApiResult<Response> {
    let patch = FipPatch {
        instance_id: body.instance_id.map(|o| o.map(|u| u.to_string())),
        description: body.description,
        standby_instance_ids: body
            .standby_instance_ids
            .map(|v| v.into_iter().map(|u| u.to_string()).collect()),
    };
    let row = app
        .fip_update(&who, &id.to_string(), if_match, patch)
        .await?;
    with_etag(&app, StatusCode::OK, row).await
}

/// Release a floating IP. Its address returns to the pool once no host
/// holds it and the quarantine has passed.
#[utoipa::path(delete, path = "/v1/floating-ips/{id}", tag = "floating-ips", operation_id = "floating_ip_delete",
    params(("id" = Uuid, Path), ("If-Match" = inline(Option<IfMatchHeader>), Header, description = "The quoted revision the delete is based on")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed If-Match"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such floating IP"),
        (status = 412, body = Problem, content_type = "application/problem+json", description = "`revision_mismatch`"),
    ))]
pub async fn floating_ip_delete(
    State(app): State<App>,
    Auth(who): Auth,
    Path(id): Path<Uuid>,
    IfMatchHeader(if_match): IfMatchHeader,
) -> ApiResult<StatusCode> {
    app.fip_delete(&who, &id.to_string(), if_match).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Read a floating IP's event log, oldest first.
#[utoipa::path(get, path = "/v1/floating-ips/{id}/events", tag = "floating-ips", operation_id = "floating_ip_events",
    params(("id" = Uuid, Path), EventPageParams),
    responses(
        (status = 200, body = Page<Event>),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Invalid query"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such floating IP"),
    ))]
pub async fn floating_ip_events(
    State(app): State<App>,
    Auth(who): Auth,
    Path(id): Path<Uuid>,
    Query(q): Query<EventPageParams>,
) -> ApiResult<axum::Json<Page<Event>>> {
    let limit = Limit::or_default(q.limit);
    // Past the largest event ID there is nothing to list.
    let after = q.page_token.map(|t| i64::try_from(t).unwrap_or(i64::MAX));
    let (rows, next) = app.fip_events(&who, &id.to_string(), after, limit).await?;
    Ok(axum::Json(Page::new(rows, next, Event::from)))
}
