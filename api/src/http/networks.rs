//! `/v1/networks` handlers.

use axum::extract::State;
use axum::http::StatusCode;

use super::error::{ApiResult, Problem};
use super::extract::{Auth, IdempotencyKey, Json, Path, Query};
use super::model::{Network, NetworkCreate, NetworkListParams, NetworkUpdate, Page};
use super::page;
use crate::app::networks::NetworkPatch;
use crate::app::App;
use uuid::Uuid;

/// Create a network (admin).
#[utoipa::path(post, path = "/v1/networks", tag = "networks", operation_id = "network_create",
    request_body = NetworkCreate,
    params(("Idempotency-Key" = inline(Option<IdempotencyKey>), Header, description = "Makes a retried create return the first response")),
    responses(
        (status = 201, body = Network),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed JSON"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "Not the admin token"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "`name_taken`"),
        (status = 413, body = Problem, content_type = "application/problem+json", description = "Body over 64 KiB"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "Invalid field"),
    ))]
pub async fn network_create(
    State(app): State<App>,
    Auth(who): Auth,
    Json(body): Json<NetworkCreate>,
) -> ApiResult<(StatusCode, axum::Json<Network>)> {
    let row = app
        .network_create(&who, body.name, body.description.unwrap_or_default())
        .await?;
    Ok((StatusCode::CREATED, axum::Json(row.into())))
}

/// List networks.
#[utoipa::path(get, path = "/v1/networks", tag = "networks", operation_id = "network_list",
    params(NetworkListParams),
    responses(
        (status = 200, body = Page<Network>),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Invalid query"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
    ))]
pub async fn network_list(
    State(app): State<App>,
    Auth(_): Auth,
    Query(q): Query<NetworkListParams>,
) -> ApiResult<axum::Json<Page<Network>>> {
    let page = page(q.limit, q.page_token);
    let (rows, next) = app.network_list(q.name.as_ref(), &page).await?;
    Ok(axum::Json(Page::new(rows, next, Network::from)))
}

/// Show a network.
#[utoipa::path(get, path = "/v1/networks/{id}", tag = "networks", operation_id = "network_view",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = Network),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such network"),
    ))]
pub async fn network_view(
    State(app): State<App>,
    Auth(_): Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Network>> {
    Ok(axum::Json(app.network_get(&id.to_string()).await?.into()))
}

/// Rename or describe a network (admin).
#[utoipa::path(patch, path = "/v1/networks/{id}", tag = "networks", operation_id = "network_update",
    params(("id" = Uuid, Path)),
    request_body = NetworkUpdate,
    responses(
        (status = 200, body = Network),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed JSON"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "Not the admin token"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such network"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "`name_taken`"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "Invalid field"),
    ))]
pub async fn network_update(
    State(app): State<App>,
    Auth(who): Auth,
    Path(id): Path<Uuid>,
    Json(body): Json<NetworkUpdate>,
) -> ApiResult<axum::Json<Network>> {
    let patch = NetworkPatch {
        name: body.name,
        description: body.description,
    };
    Ok(axum::Json(
        app.network_update(&who, &id.to_string(), patch)
            .await?
            .into(),
    ))
}

/// Delete a network without pools (admin).
#[utoipa::path(delete, path = "/v1/networks/{id}", tag = "networks", operation_id = "network_delete",
    params(("id" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "Not the admin token"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such network"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "`network_in_use`: pools remain"),
    ))]
pub async fn network_delete(
    State(app): State<App>,
    Auth(who): Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    app.network_delete(&who, &id.to_string()).await?;
    Ok(StatusCode::NO_CONTENT)
}
