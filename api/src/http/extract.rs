//! Our own extractors: every malformed body, path, query or header comes
//! back as problem+json, never as axum's plain-text rejection.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, IF_MATCH};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::app::floating_ips::IfMatch;
use crate::app::{App, AppError, Principal};

/// A JSON body; unknown fields are refused by the target types themselves.
/// Every body of the API is a JSON object, and a number with a zero
/// fraction (`124.0`) counts as an integer, as JSON Schema counts it: the
/// body is read as a JSON value first, checked and normalised, then
/// converted.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let value = match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(v)) => v,
            Err(rejection) => return Err(json_rejection(rejection)),
        };
        let invalid = |detail: String| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", detail)
        };
        if !value.is_object() {
            return Err(invalid("the body must be a JSON object".into()));
        }
        serde_path_to_error::deserialize(whole_numbers(value))
            .map(Self)
            .map_err(|e| match e.path().to_string().as_str() {
                "." => invalid(e.inner().to_string()),
                path => invalid(format!("{path}: {}", e.inner())),
            })
    }
}

/// Turns numbers like `124.0` into the integers they are, everywhere in a
/// value; other numbers stay as they are.
fn whole_numbers(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    // Only where every integer is exact as an f64: a number beyond 2^53
    // written as a float may stand for a neighbour, so it stays a float
    // and an integer field refuses it.
    const EXACT: std::ops::RangeInclusive<f64> = -9_007_199_254_740_992.0..=9_007_199_254_740_992.0;
    match v {
        Value::Number(n) if n.is_f64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && EXACT.contains(&f) => Value::from(f as i64),
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(whole_numbers).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, whole_numbers(v)))
                .collect(),
        ),
        other => other,
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

/// A string header's schema: its pattern is what its parser accepts.
fn header_schema(
    pattern: &str,
    example: &str,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(pattern))
        .examples([serde_json::Value::from(example)])
        .into()
}

/// `Idempotency-Key`: 1 to 255 visible ASCII characters (docs/api.md,
/// "Idempotency").
pub struct IdempotencyKey(pub String);

impl IdempotencyKey {
    const PATTERN: &'static str = "^[!-~]{1,255}$";

    pub fn parse(value: &HeaderValue) -> Option<Self> {
        let b = value.as_bytes();
        ((1..=255).contains(&b.len()) && b.iter().all(u8::is_ascii_graphic))
            .then(|| Self(String::from_utf8_lossy(b).into_owned()))
    }
}

impl utoipa::PartialSchema for IdempotencyKey {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        header_schema(Self::PATTERN, "3f2b8c1e-create-net-1")
    }
}

impl utoipa::ToSchema for IdempotencyKey {}

/// A revision in `If-Match`: at most 18 digits, so every one fits an i64.
const REVISION_DIGITS: usize = 18;

impl utoipa::PartialSchema for IfMatchHeader {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let n = REVISION_DIGITS;
        let tag = format!(r#"(W/)?"[0-9]{{1,{n}}}"|[0-9]{{1,{n}}}"#);
        let pattern = format!(r"^[ \t]*(\*|({tag})([ \t]*,[ \t]*({tag}))*)[ \t]*$");
        header_schema(&pattern, "\"3\"")
    }
}

impl utoipa::ToSchema for IfMatchHeader {}

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
        if digits.is_empty()
            || digits.len() > REVISION_DIGITS
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
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
    fn whole_floats_become_integers() {
        use serde_json::json;
        assert_eq!(
            whole_numbers(json!({"a": [124.0, -3.0, 1.5, 7]})),
            json!({"a": [124, -3, 1.5, 7]})
        );
        assert!(whole_numbers(json!(1e300)).is_f64());
        // Read exactly (serde_json's float_roundtrip): the fast parser read
        // this as 4286443205583585.5 and refused a whole number.
        let exact: serde_json::Value = serde_json::from_str("4286443205583586.0").unwrap();
        assert_eq!(whole_numbers(exact), json!(4286443205583586i64));
        // -2^63 - 1 reads as the f64 -2^63; it must not become i64::MIN.
        let below: serde_json::Value = serde_json::from_str("-9223372036854775809").unwrap();
        assert!(whole_numbers(below).is_f64());
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
            "1234567890123456789",
        ] {
            assert_eq!(parse_if_match(s), None, "{s}");
        }
    }

    /// The document's pattern accepts exactly what the parser accepts.
    #[test]
    fn the_if_match_pattern_matches_the_parser() {
        let utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::Object(o)) =
            <IfMatchHeader as utoipa::PartialSchema>::schema()
        else {
            panic!("an object schema")
        };
        let re = regex::Regex::new(o.pattern.as_deref().unwrap()).unwrap();
        for s in [
            "*",
            "\"3\"",
            "3",
            " \"3\" ",
            "\"3\", \"4\"",
            "W/\"3\"",
            "W/\"3\",\"4\"",
            "123456789012345678",
            "",
            "\"\"",
            "\"abc\"",
            "-1",
            "\"3",
            "W/3",
            "*, \"3\"",
            "null",
            "1234567890123456789",
            "\"3\",",
            ",\"3\"",
        ] {
            let parsed = parse_if_match(s.trim()).is_some();
            assert_eq!(re.is_match(s), parsed, "{s:?}");
        }
    }

    #[test]
    fn idempotency_keys_are_visible_ascii() {
        let re = regex::Regex::new(IdempotencyKey::PATTERN).unwrap();
        for s in [
            "a",
            "key-1:x/y",
            "a b",
            "",
            "ä",
            &"k".repeat(255),
            &"k".repeat(256),
        ] {
            let parsed = HeaderValue::from_str(s)
                .ok()
                .and_then(|v| IdempotencyKey::parse(&v))
                .is_some();
            assert_eq!(re.is_match(s), parsed, "{s:?}");
        }
    }
}
