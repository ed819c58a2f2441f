//! `/v1/tokens` handlers.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::error::{ApiResult, Problem};
use super::extract::{Auth, IdempotencyKey, Json, Path, Query};
use super::middleware::ReplayAs;
use super::model::{Page, PageParams, Token, TokenCreate, TokenCreated};
use super::page;
use crate::app::App;

/// Create a project token (admin); the secret is returned this once.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", operation_id = "token_create",
    request_body = TokenCreate,
    params(("Idempotency-Key" = inline(Option<IdempotencyKey>), Header, description = "Makes a retried create return the first response")),
    responses(
        (status = 201, body = TokenCreated),
        (status = 200, body = Token, description = "A replay (same Idempotency-Key and body): the token without its secret, which is shown only once and never stored"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed JSON"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "Not the admin token"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "Invalid field"),
    ))]
pub async fn token_create(
    State(app): State<App>,
    Auth(who): Auth,
    Json(body): Json<TokenCreate>,
) -> ApiResult<Response> {
    let (row, token) = app
        .token_create(&who, body.project_id, body.description.unwrap_or_default())
        .await?;
    let info = Token::from(row);
    let replay = ReplayAs {
        status: StatusCode::OK,
        body: serde_json::to_string(&info).expect("serialisable"),
    };
    let mut resp = (
        StatusCode::CREATED,
        axum::Json(TokenCreated { info, token }),
    )
        .into_response();
    resp.extensions_mut().insert(replay);
    Ok(resp)
}

/// List project tokens (admin); secrets are never shown again.
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens", operation_id = "token_list",
    params(PageParams),
    responses(
        (status = 200, body = Page<Token>),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Invalid query"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "Not the admin token"),
    ))]
pub async fn token_list(
    State(app): State<App>,
    Auth(who): Auth,
    Query(q): Query<PageParams>,
) -> ApiResult<axum::Json<Page<Token>>> {
    let page = page(q.limit, q.page_token);
    let (rows, next) = app.token_list(&who, &page).await?;
    Ok(axum::Json(Page::new(rows, next, Token::from)))
}

/// Show a project token (admin); never its secret.
#[utoipa::path(get, path = "/v1/tokens/{id}", tag = "tokens", operation_id = "token_view",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = Token),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "Not the admin token"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such token"),
    ))]
pub async fn token_view(
    State(app): State<App>,
    Auth(who): Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Token>> {
    Ok(axum::Json(Token::from(
        app.token_get(&who, &id.to_string()).await?,
    )))
}

/// Revoke a project token (admin).
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "tokens", operation_id = "token_delete",
    params(("id" = Uuid, Path)),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or bad token"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "Not the admin token"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such token"),
    ))]
pub async fn token_delete(
    State(app): State<App>,
    Auth(who): Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    app.token_delete(&who, &id.to_string()).await?;
    Ok(StatusCode::NO_CONTENT)
}
