//! `/v1/instances` handlers.

use axum::extract::State;
use axum::http::StatusCode;
use uuid::Uuid;

use super::error::{ApiResult, Problem};
use super::extract::{Auth, IdempotencyKey, Json, Path, Query};
use super::model::{Instance, InstanceCreate, InstanceListParams, InstanceUpdate, Page};
use super::page;
use crate::app::instances::{InstancePatch, NewInstance};
use crate::app::App;

/// Register an instance on a host.
#[utoipa::path(post, path = "/v1/instances", tag = "instances", operation_id = "instance_create",
    request_body = InstanceCreate,
    params(("Idempotency-Key" = inline(Option<IdempotencyKey>), Header, description = "Makes a retried create return the first response")),
    responses(
        (status = 201, body = Instance),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed JSON"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "Another project, or the admin token without `project_id`"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "`host` names no registered host"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "`instance_exists`"),
        (status = 413, body = Problem, content_type = "application/problem+json", description = "Body over 64 KiB"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "Invalid field"),
    ))]
pub async fn instance_create(
    State(app): State<App>,
    Auth(who): Auth,
    Json(body): Json<InstanceCreate>,
) -> ApiResult<(StatusCode, axum::Json<Instance>)> {
    let new = NewInstance {
        id: body.id,
        name: body.name,
        project_id: body.project_id,
        host: body.host,
    };
    let row = app.instance_create(&who, new).await?;
    Ok((StatusCode::CREATED, axum::Json(row.into())))
}

/// List instances; project tokens see their project's only.
#[utoipa::path(get, path = "/v1/instances", tag = "instances", operation_id = "instance_list",
    params(InstanceListParams),
    responses(
        (status = 200, body = Page<Instance>),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Invalid query"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
    ))]
pub async fn instance_list(
    State(app): State<App>,
    Auth(who): Auth,
    Query(q): Query<InstanceListParams>,
) -> ApiResult<axum::Json<Page<Instance>>> {
    let page = page(q.limit, q.page_token);
    let (rows, next) = app
        .instance_list(&who, q.project_id.as_ref(), q.host.as_ref(), &page)
        .await?;
    Ok(axum::Json(Page::new(rows, next, Instance::from)))
}

/// Show an instance.
#[utoipa::path(get, path = "/v1/instances/{id}", tag = "instances", operation_id = "instance_view",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = Instance),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such instance"),
    ))]
pub async fn instance_view(
    State(app): State<App>,
    Auth(who): Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Instance>> {
    Ok(axum::Json(
        app.instance_get(&who, &id.to_string()).await?.into(),
    ))
}

/// Rename an instance or record its migration to another host; its
/// floating IPs follow it.
#[utoipa::path(patch, path = "/v1/instances/{id}", tag = "instances", operation_id = "instance_update",
    params(("id" = Uuid, Path)),
    request_body = InstanceUpdate,
    responses(
        (status = 200, body = Instance),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed JSON"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such instance, or `host` names no registered host"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "Invalid field"),
    ))]
pub async fn instance_update(
    State(app): State<App>,
    Auth(who): Auth,
    Path(id): Path<Uuid>,
    Json(body): Json<InstanceUpdate>,
) -> ApiResult<axum::Json<Instance>> {
    let patch = InstancePatch {
        name: body.name,
        host: body.host,
    };
    Ok(axum::Json(
        app.instance_update(&who, &id.to_string(), patch)
            .await?
            .into(),
    ))
}

/// Delete an instance with no floating IPs associated.
#[utoipa::path(delete, path = "/v1/instances/{id}", tag = "instances", operation_id = "instance_delete",
    params(("id" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such instance"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "`instance_in_use`"),
    ))]
pub async fn instance_delete(
    State(app): State<App>,
    Auth(who): Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    app.instance_delete(&who, &id.to_string()).await?;
    Ok(StatusCode::NO_CONTENT)
}
