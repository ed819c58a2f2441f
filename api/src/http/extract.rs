//! Our own extractors: every malformed body, path, query or header comes
//! back as problem+json, never as axum's plain-text rejection.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, IF_MATCH};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::app::floating_ips::IfMatch;
use crate::app::{App, AppError, Principal};

/// A JSON body; unknown fields are refused by the target types themselves.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    let (code, status) = match &r {
        JsonRejection::JsonDataError(_) => ("invalid_body", StatusCode::UNPROCESSABLE_ENTITY),
        JsonRejection::JsonSyntaxError(_) => ("invalid_json", StatusCode::BAD_REQUEST),
        JsonRejection::MissingJsonContentType(_) => {
            ("unsupported_media_type", StatusCode::UNSUPPORTED_MEDIA_TYPE)
        }
        _ if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ("payload_too_large", StatusCode::PAYLOAD_TOO_LARGE)
        }
        _ => ("invalid_body", r.status()),
    };
    let detail = match &r {
        JsonRejection::MissingJsonContentType(_) => {
            "send the body as JSON with Content-Type: application/json".to_owned()
        }
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => {
            format!("request bodies are limited to {} bytes", super::BODY_LIMIT)
        }
        _ => r.body_text(),
    };
    ApiError::new(status, code, detail)
}

/// Path parameters. A malformed ID cannot name anything, so it is a 404.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Self(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no such object: {}", e.body_text()),
            )),
            Err(e) => Err(ApiError::bad_request("invalid_path", e.body_text())),
        }
    }
}

/// Query parameters; unknown ones are refused so a typo in a filter never
/// silently widens a listing.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Self(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(ApiError::bad_request("invalid_query", e.body_text()))
            }
            Err(e) => Err(ApiError::bad_request("invalid_query", e.body_text())),
        }
    }
}

/// The authenticated caller of a user-facing route, from
/// `Authorization: Bearer <token>`. Agent tokens are refused here: they may
/// use the agent endpoints only.
pub struct Auth(pub Principal);

impl FromRequestParts<App> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or(AppError::Unauthenticated)?;
        match app.authenticate(token).await? {
            Principal::Agent { .. } => Err(AppError::Forbidden(
                "agent tokens may only use the /v1/agent endpoints".into(),
            )
            .into()),
            who => Ok(Self(who)),
        }
    }
}

/// The authenticated agent of an agent route; other tokens are refused.
pub struct AgentAuth(pub Principal);

impl FromRequestParts<App> for AgentAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or(AppError::Unauthenticated)?;
        match app.authenticate(token).await? {
            who @ Principal::Agent { .. } => Ok(Self(who)),
            _ => Err(AppError::Forbidden("agent endpoints need an agent token".into()).into()),
        }
    }
}

/// The bearer token of a request, if it has a well-formed one.
pub fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

/// `If-Match: "<revision>"`, a list of such tags, or `*` (RFC 9110
/// §13.1.1). Comparison is strong: a weak tag (`W/"3"`) never matches, so
/// a request carrying only weak tags fails with 412. A bare number is
/// accepted as if quoted.
pub struct IfMatchHeader(pub Option<IfMatch>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatchHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(IF_MATCH) else {
            return Ok(Self(None));
        };
        let bad = || {
            ApiError::bad_request(
                "invalid_header",
                "If-Match must be the quoted revision, e.g. If-Match: \"3\"",
            )
        };
        let s = value.to_str().map_err(|_| bad())?.trim();
        parse_if_match(s).map(|m| Self(Some(m))).ok_or_else(bad)
    }
}

fn parse_if_match(s: &str) -> Option<IfMatch> {
    if s == "*" {
        return Some(IfMatch::Any);
    }
    let mut strong = Vec::new();
    for tag in s.split(',').map(str::trim) {
        let (weak, t) = match tag.strip_prefix("W/") {
            Some(t) => (true, t),
            None => (false, tag),
        };
        let quoted = t.strip_prefix('"').and_then(|t| t.strip_suffix('"'));
        let digits = match quoted {
            Some(d) => d,
            None if !weak => t,
            None => return None,
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let rev: i64 = digits.parse().ok()?;
        if !weak {
            strong.push(rev);
        }
    }
    Some(IfMatch::Revisions(strong))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_accepts_quoted_lists_bare_and_star() {
        assert_eq!(parse_if_match("\"3\""), Some(IfMatch::Revisions(vec![3])));
        assert_eq!(parse_if_match("3"), Some(IfMatch::Revisions(vec![3])));
        assert_eq!(
            parse_if_match("\"3\", \"4\""),
            Some(IfMatch::Revisions(vec![3, 4]))
        );
        assert_eq!(parse_if_match("*"), Some(IfMatch::Any));
    }

    #[test]
    fn weak_tags_never_match() {
        // RFC 9110: If-Match uses the strong comparison.
        assert_eq!(parse_if_match("W/\"3\""), Some(IfMatch::Revisions(vec![])));
        assert_eq!(
            parse_if_match("W/\"3\", \"4\""),
            Some(IfMatch::Revisions(vec![4]))
        );
    }

    #[test]
    fn if_match_rejects_garbage() {
        for s in [
            "",
            "\"\"",
            "\"abc\"",
            "-1",
            "\"3",
            "W/3",
            "99999999999999999999999",
        ] {
            assert_eq!(parse_if_match(s), None, "{s}");
        }
    }
}
