//! Cross-cutting request handling: request IDs, metrics and logs, and
//! `Idempotency-Key` replay for POSTs.

use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::error::{error_chain, ApiError, REQUEST_ID};
use super::extract::{bearer, IdempotencyKey};
use super::BODY_LIMIT;
use crate::app::{App, AppError, Principal};
use crate::store::now_ms;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");
const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_TTL_MS: i64 = 24 * 3600 * 1000;
/// How long a request may run. Long polls bound themselves (their wait
/// plus this).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A claim on an idempotency key whose request has not finished after
/// this long belongs to no request any more (its replica died): the key is
/// free again. Every request ends within [`REQUEST_TIMEOUT`].
const ABANDONED_CLAIM_MS: i64 = 2 * REQUEST_TIMEOUT.as_millis() as i64;

/// Tells the idempotency layer what to replay instead of the response
/// itself: a response carrying a secret is recorded without it, because
/// no secret is ever stored (docs/api.md, "Idempotency").
#[derive(Clone)]
pub struct ReplayAs {
    pub status: StatusCode,
    pub body: String,
}

/// Runs the rest of the stack in a task of its own, so a client that
/// disconnects or gives up no longer cancels its request half way through
/// a transaction: the request finishes and its answer is dropped.
pub async fn detach(req: Request, next: Next) -> Response {
    match tokio::spawn(next.run(req)).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::error!(error = %e, "request task failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )
            .into_response()
        }
    }
}

/// Bounds how long a request runs; one that takes longer answers 503 with
/// `Retry-After`.
pub async fn deadline(req: Request, next: Next) -> Response {
    let limit = if req.uri().path() == "/v1/agent/desired-state" {
        Duration::from_millis(crate::app::agent::MAX_WAIT_MS) + REQUEST_TIMEOUT
    } else {
        REQUEST_TIMEOUT
    };
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            tracing::warn!(limit_s = limit.as_secs(), "request timed out");
            let mut resp = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!(
                    "the request did not finish within {} s; retry it",
                    limit.as_secs()
                ),
            )
            .into_response();
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            resp
        }
    }
}

