//! Authentication and project scoping.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::helpers::*;

async fn requests_without_a_valid_token_are_401(b: Backend) {
    let app = TestApp::spawn(b).await;
    let r = app
        .client
        .get(app.url("/v1/networks"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    expect_problem(r, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    expect_problem(
        app.get("/v1/networks", "wrong").await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    let r = app
        .client
        .get(app.url("/v1/networks"))
        .header("authorization", format!("Basic {ADMIN}"))
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::UNAUTHORIZED, "unauthenticated").await;
}

async fn project_tokens_see_only_their_project(b: Backend) {
    let app = TestApp::spawn(b).await;
    let net = app.network("n").await;
    let pool = app.pool(&net, "2001:db8::/64").await;
    let alice = app.project_token("alice").await;
    let theirs = id_of(app.fip(&net, "bob").await);
    let bob_vm = app.instance("bob", "h1").await;

    // Reads networks and pools.
    expect(
        app.get(&format!("/v1/networks/{net}"), &alice).await,
        StatusCode::OK,
    )
    .await;
    expect(
        app.get(&format!("/v1/pools/{pool}"), &alice).await,
        StatusCode::OK,
    )
    .await;
    // Creates in its own project without naming it.
    let r = app
        .post("/v1/floating-ips", &alice, json!({ "network_id": net }))
        .await;
    let mine = expect(r, StatusCode::CREATED).await;
    assert_eq!(mine["project_id"], "alice");
    let r = app
        .post(
            "/v1/floating-ips",
            &alice,
            json!({ "network_id": net, "project_id": "bob" }),
        )
        .await;
    expect_problem(r, StatusCode::FORBIDDEN, "forbidden").await;
    // Another project's objects are invisible.
    for path in [
        format!("/v1/floating-ips/{theirs}"),
        format!("/v1/instances/{bob_vm}"),
        format!("/v1/floating-ips/{theirs}/events"),
    ] {
        expect_problem(
            app.get(&path, &alice).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    let r = app
        .patch(
            &format!("/v1/floating-ips/{theirs}"),
            &alice,
            json!({ "description": "x" }),
        )
        .await;
    expect_problem(r, StatusCode::NOT_FOUND, "not_found").await;
    expect_problem(
        app.delete(&format!("/v1/floating-ips/{theirs}"), &alice)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let list = expect(app.get("/v1/floating-ips", &alice).await, StatusCode::OK).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let list = expect(
        app.get("/v1/floating-ips?project_id=bob", &alice).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    let list = expect(app.get("/v1/instances", &alice).await, StatusCode::OK).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    // Admin-only operations.
    let forbidden = [
        (
            Method::POST,
            "/v1/networks".to_owned(),
            json!({ "name": "x" }),
        ),
        (
            Method::PATCH,
            format!("/v1/networks/{net}"),
            json!({ "name": "y" }),
        ),
        (Method::DELETE, format!("/v1/networks/{net}"), json!(null)),
        (
            Method::POST,
            "/v1/pools".to_owned(),
            json!({ "network_id": net, "cidr": "2001:db8:9::/64" }),
        ),
        (Method::DELETE, format!("/v1/pools/{pool}"), json!(null)),
        (
            Method::POST,
            "/v1/tokens".to_owned(),
            json!({ "project_id": "alice" }),
        ),
        (Method::GET, "/v1/tokens".to_owned(), json!(null)),
    ];
    for (m, path, body) in forbidden {
        let mut req = app.req(m.clone(), &path, &alice);
        if !body.is_null() {
            req = req.json(&body);
        }
        expect_problem(
            req.send().await.unwrap(),
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
    }
    // Nothing was changed by the refused requests.
    expect(
        app.get(&format!("/v1/networks/{net}"), ADMIN).await,
        StatusCode::OK,
    )
    .await;
}

async fn revoked_tokens_stop_working(b: Backend) {
    let app = TestApp::spawn(b).await;
    let r = app
        .post(
            "/v1/tokens",
            ADMIN,
            json!({ "project_id": "p", "description": "ci" }),
        )
        .await;
    let created = expect(r, StatusCode::CREATED).await;
    let secret = created["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("fipp_"));
    let id = id_of(created);
    expect(app.get("/v1/networks", &secret).await, StatusCode::OK).await;
    let list = expect(app.get("/v1/tokens", ADMIN).await, StatusCode::OK).await;
    assert_eq!(list["items"][0]["description"], "ci");
    assert!(
        list["items"][0].get("token").is_none(),
        "secrets are never listed"
    );
    expect(
        app.delete(&format!("/v1/tokens/{id}"), ADMIN).await,
        StatusCode::NO_CONTENT,
    )
    .await;
    expect_problem(
        app.get("/v1/networks", &secret).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    expect_problem(
        app.delete(&format!("/v1/tokens/{id}"), ADMIN).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

both_backends!(
    requests_without_a_valid_token_are_401,
    project_tokens_see_only_their_project,
    revoked_tokens_stop_working,
);
