//! The parts of the OpenAPI document that no single handler declares: the
//! security schemes, which operations need which token, the answers the
//! shared extractors give on every body, and one spelling for nullable
//! values. Everything else comes from the handlers and the types they read.

use serde_json::{json, Map, Value};
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::OpenApi;

use super::model::FloatingIpCreate;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "fipd",
        description = "Floating IPv6 control plane. Errors are `application/problem+json` \
                       (RFC 9457) with a stable `code`. Authenticate with `Authorization: Bearer <token>`.",
        license(name = "Apache-2.0"),
    ),
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

/// The document the routes are registered on.
pub fn base() -> OpenApiDoc {
    ApiDoc::openapi()
}

/// Paths served without a token.
const OPEN_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];
/// Paths that take an agent token (and only that).
const AGENT_PREFIX: &str = "/v1/agent/";

/// Completes the document gathered from the routes. It stays a JSON value
/// from here on: utoipa's types cannot hold every keyword added here.
pub fn finish(doc: OpenApiDoc) -> Value {
    let mut v = serde_json::to_value(&doc).expect("the OpenAPI document serialises");
    security(&mut v);
    body_answers(&mut v);
    idempotency_answers(&mut v);
    nullable(&mut v);
    parameters_not_null(&mut v);
    one_of_required(
        &mut v,
        "FloatingIpCreate",
        FloatingIpCreate::ONE_OF_REQUIRED,
    );
    v
}

/// Two bearer schemes, so a client or tester knows which token each
/// operation needs: admin and project tokens for the API, the host's agent
/// token for the agent protocol (docs/api.md, "Authentication").
fn security(v: &mut Value) {
    v["components"]["securitySchemes"] = json!({
        "bearer": {
            "type": "http", "scheme": "bearer",
            "description": "The admin token or a project token (POST /v1/tokens)."
        },
        "agent": {
            "type": "http", "scheme": "bearer",
            "description": "A host's agent token, returned once by POST /v1/hosts."
        }
    });
    for (path, item) in paths(v) {
        let security = if OPEN_PATHS.contains(&path.as_str()) {
            json!([{}])
        } else if path.starts_with(AGENT_PREFIX) {
            json!([{ "agent": [] }])
        } else {
            continue;
        };
        for op in operations(item) {
            op.insert("security".into(), security.clone());
        }
    }
}

/// Every operation that reads a JSON body answers 415 when the body is
/// not declared as JSON, and 413 when it is too large (the extractor in
/// extract.rs and the body limit in mod.rs, shared by all of them).
fn body_answers(v: &mut Value) {
    for (path, item) in paths(v) {
        let limit = if path.starts_with(AGENT_PREFIX) {
            "8 MiB"
        } else {
            "64 KiB"
        };
        for op in operations(item) {
            if !op.contains_key("requestBody") {
                continue;
            }
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            responses
                .entry("413")
                .or_insert_with(|| problem(&format!("`payload_too_large`: body over {limit}")));
            responses.entry("415").or_insert_with(|| {
                problem("`unsupported_media_type`: the body is not sent as application/json")
            });
        }
    }
}

/// Every create that takes an `Idempotency-Key` can answer 409 for the key
/// (the idempotency layer in middleware.rs, shared by all of them).
fn idempotency_answers(v: &mut Value) {
    const KEY: &str = "`idempotency_key_reused` (the key came with another body), \
                       `idempotency_in_progress` (its first request still runs) or \
                       `idempotency_result_gone` (what it created has been deleted)";
    for (_, item) in paths(v) {
        for op in operations(item) {
            let takes_key = op
                .get("parameters")
                .and_then(Value::as_array)
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == "Idempotency-Key"));
            if !takes_key {
                continue;
            }
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            let conflict = responses.entry("409").or_insert_with(|| problem(""));
            let before = conflict["description"].as_str().unwrap_or_default();
            let description = if before.is_empty() {
                KEY.to_owned()
            } else {
                format!("{before}; {KEY}")
            };
            conflict["description"] = Value::from(description);
        }
    }
}

/// utoipa spells an optional value of a constrained type as
/// `oneOf: [{"type": "null"}, {...}]`; generators and validators read the
/// plain `"type": [T, "null"]` more reliably, and it means the same.
fn nullable(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for child in map.values_mut() {
                nullable(child);
            }
            collapse_one_of(map);
        }
        Value::Array(items) => items.iter_mut().for_each(nullable),
        _ => {}
    }
}

fn collapse_one_of(map: &mut Map<String, Value>) {
    let Some(Value::Array(alternatives)) = map.get("oneOf") else {
        return;
    };
    let is_null = |a: &Value| a == &json!({ "type": "null" });
    let mut rest = alternatives.iter().filter(|a| !is_null(a));
    let (Some(Value::Object(only)), None) = (rest.next(), rest.next()) else {
        return;
    };
    let Some(Value::String(ty)) = only.get("type") else {
        return;
    };
    let with_null = alternatives.iter().any(is_null);
    let mut merged = only.clone();
    if with_null {
        merged.insert("type".into(), json!([ty, "null"]));
    }
    map.remove("oneOf");
    for (k, val) in merged {
        map.entry(k).or_insert(val);
    }
}

/// A body that needs one of two optional fields, with a value: JSON
/// Schema says "if the first is missing or null, the second is required
/// and not null". utoipa derives neither `if` nor `not`. (`anyOf` would say
/// it too, but client generators turn it into a union type.)
fn one_of_required(v: &mut Value, schema: &str, [first, second]: [&str; 2]) {
    let given =
        |f: &str| json!({ "required": [f], "properties": { f: { "not": { "type": "null" } } } });
    let object = &mut v["components"]["schemas"][schema];
    object["if"] = given(first);
    object["else"] = given(second);
}

/// A header or query parameter is a string on the wire, never `null`: an
/// optional one is left out (`required: false`).
fn parameters_not_null(v: &mut Value) {
    for (_, item) in paths(v) {
        for op in operations(item) {
            let Some(Value::Array(params)) = op.get_mut("parameters") else {
                continue;
            };
            for p in params {
                if let Some(Value::Array(types)) = p.pointer_mut("/schema/type") {
                    types.retain(|t| t != "null");
                    if let [only] = types.as_slice() {
                        let only = only.clone();
                        p["schema"]["type"] = only;
                    }
                }
            }
        }
    }
}

/// A response with a problem document.
fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/problem+json": {
            "schema": { "$ref": "#/components/schemas/Problem" } } }
    })
}

fn paths(v: &mut Value) -> impl Iterator<Item = (&String, &mut Value)> {
    v["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|p| p.iter_mut())
}

fn operations(item: &mut Value) -> impl Iterator<Item = &mut Map<String, Value>> {
    const METHODS: [&str; 5] = ["get", "put", "post", "patch", "delete"];
    item.as_object_mut()
        .into_iter()
        .flat_map(|m| m.iter_mut())
        .filter(|(k, _)| METHODS.contains(&k.as_str()))
        .filter_map(|(_, op)| op.as_object_mut())
}
