//! Instances: CRUD, migration moves floating IPs, delete guard.

use reqwest::StatusCode;
use serde_json::json;

use crate::both_backends;
use crate::helpers::*;

async fn instance_crud_with_caller_chosen_id(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.host("compute-1").await;
    let id = uuid::Uuid::new_v4();
    let r = app
        .post(
            "/v1/instances",
            ADMIN,
            json!({ "id": id, "name": "web-1", "project_id": "p", "host": "compute-1" }),
        )
        .await;
    let created = expect(r, StatusCode::CREATED).await;
    assert_eq!(created["id"], id.to_string());
    let r = app
        .post(
            "/v1/instances",
            ADMIN,
            json!({ "id": id, "name": "x", "project_id": "p", "host": "compute-1" }),
        )
        .await;
    expect_problem(r, StatusCode::CONFLICT, "instance_exists").await;
    let got = expect(
        app.get(&format!("/v1/instances/{id}"), ADMIN).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(got, created);
    let r = app
        .patch(
            &format!("/v1/instances/{id}"),
            ADMIN,
            json!({ "name": "web-2" }),
        )
        .await;
    let patched = expect(r, StatusCode::OK).await;
    assert_eq!(
        (patched["name"].as_str(), patched["host"].as_str()),
        (Some("web-2"), Some("compute-1"))
    );
    let list = expect(
        app.get("/v1/instances?host=compute-1", ADMIN).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let r = app
        .post(
            "/v1/instances",
            ADMIN,
            json!({ "name": "x", "project_id": "p", "host": "bad host" }),
        )
        .await;
    expect_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body").await;
    expect(
        app.delete(&format!("/v1/instances/{id}"), ADMIN).await,
        StatusCode::NO_CONTENT,
    )
    .await;
    expect_problem(
        app.get(&format!("/v1/instances/{id}"), ADMIN).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

async fn migrating_an_instance_moves_its_floating_ips(b: Backend) {
    let app = TestApp::spawn(b).await;
    let net = app.network("n").await;
    app.pool(&net, "2001:db8::/64").await;
    let vm = app.instance("p", "compute-1").await;
    let r = app
        .post(
            "/v1/floating-ips",
            ADMIN,
            json!({ "network_id": net, "project_id": "p", "instance_id": vm }),
        )
        .await;
    let fip = id_of(expect(r, StatusCode::CREATED).await);
    let r = app
        .patch(
            &format!("/v1/instances/{vm}"),
            ADMIN,
            json!({ "host": "compute-9" }),
        )
        .await;
    let p = expect_problem(r, StatusCode::NOT_FOUND, "not_found").await;
    assert!(p["detail"].as_str().unwrap().starts_with("host:"), "{p}");
    app.host("compute-2").await;
    let r = app
        .patch(
            &format!("/v1/instances/{vm}"),
            ADMIN,
            json!({ "host": "compute-2" }),
        )
        .await;
    expect(r, StatusCode::OK).await;
    let f = expect(
        app.get(&format!("/v1/floating-ips/{fip}"), ADMIN).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(f["host"], "compute-2");
    assert_eq!(f["revision"], 2);
    assert_eq!(f["status"], "PENDING");
    let ev = expect(
        app.get(&format!("/v1/floating-ips/{fip}/events"), ADMIN)
            .await,
        StatusCode::OK,
    )
    .await;
    let last = ev["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "host_changed");
    assert_eq!(last["host"], "compute-2");
    assert_eq!(last["detail"]["previous_host"], "compute-1");
}

async fn instances_with_floating_ips_cannot_be_deleted(b: Backend) {
    let app = TestApp::spawn(b).await;
    let net = app.network("n").await;
    app.pool(&net, "2001:db8::/64").await;
    let vm = app.instance("p", "compute-1").await;
    let r = app
        .post(
            "/v1/floating-ips",
            ADMIN,
            json!({ "network_id": net, "project_id": "p", "instance_id": vm }),
        )
        .await;
    let fip = id_of(expect(r, StatusCode::CREATED).await);
    let r = app.delete(&format!("/v1/instances/{vm}"), ADMIN).await;
    expect_problem(r, StatusCode::CONFLICT, "instance_in_use").await;
    app.patch(
        &format!("/v1/floating-ips/{fip}"),
        ADMIN,
        json!({ "instance_id": null }),
    )
    .await;
    expect(
        app.delete(&format!("/v1/instances/{vm}"), ADMIN).await,
        StatusCode::NO_CONTENT,
    )
    .await;
}

both_backends!(
    instance_crud_with_caller_chosen_id,
    migrating_an_instance_moves_its_floating_ips,
    instances_with_floating_ips_cannot_be_deleted,
);
