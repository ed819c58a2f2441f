//! `/v1/pools` handlers.

use axum::extract::State;
use axum::http::StatusCode;
use uuid::Uuid;

use super::error::{ApiResult, Problem};
use super::extract::{Auth, IdempotencyKey, Json, Path, Query};
use super::model::{Page, Pool, PoolCreate, PoolListParams, PoolUsage};
use super::page;
use crate::app::pools::NewPool;
use crate::app::{App, AppError};

/// Create a pool on a network (admin).
#[utoipa::path(post, path = "/v1/pools", tag = "pools", operation_id = "pool_create",
    request_body = PoolCreate,
    params(("Idempotency-Key" = inline(Option<IdempotencyKey>), Header, description = "Makes a retried create return the first response")),
    responses(
        (status = 201, body = Pool),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed JSON"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "Not the admin token"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "`network_id` names no network"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "`pool_overlap`"),
        (status = 413, body = Problem, content_type = "application/problem+json", description = "Body over 64 KiB"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "Invalid cidr, ranges or reserved addresses"),
    ))]
pub async fn pool_create(
    State(app): State<App>,
    Auth(who): Auth,
    Json(body): Json<PoolCreate>,
) -> ApiResult<(StatusCode, axum::Json<Pool>)> {
    who.require_admin()?;
    let cidr = body
        .cidr
        .parse()
        .map_err(|e| AppError::invalid("cidr", format!("{:?} {e}", body.cidr)))?;
    let new = NewPool {
        network_id: body.network_id.to_string(),
        cidr,
        ranges: body
            .ranges
            .map(|rs| rs.into_iter().map(|r| (r.first, r.last)).collect()),
        reserved: body.reserved.unwrap_or_default(),
        description: body.description.unwrap_or_default(),
    };
    let pool = app.pool_create(&who, new).await?;
    Ok((StatusCode::CREATED, axum::Json(pool.into())))
}

/// List pools.
#[utoipa::path(get, path = "/v1/pools", tag = "pools", operation_id = "pool_list",
    params(PoolListParams),
    responses(
        (status = 200, body = Page<Pool>),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Invalid query"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
    ))]
pub async fn pool_list(
    State(app): State<App>,
    Auth(_): Auth,
    Query(q): Query<PoolListParams>,
) -> ApiResult<axum::Json<Page<Pool>>> {
    let page = page(q.limit, q.page_token);
    let network = q.network_id.map(|n| n.to_string());
    let (pools, next) = app.pool_list(network.as_deref(), &page).await?;
    Ok(axum::Json(Page::new(pools, next, Pool::from)))
}

/// Show a pool.
#[utoipa::path(get, path = "/v1/pools/{id}", tag = "pools", operation_id = "pool_view",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = Pool),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such pool"),
    ))]
pub async fn pool_view(
    State(app): State<App>,
    Auth(_): Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Pool>> {
    Ok(axum::Json(app.pool_get(&id.to_string()).await?.into()))
}

/// Show how much of a pool is allocated.
#[utoipa::path(get, path = "/v1/pools/{id}/usage", tag = "pools", operation_id = "pool_usage",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = PoolUsage),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such pool"),
    ))]
pub async fn pool_usage(
    State(app): State<App>,
    Auth(_): Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<PoolUsage>> {
    let usage = app.pool_usage(&id.to_string()).await?;
    Ok(axum::Json(PoolUsage::new(id, usage)))
}

/// Delete a pool with no allocated addresses (admin).
#[utoipa::path(delete, path = "/v1/pools/{id}", tag = "pools", operation_id = "pool_delete",
    params(("id" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "Not the admin token"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such pool"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "`pool_in_use`"),
    ))]
pub async fn pool_delete(
    State(app): State<App>,
    Auth(who): Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    app.pool_delete(&who, &id.to_string()).await?;
    Ok(StatusCode::NO_CONTENT)
}
