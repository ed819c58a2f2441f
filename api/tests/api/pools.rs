//! Pools: validation, overlap, usage, delete.

use reqwest::StatusCode;
use serde_json::json;

use crate::both_backends;
use crate::helpers::*;

async fn pool_create_normalises_and_reports_usage(b: Backend) {
    let app = TestApp::spawn(b).await;
    let net = app.network("n").await;
    let r = app
        .post(
            "/v1/pools",
            ADMIN,
            json!({ "network_id": net, "cidr": "2001:0db8:0100::/64", "reserved": ["2001:db8:100::1"] }),
        )
        .await;
    let pool = expect(r, StatusCode::CREATED).await;
    assert_eq!(pool["cidr"], "2001:db8:100::/64");
    assert_eq!(
        pool["ranges"],
        json!([{ "first": "2001:db8:100::", "last": "2001:db8:100:0:ffff:ffff:ffff:ffff" }])
    );
    assert_eq!(pool["reserved"], json!(["2001:db8:100::1"]));
    let id = id_of(pool);
    let usage = expect(
        app.get(&format!("/v1/pools/{id}/usage"), ADMIN).await,
        StatusCode::OK,
    )
    .await;
    // 2^64, minus IID 0, the two RFC 2526 blocks of 128, and one reserved.
    assert_eq!(usage["capacity"], "18446744073709551358");
    assert_eq!(usage["allocated"], 0);
    app.fip(&net, "p").await;
    let usage = expect(
        app.get(&format!("/v1/pools/{id}/usage"), ADMIN).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(usage["allocated"], 1);
    assert_eq!(usage["available"], "18446744073709551357");
}

async fn invalid_pools_name_the_field(b: Backend) {
    let app = TestApp::spawn(b).await;
    let net = app.network("n").await;
    let cases = [
        (json!({ "cidr": "192.0.2.0/24" }), "cidr"),
        (json!({ "cidr": "2001:db8::/128" }), "cidr"),
        (json!({ "cidr": "fe80::/64" }), "cidr"),
        (json!({ "cidr": "ff05::/64" }), "cidr"),
        (json!({ "cidr": "2001:db8::1/64" }), "cidr"),
        (json!({ "cidr": "garbage" }), "cidr"),
        (
            json!({ "cidr": "2001:db8::/120", "ranges": [{ "first": "2001:db8::1", "last": "2001:db8::1:1" }] }),
            "ranges[0]",
        ),
        (
            json!({ "cidr": "2001:db8::/120", "ranges": [{ "first": "2001:db8::9", "last": "2001:db8::1" }] }),
            "ranges[0]",
        ),
        (
            json!({ "cidr": "2001:db8::/120", "reserved": ["2001:db9::1"] }),
            "reserved[0]",
        ),
    ];
    for (mut body, field) in cases {
        body["network_id"] = json!(net);
        let r = app.post("/v1/pools", ADMIN, body.clone()).await;
        let p = expect_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
        let detail = p["detail"].as_str().unwrap();
        assert!(
            detail.starts_with(&format!("{field}:")),
            "{body} -> {detail}"
        );
    }
    // An IPv4 address inside ranges fails JSON decoding, naming the path.
    let r = app
        .post(
            "/v1/pools",
            ADMIN,
            json!({ "network_id": net, "cidr": "2001:db8::/120", "ranges": [{ "first": "192.0.2.1", "last": "2001:db8::1" }] }),
        )
        .await;
    let p = expect_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body").await;
    assert!(
        p["detail"].as_str().unwrap().contains("ranges[0].first"),
        "{p}"
    );
    let r = app
        .post(
            "/v1/pools",
            ADMIN,
            json!({ "network_id": uuid::Uuid::new_v4(), "cidr": "2001:db8::/64" }),
        )
        .await;
    // Naming a network that does not exist is a 404, as in Neutron.
    expect_problem(r, StatusCode::NOT_FOUND, "not_found").await;
}

async fn overlapping_pools_on_one_network_conflict(b: Backend) {
    let app = TestApp::spawn(b).await;
    let net = app.network("n").await;
    let other = app.network("m").await;
    app.pool(&net, "2001:db8::/48").await;
    for cidr in ["2001:db8::/48", "2001:db8:0:5::/64", "2001:db8::/32"] {
        let r = app
            .post(
                "/v1/pools",
                ADMIN,
                json!({ "network_id": net, "cidr": cidr }),
            )
            .await;
        expect_problem(r, StatusCode::CONFLICT, "pool_overlap").await;
    }
    // Another network may reuse the prefix; a disjoint prefix is fine.
    app.pool(&other, "2001:db8::/48").await;
    app.pool(&net, "2001:db8:1::/64").await;
}

async fn pools_with_allocations_cannot_be_deleted(b: Backend) {
    let app = TestApp::spawn(b).await;
    let net = app.network("n").await;
    let pool = app.pool(&net, "2001:db8::/120").await;
    let fip = id_of(app.fip(&net, "p").await);
    let r = app.delete(&format!("/v1/pools/{pool}"), ADMIN).await;
    expect_problem(r, StatusCode::CONFLICT, "pool_in_use").await;
    expect(
        app.delete(&format!("/v1/floating-ips/{fip}"), ADMIN).await,
        StatusCode::NO_CONTENT,
    )
    .await;
    // Quarantine is 0 in this test app, so the released address is purged.
    expect(
        app.delete(&format!("/v1/pools/{pool}"), ADMIN).await,
        StatusCode::NO_CONTENT,
    )
    .await;
    expect_problem(
        app.get(&format!("/v1/pools/{pool}"), ADMIN).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

async fn pool_list_filters_by_network(b: Backend) {
    let app = TestApp::spawn(b).await;
    let n1 = app.network("n1").await;
    let n2 = app.network("n2").await;
    let p1 = app.pool(&n1, "2001:db8:1::/64").await;
    app.pool(&n2, "2001:db8:2::/64").await;
    let list = expect(
        app.get(&format!("/v1/pools?network_id={n1}"), ADMIN).await,
        StatusCode::OK,
    )
    .await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], p1.as_str());
    let all = expect(app.get("/v1/pools", ADMIN).await, StatusCode::OK).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
}

both_backends!(
    pool_create_normalises_and_reports_usage,
    invalid_pools_name_the_field,
    overlapping_pools_on_one_network_conflict,
    pools_with_allocations_cannot_be_deleted,
    pool_list_filters_by_network,
);
