//! `/v1/quotas` handlers: per-project limits on floating IPs and instances.

use axum::extract::State;
use axum::http::StatusCode;

use super::error::{ApiError, ApiResult, Problem};
use super::extract::{Auth, Json, Path, Query};
use super::model::{Limit, Page, Quota, QuotaPageParams, QuotaUpdate};
use crate::app::quotas::QuotaSet;
use crate::app::{App, PageRequest};
use crate::domain::ProjectId;

fn project(raw: &str) -> Result<ProjectId, ApiError> {
    // A malformed project ID cannot name a project: 404, like other paths.
    ProjectId::parse(raw).map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such project: not a valid project ID",
        )
    })
}

/// List projects with quotas of their own (admin).
#[utoipa::path(get, path = "/v1/quotas", tag = "quotas", operation_id = "quota_list",
    params(QuotaPageParams),
    responses(
        (status = 200, body = Page<Quota>),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Invalid query"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "Not the admin token"),
    ))]
pub async fn quota_list(
    State(app): State<App>,
    Auth(who): Auth,
    Query(q): Query<QuotaPageParams>,
) -> ApiResult<axum::Json<Page<Quota>>> {
    let page = PageRequest {
        after: q.page_token.map(String::from),
        limit: Limit::or_default(q.limit),
    };
    let (rows, next) = app.quota_list(&who, &page).await?;
    Ok(axum::Json(Page::new(rows, next, Quota::from)))
}

/// Show a project's quota and use; a project token sees its own only.
#[utoipa::path(get, path = "/v1/quotas/{project_id}", tag = "quotas", operation_id = "quota_view",
    params(("project_id" = String, Path)),
    responses(
        (status = 200, body = Quota),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "Another project"),
    ))]
pub async fn quota_view(
    State(app): State<App>,
    Auth(who): Auth,
    Path(project_id): Path<String>,
) -> ApiResult<axum::Json<Quota>> {
    let project = project(&project_id)?;
    Ok(axum::Json(app.quota_get(&who, &project).await?.into()))
}

/// Set a project's limits (admin); a limit left out returns to the default.
#[utoipa::path(put, path = "/v1/quotas/{project_id}", tag = "quotas", operation_id = "quota_update",
    params(("project_id" = String, Path)),
    request_body = QuotaUpdate,
    responses(
        (status = 200, body = Quota),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed JSON"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "Not the admin token"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "Not a project ID"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "Invalid field"),
    ))]
pub async fn quota_update(
    State(app): State<App>,
    Auth(who): Auth,
    Path(project_id): Path<String>,
    Json(body): Json<QuotaUpdate>,
) -> ApiResult<axum::Json<Quota>> {
    let project = project(&project_id)?;
    let set = QuotaSet {
        floating_ips: body.floating_ips,
        instances: body.instances,
    };
    Ok(axum::Json(app.quota_set(&who, &project, set).await?.into()))
}

/// Return a project to the default limits (admin).
#[utoipa::path(delete, path = "/v1/quotas/{project_id}", tag = "quotas", operation_id = "quota_delete",
    params(("project_id" = String, Path)),
    responses(
        (status = 204, description = "The project uses the defaults again"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "Not the admin token"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "Not a project ID"),
    ))]
pub async fn quota_delete(
    State(app): State<App>,
    Auth(who): Auth,
    Path(project_id): Path<String>,
) -> ApiResult<StatusCode> {
    let project = project(&project_id)?;
    app.quota_set(&who, &project, QuotaSet::default()).await?;
    Ok(StatusCode::NO_CONTENT)
}