/// Assigns the request ID (the client's `x-request-id` when it is sane),
/// makes it visible to problem documents and logs, records metrics.
pub async fn request_context(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = req.method().clone();
    let span = tracing::info_span!("request", request_id = %id, %method, route = %route);
    let started = Instant::now();
    span.in_scope(|| tracing::debug!("request started"));
    let mut resp = REQUEST_ID
        .scope(
            id.clone(),
            tracing::Instrument::instrument(next.run(req), span.clone()),
        )
        .await;
    let elapsed = started.elapsed();
    let status = resp.status();
    metrics::counter!("fipd_http_requests_total",
        "method" => method.to_string(), "route" => route.clone(), "status" => status.as_u16().to_string())
    .increment(1);
    metrics::histogram!("fipd_http_request_duration_seconds",
        "method" => method.to_string(), "route" => route)
    .record(elapsed.as_secs_f64());
    span.in_scope(|| {
        tracing::info!(
            status = status.as_u16(),
            elapsed_ms = elapsed.as_millis() as u64,
            "handled"
        );
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    resp
}

/// Replays the first successful response to a POST with the same
/// `Idempotency-Key` (per caller, for 24 h), so a retried create makes one
/// object. The same key with another body is refused; a key whose first
/// request is still running answers 409; failed requests are not recorded,
/// so a client may retry them with the same key. Authentication comes
/// first: a request without a valid token is left to its handler's 401,
/// whatever its key looks like.
pub async fn idempotency(State(app): State<App>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(raw_key) = req.headers().get(&IDEMPOTENCY_KEY).cloned() else {
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    let Some(who) = (match bearer(&parts) {
        Some(token) => app.authenticate(token).await.ok(),
        None => None,
    }) else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    let key = match IdempotencyKey::parse(&raw_key) {
        Some(IdempotencyKey(k)) => k,
        None => {
            return ApiError::bad_request(
                "invalid_header",
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            )
            .into_response()
        }
    };
    let bytes = match to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("request bodies are limited to {BODY_LIMIT} bytes"),
            )
            .into_response()
        }
    };
    let mut hasher = Sha256::new();
    hasher.update(parts.uri.path().as_bytes());
    hasher.update([0]);
    hasher.update(&bytes);
    let hash: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let scope = who.scope();
    let now = now_ms();
    let claimed = match app
        .store
        .idempotency_claim(
            &scope,
            &key,
            &hash,
            now,
            now - IDEMPOTENCY_TTL_MS,
            now - ABANDONED_CLAIM_MS,
        )
        .await
    {
        Ok(c) => c,
        Err(e) => return ApiError::from(AppError::from(e)).into_response(),
    };
    if !claimed {
        return match app.store.idempotency_get(&scope, &key).await {
            // A uniqueness conflict, answered like the API's others (409);
            // docs/api.md, "Idempotency".
            Ok(Some(rec)) if rec.request_hash != hash => ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_key_reused",
                "this Idempotency-Key was used with another request body",
            )
            .into_response(),
            Ok(Some(rec)) => match (rec.status, rec.response) {
                (Some(status), Some(body)) => {
                    match result_exists(&app, &who, parts.uri.path(), &body).await {
                        Ok(true) => replay(status, body),
                        Ok(false) => ApiError::new(
                            StatusCode::CONFLICT,
                            "idempotency_result_gone",
                            "the object this Idempotency-Key created has been deleted since; \
                             use a new key to create another",
                        )
                        .into_response(),
                        Err(e) => ApiError::from(e).into_response(),
                    }
                }
                _ => ApiError::new(
                    StatusCode::CONFLICT,
                    "idempotency_in_progress",
                    "a request with this Idempotency-Key is still being handled; retry shortly",
                )
                .into_response(),
            },
            // Expired and purged between our claim and read: rare; ask for a retry.
            Ok(None) => ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_in_progress",
                "retry this request",
            )
            .into_response(),
            Err(e) => ApiError::from(AppError::from(e)).into_response(),
        };
    }
    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if !resp.status().is_success() {
        if let Err(e) = app.store.idempotency_release(&scope, &key).await {
            tracing::warn!(error = %error_chain(&e), "could not release idempotency key");
        }
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let body = match to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "could not buffer response for idempotency record");
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )
            .into_response();
        }
    };
    let (status, text) = match parts.extensions.remove::<ReplayAs>() {
        Some(r) => (r.status, r.body),
        None => (parts.status, String::from_utf8_lossy(&body).into_owned()),
    };
    if let Err(e) = app
        .store
        .idempotency_complete(&scope, &key, i64::from(status.as_u16()), &text)
        .await
    {
        tracing::warn!(error = %error_chain(&e), "could not record idempotent response");
    }
    Response::from_parts(parts, Body::from(body))
}

/// Whether the object a recorded create made is still there. A replay
/// must not hand out an ID that now answers 404 (docs/api.md,
/// "Idempotency"): the client learns the object is gone instead.
async fn result_exists(
    app: &App,
    who: &Principal,
    path: &str,
    body: &str,
) -> Result<bool, AppError> {
    let Some(id) = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("id")?.as_str().map(str::to_owned))
    else {
        return Ok(true);
    };
    let found = match path {
        "/v1/networks" => app.network_get(&id).await.map(drop),
        "/v1/pools" => app.pool_get(&id).await.map(drop),
        "/v1/floating-ips" => app.fip_get(who, &id).await.map(drop),
        "/v1/instances" => app.instance_get(who, &id).await.map(drop),
        "/v1/hosts" => app.host_get(who, &id).await.map(drop),
        "/v1/tokens" => app.token_get(who, &id).await.map(drop),
        _ => Ok(()),
    };
    match found {
        Ok(()) => Ok(true),
        Err(AppError::NotFound(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

fn replay(status: i64, body: String) -> Response {
    let status = u16::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    resp
}
