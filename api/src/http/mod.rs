//! The HTTP surface: axum routes, registered once through utoipa so the
//! router and the OpenAPI document cannot drift apart.

mod agent;
pub mod error;
pub mod extract;
mod floating_ips;
mod hosts;
mod instances;
pub mod middleware;
pub mod model;
mod networks;
mod openapi;
pub mod ops;
mod pools;
mod quotas;
mod tokens;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::Router;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::app::{App, PageRequest};
use error::ApiError;
pub use middleware::IDEMPOTENCY_TTL_MS;

/// Request bodies larger than this are refused with 413.
pub const BODY_LIMIT: usize = 64 * 1024;
/// Limit for agent reports (10,000 reports of ~300 bytes).
pub const AGENT_BODY_LIMIT: usize = 8 * 1024 * 1024;

fn api_router() -> OpenApiRouter<App> {
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(networks::network_create, networks::network_list))
        .routes(routes!(
            networks::network_view,
            networks::network_update,
            networks::network_delete
        ))
        .routes(routes!(pools::pool_create, pools::pool_list))
        .routes(routes!(pools::pool_view, pools::pool_delete))
        .routes(routes!(pools::pool_usage))
        .routes(routes!(
            floating_ips::floating_ip_create,
            floating_ips::floating_ip_list
        ))
        .routes(routes!(
            floating_ips::floating_ip_view,
            floating_ips::floating_ip_update,
            floating_ips::floating_ip_delete
        ))
        .routes(routes!(floating_ips::floating_ip_events))
        .routes(routes!(
            instances::instance_create,
            instances::instance_list
        ))
        .routes(routes!(
            instances::instance_view,
            instances::instance_update,
            instances::instance_delete
        ))
        .routes(routes!(tokens::token_create, tokens::token_list))
        .routes(routes!(tokens::token_view, tokens::token_delete))
        .routes(routes!(quotas::quota_list))
        .routes(routes!(
            quotas::quota_view,
            quotas::quota_update,
            quotas::quota_delete
        ))
        .routes(routes!(hosts::host_create, hosts::host_list))
        .routes(routes!(hosts::host_view, hosts::host_delete))
        .merge(agent_router())
        .routes(routes!(ops::health_view))
        .routes(routes!(ops::ready_view))
        .routes(routes!(ops::metrics_view))
}

/// Agent routes accept larger bodies: a host with thousands of floating
/// IPs reports them in one batch.
fn agent_router() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(agent::agent_lease_renew))
        .routes(routes!(agent::agent_desired_state_view))
        .routes(routes!(agent::agent_report_create))
        .layer(DefaultBodyLimit::max(AGENT_BODY_LIMIT))
}

/// The OpenAPI document, exactly as served at `/openapi.json`.
pub fn openapi() -> serde_json::Value {
    let (_, doc) = api_router().split_for_parts();
    openapi::finish(doc)
}

/// The whole application: API routes, Swagger UI, middleware.
pub fn router(app: App) -> Router {
    ops::metrics_handle();
    let (routes, _) = api_router().split_for_parts();
    let doc = openapi();
    // The UI is served from assets compiled into the binary; the validator
    // badge would fetch from an external host, so it is off.
    let swagger = SwaggerUi::new("/docs")
        .external_url_unchecked("/openapi.json", doc)
        .config(Config::new(["/openapi.json"]).validator_url("none"));
    routes
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            middleware::idempotency,
        ))
        .merge(swagger)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(middleware::deadline))
        .layer(axum::middleware::from_fn(middleware::request_context))
        .layer(axum::middleware::from_fn(middleware::detach))
        .with_state(app)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not support that method",
    )
}

/// The paging request of an id-ordered list.
pub(crate) fn page(limit: Option<model::Limit>, page_token: Option<uuid::Uuid>) -> PageRequest {
    PageRequest {
        after: page_token.map(|t| t.to_string()),
        limit: model::Limit::or_default(limit),
    }
}
