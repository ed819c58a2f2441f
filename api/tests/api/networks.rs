//! Networks: create, read, rename, delete, list.

use reqwest::StatusCode;
use serde_json::json;

use crate::both_backends;
use crate::helpers::*;

async fn network_crud_round_trip(b: Backend) {
    let app = TestApp::spawn(b).await;
    let r = app
        .post(
            "/v1/networks",
            ADMIN,
            json!({ "name": "link-1", "description": "rack 1" }),
        )
        .await;
    let created = expect(r, StatusCode::CREATED).await;
    let id = id_of(created.clone());
    assert_eq!(created["name"], "link-1");
    assert_eq!(created["description"], "rack 1");
    let got = expect(
        app.get(&format!("/v1/networks/{id}"), ADMIN).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(got, created);

    let r = app
        .patch(
            &format!("/v1/networks/{id}"),
            ADMIN,
            json!({ "name": "link-2" }),
        )
        .await;
    let patched = expect(r, StatusCode::OK).await;
    assert_eq!(patched["name"], "link-2");
    assert_eq!(patched["description"], "rack 1", "absent field unchanged");

    expect(
        app.delete(&format!("/v1/networks/{id}"), ADMIN).await,
        StatusCode::NO_CONTENT,
    )
    .await;
    expect_problem(
        app.get(&format!("/v1/networks/{id}"), ADMIN).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_problem(
        app.delete(&format!("/v1/networks/{id}"), ADMIN).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

async fn network_names_are_unique(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.network("dup").await;
    let other = app.network("other").await;
    let r = app
        .post("/v1/networks", ADMIN, json!({ "name": "dup" }))
        .await;
    expect_problem(r, StatusCode::CONFLICT, "name_taken").await;
    let r = app
        .patch(
            &format!("/v1/networks/{other}"),
            ADMIN,
            json!({ "name": "dup" }),
        )
        .await;
    expect_problem(r, StatusCode::CONFLICT, "name_taken").await;
}

async fn deleting_a_network_with_pools_is_a_conflict(b: Backend) {
    let app = TestApp::spawn(b).await;
    let net = app.network("n").await;
    let pool = app.pool(&net, "2001:db8::/64").await;
    let r = app.delete(&format!("/v1/networks/{net}"), ADMIN).await;
    expect_problem(r, StatusCode::CONFLICT, "network_in_use").await;
    expect(
        app.delete(&format!("/v1/pools/{pool}"), ADMIN).await,
        StatusCode::NO_CONTENT,
    )
    .await;
    expect(
        app.delete(&format!("/v1/networks/{net}"), ADMIN).await,
        StatusCode::NO_CONTENT,
    )
    .await;
}

async fn network_list_pages_in_creation_order(b: Backend) {
    let app = TestApp::spawn(b).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(app.network(&format!("n{i}")).await);
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..10 {
        let path = match &token {
            Some(t) => format!("/v1/networks?limit=2&page_token={t}"),
            None => "/v1/networks?limit=2".to_owned(),
        };
        let page = expect(app.get(&path, ADMIN).await, StatusCode::OK).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|n| id_of(n.clone())));
        match page["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids, "every network once, in creation order");
    let by_name = expect(app.get("/v1/networks?name=n3", ADMIN).await, StatusCode::OK).await;
    assert_eq!(by_name["items"].as_array().unwrap().len(), 1);
    assert_eq!(by_name["items"][0]["id"], ids[3].as_str());
}

both_backends!(
    network_crud_round_trip,
    network_names_are_unique,
    deleting_a_network_with_pools_is_a_conflict,
    network_list_pages_in_creation_order,
);
