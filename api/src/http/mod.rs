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
pub mod ops;
mod pools;
mod quotas;
mod tokens;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::Router;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::{Modify, OpenApi};
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
const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "fipd",
        description = "Floating IPv6 control plane. Errors are `application/problem+json` \
                       (RFC 9457) with a stable `code`. Authenticate with `Authorization: Bearer <token>`.",
        license(name = "Apache-2.0"),
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "networks", description = "L2 segments where floating IPs move"),
        (name = "pools", description = "IPv6 prefixes floating IPs are allocated from"),
        (name = "floating-ips", description = "Floating IPv6 addresses"),
        (name = "instances", description = "Workloads placed on hosts"),
        (name = "tokens", description = "Project tokens"),
        (name = "quotas", description = "Per-project limits on floating IPs and instances"),
        (name = "hosts", description = "Compute hosts and their agents' leases"),
        (name = "agent", description = "The agent protocol: lease, desired state, reports (agent tokens only)"),
        (name = "operations", description = "Health, readiness and metrics (no token needed)"),
    ),
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

fn api_router() -> OpenApiRouter<App> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
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
        .routes(routes!(tokens::token_delete))
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
pub fn openapi() -> OpenApiDoc {
    let (_, mut doc) = api_router().split_for_parts();
    // Operations endpoints need no token.
    for path in ["/healthz", "/readyz", "/metrics"] {
        if let Some(item) = doc.paths.paths.get_mut(path) {
            if let Some(op) = item.get.as_mut() {
                op.security = Some(vec![
                    utoipa::openapi::security::SecurityRequirement::default(),
                ]);
            }
        }
    }
    doc
}

/// The whole application: API routes, Swagger UI, middleware.
pub fn router(app: App) -> Router {
    ops::metrics_handle();
    let (routes, _) = api_router().split_for_parts();
    let doc = openapi();
    // The UI is served from assets compiled into the binary; the validator
    // badge would fetch from an external host, so it is off.
    let swagger = SwaggerUi::new("/docs")
        .url("/openapi.json", doc)
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

/// Validates `limit` (1..=1000, default 100).
pub(crate) fn validate_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(l) if (1..=MAX_LIMIT).contains(&l) => Ok(l),
        Some(_) => Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be between 1 and {MAX_LIMIT}"),
        )),
    }
}

/// Validates paging parameters of id-ordered lists.
pub(crate) fn page(
    limit: Option<i64>,
    page_token: Option<String>,
) -> Result<PageRequest, ApiError> {
    let limit = validate_limit(limit)?;
    if let Some(t) = &page_token {
        if uuid::Uuid::parse_str(t).is_err() {
            return Err(ApiError::bad_request(
                "invalid_query",
                "page_token is not a token this API issued",
            ));
        }
    }
    Ok(PageRequest {
        after: page_token,
        limit,
    })
}
