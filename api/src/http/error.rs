//! Errors as `application/problem+json` (RFC 9457). [`ApiError::from`] on an
//! [`AppError`] is the one place where domain errors become HTTP statuses.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppError;
use crate::store::StoreError;

tokio::task_local! {
    /// The current request's ID, set by the request-context middleware so
    /// that every problem document can carry it.
    pub static REQUEST_ID: String;
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type: `urn:fipd:problem:<code>`.
    #[schema(example = "urn:fipd:problem:pool_exhausted")]
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code; clients branch on this.
    #[schema(example = "pool_exhausted")]
    pub code: String,
    /// The request's ID, also in the `x-request-id` response header.
    pub request_id: String,
}

/// An error on its way to becoming a problem response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    /// Send `Retry-After: 1` (a transient outage).
    pub retry_after: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            retry_after: false,
        }
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::NotFound(what) => Self::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{what} not found"),
            ),
            // Neutron's answer too: naming a network that does not exist
            // is a 404, whichever resource the request was about.
            e @ AppError::NoSuch { .. } => {
                Self::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            e @ AppError::Invalid { .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                e.to_string(),
            ),
            AppError::Conflict { code, detail } => Self::new(StatusCode::CONFLICT, code, detail),
            e @ AppError::RevisionMismatch { .. } => Self::new(
                StatusCode::PRECONDITION_FAILED,
                "revision_mismatch",
                e.to_string(),
            ),
            e @ AppError::Unauthenticated => {
                Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", e.to_string())
            }
            AppError::Forbidden(detail) => Self::new(StatusCode::FORBIDDEN, "forbidden", detail),
            AppError::Store(e) => store_error(e),
        }
    }
}

/// Whether a database error means the database cannot be reached (down,
/// restarting, or every connection busy) rather than a fault of ours.
fn unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        // SQLSTATE class 08 (connection exception) and 57P0x (the server
        // is shutting down or restarting).
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P0")),
        _ => false,
    }
}

fn store_error(e: StoreError) -> ApiError {
    // Log the whole chain here; the client gets no internals.
    let chain = error_chain(&e);
    match &e {
        StoreError::Database(db) if unreachable(db) => {
            tracing::warn!(error = %chain, "database unreachable");
            let mut err = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unreachable",
                "the database is unreachable or busy; retry later",
            );
            err.retry_after = true;
            err
        }
        _ => {
            tracing::error!(error = %chain, "request failed in the store");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; the server log has details under this request_id",
            )
        }
    }
}

/// `outer: inner: innermost`, for logs.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = REQUEST_ID.try_with(Clone::clone).unwrap_or_default();
        let problem = Problem {
            type_: format!("urn:fipd:problem:{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail,
            code: self.code.to_owned(),
            request_id,
        };
        let body = serde_json::to_vec(&problem).expect("problem serialises");
        let mut resp = (self.status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
