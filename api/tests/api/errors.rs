//! Malformed input of every kind gets a problem document, never a 500.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::helpers::*;

async fn malformed_bodies_are_problems(b: Backend) {
    let app = TestApp::spawn(b).await;
    let send = |body: &'static str, ct: &'static str| {
        let app = &app;
        async move {
            app.req(Method::POST, "/v1/networks", ADMIN)
                .header("content-type", ct)
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    expect_problem(
        send("{", "application/json").await,
        StatusCode::BAD_REQUEST,
        "invalid_json",
    )
    .await;
    expect_problem(
        send("{\"name\":\"a\"}", "text/plain").await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let p = expect_problem(
        send("{\"name\":\"a\",\"colour\":\"red\"}", "application/json").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("colour"), "{p}");
    expect_problem(
        send("{\"name\":\"\"}", "application/json").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    )
    .await;
    expect_problem(
        send(
            "{\"name\":\"a\",\"description\":\"x\\u0000y\"}",
            "application/json",
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    )
    .await;
    expect_problem(
        send("[]", "application/json").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    )
    .await;
    let list = expect(app.get("/v1/networks", ADMIN).await, StatusCode::OK).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "nothing stored");
}

async fn oversized_bodies_are_413(b: Backend) {
    let app = TestApp::spawn(b).await;
    let big = json!({ "name": "a", "description": "x".repeat(70_000) });
    let r = app.post("/v1/networks", ADMIN, big.clone()).await;
    expect_problem(r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    let r = app
        .req(Method::POST, "/v1/networks", ADMIN)
        .header("idempotency-key", "big")
        .json(&big)
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
}

async fn unknown_routes_methods_and_ids_are_problems(b: Backend) {
    let app = TestApp::spawn(b).await;
    expect_problem(
        app.get("/v1/nothing", ADMIN).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let r = app
        .req(Method::PUT, "/v1/networks", ADMIN)
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    expect_problem(
        app.get("/v1/networks/not-a-uuid", ADMIN).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_problem(
        app.get("/v1/networks?colour=red", ADMIN).await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    )
    .await;
    let r = app
        .req(Method::POST, "/v1/networks", ADMIN)
        .header("idempotency-key", "")
        .json(&json!({ "name": "x" }))
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::BAD_REQUEST, "invalid_header").await;
}

async fn hostile_inputs_never_produce_a_500(b: Backend) {
    let app = TestApp::spawn(b).await;
    let net = app.network("n").await;
    app.pool(&net, "2001:db8::/64").await;
    let bodies = [
        json!({ "network_id": net, "project_id": "p\u{0}" }),
        json!({ "network_id": net, "project_id": "x".repeat(100) }),
        json!({ "network_id": net, "project_id": "p", "address": "::1" }),
        json!({ "network_id": net, "project_id": "p", "address": "ff02::1" }),
        json!({ "network_id": net, "project_id": "p", "address": "fe80::1" }),
        json!({ "network_id": net, "project_id": "p", "description": 5 }),
        json!({ "network_id": "🙂", "project_id": "p" }),
        json!({ "pool_id": uuid::Uuid::new_v4(), "project_id": "p" }),
        json!({ "network_id": net, "project_id": "p", "instance_id": "nope" }),
        json!(null),
        json!(42),
    ];
    for body in bodies {
        let r = app.post("/v1/floating-ips", ADMIN, body.clone()).await;
        let status = r.status();
        assert!(status.is_client_error(), "{body} -> {status}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
    for q in [
        "limit=-1",
        "limit=abc",
        "limit=99999999999999999999",
        "page_token=%00",
        "status=%00",
        "network_id=1",
    ] {
        let r = app.get(&format!("/v1/floating-ips?{q}"), ADMIN).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{q}");
    }
    let list = expect(app.get("/v1/floating-ips", ADMIN).await, StatusCode::OK).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "nothing stored");
}

/// What the OpenAPI document allows, the server takes, and what it
/// refuses, the server refuses (issue 14; schemathesis checks the same at
/// random in scripts/schemathesis/run.sh).
async fn the_server_reads_bodies_as_the_document_describes_them(b: Backend) {
    let app = TestApp::spawn(b).await;
    let put = |body: &'static str| {
        let app = &app;
        async move {
            app.req(Method::PUT, "/v1/quotas/p", ADMIN)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    // JSON Schema counts 124.0 as the integer 124.
    let q = expect(put(r#"{"instances": 124.0}"#).await, StatusCode::OK).await;
    assert_eq!(q["instances"]["limit"], 124, "{q}");
    expect_problem(
        put(r#"{"instances": 1.5}"#).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    )
    .await;
    // A body is an object: serde would otherwise read a struct from an array.
    expect_problem(
        put("[null, null]").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    )
    .await;
    let q = expect(app.get("/v1/quotas/p", ADMIN).await, StatusCode::OK).await;
    assert_eq!(
        q["instances"]["limit"], 124,
        "the refused bodies changed nothing: {q}"
    );
    // A PATCH without a JSON content type is the documented 415.
    let net = app.network("n").await;
    let r = app
        .req(Method::PATCH, &format!("/v1/networks/{net}"), ADMIN)
        .send()
        .await
        .unwrap();
    expect_problem(
        r,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    // Paging: the bounds and token forms the document states.
    for q in ["limit=0", "limit=1001", "page_token=x", "page_token="] {
        let r = app.get(&format!("/v1/networks?{q}"), ADMIN).await;
        expect_problem(r, StatusCode::BAD_REQUEST, "invalid_query").await;
    }
    for q in [
        "limit=1",
        "limit=1000",
        "page_token=00000000-0000-0000-0000-000000000000",
    ] {
        expect(
            app.get(&format!("/v1/networks?{q}"), ADMIN).await,
            StatusCode::OK,
        )
        .await;
    }
    let r = app
        .get(
            "/v1/floating-ips/00000000-0000-0000-0000-000000000000/events?page_token=-1",
            ADMIN,
        )
        .await;
    expect_problem(r, StatusCode::BAD_REQUEST, "invalid_query").await;
    // Authentication comes before every other check.
    let r = app
        .req(Method::POST, "/v1/networks", "not-a-token")
        .header("idempotency-key", "")
        .header("if-match", "null")
        .body("{")
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    let r = app.get("/v1/networks?limit=0", "not-a-token").await;
    expect_problem(r, StatusCode::UNAUTHORIZED, "unauthenticated").await;
}

both_backends!(
    the_server_reads_bodies_as_the_document_describes_them,
    malformed_bodies_are_problems,
    oversized_bodies_are_413,
    unknown_routes_methods_and_ids_are_problems,
    hostile_inputs_never_produce_a_500,
);
