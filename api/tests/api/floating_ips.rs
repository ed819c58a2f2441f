//! Floating IPs: allocation rules, association, revisions, events, release,
//! filters and idempotent creation.

use std::collections::HashSet;
use std::net::Ipv6Addr;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

fn addr(v: &Value) -> Ipv6Addr {
    v["address"].as_str().unwrap().parse().unwrap()
}

async fn random_allocation_stays_inside_the_pool(b: Backend) {
    let app = TestApp::spawn(b).await;
    let net = app.network("n").await;
    let pool = app.pool(&net, "2001:db8:100::/64").await;
    let mut seen = HashSet::new();
    for _ in 0..20 {
        let f = app.fip(&net, "p").await;
        let a = u128::from(addr(&f));
        assert_eq!(a >> 64, 0x2001_0db8_0100_0000, "inside 2001:db8:100::/64");
        assert_ne!(
            a & 0xffff_ffff_ffff_ffff,
            0,
            "never the subnet-router anycast"
        );
        assert_eq!(f["pool_id"], pool.as_str());
        assert_eq!(f["status"], "DOWN");
        assert_eq!(f["revision"], 1);
        assert_eq!(f["instance_id"], Value::Null);
        assert!(seen.insert(a), "addresses are distinct");
    }
}

async fn small_pools_exhaust_cleanly_and_skip_reserved_addresses(b: Backend) {
    let app = TestApp::spawn(b).await;
    let net = app.network("n").await;
    // ::0 is the subnet-router anycast; ::2 is reserved: 2 addresses left.
    let r = app
        .post(
            "/v1/pools",
            ADMIN,
            json!({ "network_id": net, "cidr": "2001:db8::/126", "reserved": ["2001:db8::2"] }),
        )
        .await;
    expect(r, StatusCode::CREATED).await;
    let mut got = HashSet::new();
    for _ in 0..2 {
        got.insert(addr(&app.fip(&net, "p").await));
    }
    let want: HashSet<Ipv6Addr> = ["2001:db8::1", "2001:db8::3"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(got, want);
    let r = app
        .post(
            "/v1/floating-ips",
            ADMIN,
            json!({ "network_id": net, "project_id": "p" }),
        )
        .await;
    expect_problem(r, StatusCode::CONFLICT, "pool_exhausted").await;
}

async fn rfc2526_anycast_addresses_are_never_allocated(b: Backend) {
    let app = TestApp::spawn(b).await;
    let net = app.network("n").await;
    let r = app
        .post(
            "/v1/pools",
            ADMIN,
            json!({
                "network_id": net, "cidr": "2001:db8::/64",
                "ranges": [
                    { "first": "2001:db8::fdff:ffff:ffff:ff7f", "last": "2001:db8::fdff:ffff:ffff:ffff" },
                    { "first": "2001:db8::ffff:ffff:ffff:ff80", "last": "2001:db8::ffff:ffff:ffff:ffff" }
                ]
            }),
        )
        .await;
    let pool = id_of(expect(r, StatusCode::CREATED).await);
    let usage = expect(
        app.get(&format!("/v1/pools/{pool}/usage"), ADMIN).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(usage["capacity"], "1");
    let f = app.fip(&net, "p").await;
    assert_eq!(
        addr(&f),
        "2001:db8::fdff:ffff:ffff:ff7f".parse::<Ipv6Addr>().unwrap()
    );
    let r = app
        .post(
            "/v1/floating-ips",
            ADMIN,
            json!({ "network_id": net, "project_id": "p" }),
        )
        .await;
    expect_problem(r, StatusCode::CONFLICT, "pool_exhausted").await;
    let r = app
        .post(
            "/v1/floating-ips",
            ADMIN,
            json!({ "network_id": net, "project_id": "p", "address": "2001:db8::ffff:ffff:ffff:ff90" }),
        )
        .await;
    expect_problem(r, StatusCode::CONFLICT, "address_unavailable").await;
}

async fn explicit_addresses_are_checked(b: Backend) {
    let app = TestApp::spawn(b).await;
    let net = app.network("n").await;
    let pool = app.pool(&net, "2001:db8::/120").await;
    let r = app
        .post(
            "/v1/floating-ips",
            ADMIN,
            json!({ "pool_id": pool, "project_id": "p", "address": "2001:db8::42" }),
        )
        .await;
    let f = expect(r, StatusCode::CREATED).await;
    assert_eq!(f["address"], "2001:db8::42");
    assert_eq!(f["network_id"], net.as_str());
    let again = json!({ "network_id": net, "project_id": "q", "address": "2001:db8::42" });
    let r = app.post("/v1/floating-ips", ADMIN, again).await;
    expect_problem(r, StatusCode::CONFLICT, "address_in_use").await;
    for bad in ["2001:db8:1::1", "2001:db8::"] {
        let r = app
            .post(
                "/v1/floating-ips",
                ADMIN,
                json!({ "network_id": net, "project_id": "p", "address": bad }),
            )
            .await;
        // Well-formed, but not an address the network's pools can give.
        let p = expect_problem(r, StatusCode::CONFLICT, "address_unavailable").await;
        assert!(p["detail"].as_str().unwrap().starts_with("address:"), "{p}");
    }
    let r = app
        .post(
            "/v1/floating-ips",
            ADMIN,
            json!({ "network_id": net, "project_id": "p", "address": "192.0.2.1" }),
        )
        .await;
    expect_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body").await;
    let r = app
        .post("/v1/floating-ips", ADMIN, json!({ "project_id": "p" }))
        .await;
    expect_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
    let r = app
        .post("/v1/floating-ips", ADMIN, json!({ "network_id": net }))
        .await;
    // The admin token belongs to no project: naming one is a permission.
    let p = expect_problem(r, StatusCode::FORBIDDEN, "forbidden").await;
    assert!(p["detail"].as_str().unwrap().starts_with("project_id:"));
}

async fn released_addresses_wait_out_the_quarantine(b: Backend) {
    let app = TestApp::spawn_with(b, 3_600_000).await;
    let net = app.network("n").await;
    app.pool(&net, "2001:db8::/120").await;
    let body = json!({ "network_id": net, "project_id": "p", "address": "2001:db8::7" });
    let f = expect(
        app.post("/v1/floating-ips", ADMIN, body.clone()).await,
        StatusCode::CREATED,
    )
    .await;
    let id = id_of(f);
    expect(
        app.delete(&format!("/v1/floating-ips/{id}"), ADMIN).await,
        StatusCode::NO_CONTENT,
    )
    .await;
    expect_problem(
        app.get(&format!("/v1/floating-ips/{id}"), ADMIN).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let r = app.post("/v1/floating-ips", ADMIN, body).await;
    let p = expect_problem(r, StatusCode::CONFLICT, "address_in_use").await;
    assert!(p["detail"].as_str().unwrap().contains("quarantine"), "{p}");

    // With no quarantine, the same address can be allocated at once.
    let app = TestApp::spawn_with(b, 0).await;
    let net = app.network("n").await;
    app.pool(&net, "2001:db8::/120").await;
    let body = json!({ "network_id": net, "project_id": "p", "address": "2001:db8::7" });
    let id = id_of(
        expect(
            app.post("/v1/floating-ips", ADMIN, body.clone()).await,
            StatusCode::CREATED,
        )
        .await,
    );
    expect(
        app.delete(&format!("/v1/floating-ips/{id}"), ADMIN).await,
        StatusCode::NO_CONTENT,
    )
    .await;
    let again = expect(
        app.post("/v1/floating-ips", ADMIN, body).await,
        StatusCode::CREATED,
    )
    .await;
    assert_ne!(id_of(again), id);
}

async fn quarantined_addresses_are_skipped_by_random_allocation(b: Backend) {
    let app = TestApp::spawn_with(b, 3_600_000).await;
    let net = app.network("n").await;
    app.post(
        "/v1/pools",
        ADMIN,
        json!({ "network_id": net, "cidr": "2001:db8::/126" }),
    )
    .await;
    let ids: Vec<String> = [
        app.fip(&net, "p").await,
        app.fip(&net, "p").await,
        app.fip(&net, "p").await,
    ]
    .into_iter()
    .map(id_of)
    .collect();
    expect(
        app.delete(&format!("/v1/floating-ips/{}", ids[0]), ADMIN)
            .await,
        StatusCode::NO_CONTENT,
    )
    .await;
    let r = app
        .post(
            "/v1/floating-ips",
            ADMIN,
            json!({ "network_id": net, "project_id": "p" }),
        )
        .await;
    expect_problem(r, StatusCode::CONFLICT, "pool_exhausted").await;
}

async fn association_bumps_revision_and_status(b: Backend) {
    let app = TestApp::spawn(b).await;
    let net = app.network("n").await;
    app.pool(&net, "2001:db8::/64").await;
    let vm = app.instance("p", "compute-1").await;
    let f = app.fip(&net, "p").await;
    let id = id_of(f);
    let path = format!("/v1/floating-ips/{id}");

    let r = app.patch(&path, ADMIN, json!({ "instance_id": vm })).await;
    assert_eq!(r.headers()["etag"], "\"2\"");
    let f = expect(r, StatusCode::OK).await;
    assert_eq!(f["instance_id"], vm.as_str());
    assert_eq!(f["host"], "compute-1");
    assert_eq!(f["status"], "PENDING");
    assert_eq!(f["revision"], 2);

    // Associating with the same instance again is a no-op.
    let f = expect(
        app.patch(&path, ADMIN, json!({ "instance_id": vm })).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(f["revision"], 2);
    // An absent field leaves the association alone.
    let f = expect(
        app.patch(&path, ADMIN, json!({ "description": "web" }))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (f["revision"].as_i64(), f["instance_id"].as_str()),
        (Some(3), Some(vm.as_str()))
    );
    // null disassociates.
    let f = expect(
        app.patch(&path, ADMIN, json!({ "instance_id": null }))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(f["instance_id"], Value::Null);
    assert_eq!(f["host"], Value::Null);
    assert_eq!(f["status"], "DOWN");
    assert_eq!(f["revision"], 4);
    assert_eq!(f["description"], "web");
}

async fn if_match_guards_concurrent_updates(b: Backend) {
    let app = TestApp::spawn(b).await;
    let net = app.network("n").await;
    app.pool(&net, "2001:db8::/64").await;
    let id = id_of(app.fip(&net, "p").await);
    let path = format!("/v1/floating-ips/{id}");
    let stale = app
        .req(Method::PATCH, &path, ADMIN)
        .header("if-match", "\"7\"")
        .json(&json!({ "description": "x" }))
        .send()
        .await
        .unwrap();
    expect_problem(stale, StatusCode::PRECONDITION_FAILED, "revision_mismatch").await;
    let ok = app
        .req(Method::PATCH, &path, ADMIN)
        .header("if-match", "\"1\"")
        .json(&json!({ "description": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(expect(ok, StatusCode::OK).await["revision"], 2);
    let bad = app
        .req(Method::PATCH, &path, ADMIN)
        .header("if-match", "yesterday")
        .json(&json!({ "description": "y" }))
        .send()
        .await
        .unwrap();
    expect_problem(bad, StatusCode::BAD_REQUEST, "invalid_header").await;
    let stale_delete = app
        .req(Method::DELETE, &path, ADMIN)
        .header("if-match", "\"1\"")
        .send()
        .await
        .unwrap();
    expect_problem(
        stale_delete,
        StatusCode::PRECONDITION_FAILED,
        "revision_mismatch",
    )
    .await;
    let f = expect(app.get(&path, ADMIN).await, StatusCode::OK).await;
    assert_eq!(f["description"], "x", "nothing changed by refused requests");
}

async fn instances_of_other_projects_cannot_be_associated(b: Backend) {
    let app = TestApp::spawn(b).await;
    let net = app.network("n").await;
    app.pool(&net, "2001:db8::/64").await;
    let theirs = app.instance("other", "compute-1").await;
    let id = id_of(app.fip(&net, "p").await);
    let r = app
        .patch(
            &format!("/v1/floating-ips/{id}"),
            ADMIN,
            json!({ "instance_id": theirs }),
        )
        .await;
    expect_problem(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = app
        .post(
            "/v1/floating-ips",
            ADMIN,
            json!({ "network_id": net, "project_id": "p", "instance_id": theirs }),
        )
        .await;
    expect_problem(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = app
        .patch(
            &format!("/v1/floating-ips/{id}"),
            ADMIN,
            json!({ "instance_id": uuid::Uuid::new_v4() }),
        )
        .await;
    expect_problem(r, StatusCode::NOT_FOUND, "not_found").await;
}

async fn events_record_what_happened(b: Backend) {
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
    let f = expect(r, StatusCode::CREATED).await;
    assert_eq!(f["status"], "PENDING");
    let f_address = f["address"].clone();
    let id = id_of(f);
    app.patch(
        &format!("/v1/floating-ips/{id}"),
        ADMIN,
        json!({ "instance_id": null }),
    )
    .await;
    let ev = expect(
        app.get(&format!("/v1/floating-ips/{id}/events"), ADMIN)
            .await,
        StatusCode::OK,
    )
    .await;
    let kinds: Vec<&str> = ev["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["allocated", "associated", "disassociated"]);
    assert_eq!(ev["items"][0]["detail"]["address"], f_address);
    assert_eq!(ev["items"][1]["host"], "compute-1");
    assert_eq!(ev["items"][2]["revision"], 2);
    let page = expect(
        app.get(&format!("/v1/floating-ips/{id}/events?limit=1"), ADMIN)
            .await,
        StatusCode::OK,
    )
    .await;
    let token = page["next_page_token"].as_str().unwrap().to_owned();
    let next = expect(
        app.get(
            &format!("/v1/floating-ips/{id}/events?limit=1&page_token={token}"),
            ADMIN,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(next["items"][0]["kind"], "associated");
}

async fn list_filters_and_pages(b: Backend) {
    let app = TestApp::spawn(b).await;
    let net = app.network("n").await;
    let p1 = app.pool(&net, "2001:db8:1::/64").await;
    let p2 = app.pool(&net, "2001:db8:2::/64").await;
    let vm = app.instance("a", "h1").await;
    let mut a_ids = Vec::new();
    for i in 0..4 {
        let pool = if i % 2 == 0 { &p1 } else { &p2 };
        let r = app
            .post(
                "/v1/floating-ips",
                ADMIN,
                json!({ "pool_id": pool, "project_id": "a" }),
            )
            .await;
        a_ids.push(id_of(expect(r, StatusCode::CREATED).await));
    }
    let b_fip = app.fip(&net, "b").await;
    app.patch(
        &format!("/v1/floating-ips/{}", a_ids[0]),
        ADMIN,
        json!({ "instance_id": vm }),
    )
    .await;

    let count = |v: Value| v["items"].as_array().unwrap().len();
    let get = |q: String| {
        let app = &app;
        async move {
            expect(
                app.get(&format!("/v1/floating-ips?{q}"), ADMIN).await,
                StatusCode::OK,
            )
            .await
        }
    };
    assert_eq!(count(get("".into()).await), 5);
    assert_eq!(count(get("project_id=a".into()).await), 4);
    assert_eq!(count(get(format!("pool_id={p1}")).await), 3);
    assert_eq!(
        count(get(format!("network_id={net}&project_id=b")).await),
        1
    );
    assert_eq!(count(get(format!("instance_id={vm}")).await), 1);
    assert_eq!(count(get("status=PENDING".into()).await), 1);
    assert_eq!(count(get("status=DOWN".into()).await), 4);
    let by_addr = get(format!("address={}", b_fip["address"].as_str().unwrap())).await;
    assert_eq!(by_addr["items"][0]["id"], b_fip["id"]);

    let mut seen = Vec::new();
    let mut token = String::new();
    for _ in 0..5 {
        let page = get(format!("project_id=a&limit=3{token}")).await;
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| id_of(f.clone())),
        );
        match page["next_page_token"].as_str() {
            Some(t) => token = format!("&page_token={t}"),
            None => break,
        }
    }
    assert_eq!(seen, a_ids, "stable order across pages");

    for bad in [
        "limit=0",
        "limit=1001",
        "status=UP",
        "page_token=x",
        "projectid=a",
        "address=1.2.3.4",
    ] {
        let r = app.get(&format!("/v1/floating-ips?{bad}"), ADMIN).await;
        expect_problem(r, StatusCode::BAD_REQUEST, "invalid_query").await;
    }
}

async fn idempotency_keys_make_one_floating_ip(b: Backend) {
    let app = TestApp::spawn(b).await;
    let net = app.network("n").await;
    app.pool(&net, "2001:db8::/64").await;
    let body = json!({ "network_id": net, "project_id": "p" });
    let send = |body: Value| {
        let app = &app;
        async move {
            app.req(Method::POST, "/v1/floating-ips", ADMIN)
                .header("idempotency-key", "create-1")
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let first = expect(send(body.clone()).await, StatusCode::CREATED).await;
    let replay = send(body.clone()).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let second = expect(replay, StatusCode::CREATED).await;
    assert_eq!(first, second);
    let list = expect(app.get("/v1/floating-ips", ADMIN).await, StatusCode::OK).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let other = json!({ "network_id": net, "project_id": "q" });
    expect_problem(
        send(other).await,
        StatusCode::CONFLICT,
        "idempotency_key_reused",
    )
    .await;
    // A different key creates another.
    let r = app
        .req(Method::POST, "/v1/floating-ips", ADMIN)
        .header("idempotency-key", "create-2")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_ne!(id_of(expect(r, StatusCode::CREATED).await), id_of(first));
}

async fn failed_requests_do_not_burn_the_idempotency_key(b: Backend) {
    let app = TestApp::spawn(b).await;
    let net = app.network("n").await;
    let body = json!({ "network_id": net, "project_id": "p" });
    let send = || async {
        app.req(Method::POST, "/v1/floating-ips", ADMIN)
            .header("idempotency-key", "k")
            .json(&body)
            .send()
            .await
            .unwrap()
    };
    // No pool yet: the first try fails, the retry after adding one succeeds.
    expect_problem(send().await, StatusCode::CONFLICT, "pool_exhausted").await;
    app.pool(&net, "2001:db8::/64").await;
    expect(send().await, StatusCode::CREATED).await;
}

/// A replay must not hand out an ID that now answers 404: once what the
/// key created is deleted, the replay says so (issue 14).
async fn a_replay_after_the_object_was_deleted_says_it_is_gone(b: Backend) {
    let app = TestApp::spawn(b).await;
    // A key belongs to one request: one for the network, one for the token.
    let send = |path: &'static str, body: Value| {
        let app = &app;
        async move {
            app.req(Method::POST, path, ADMIN)
                .header("idempotency-key", format!("gone{path}"))
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let net = id_of(
        expect(
            send("/v1/networks", json!({ "name": "n" })).await,
            StatusCode::CREATED,
        )
        .await,
    );
    // Still there: the replay answers as the first time did.
    let again = send("/v1/networks", json!({ "name": "n" })).await;
    assert_eq!(id_of(expect(again, StatusCode::CREATED).await), net);
    expect(
        app.delete(&format!("/v1/networks/{net}"), ADMIN).await,
        StatusCode::NO_CONTENT,
    )
    .await;
    let gone = send("/v1/networks", json!({ "name": "n" })).await;
    expect_problem(gone, StatusCode::CONFLICT, "idempotency_result_gone").await;

    // The same for a token, whose replay is the token without its secret.
    let tok = id_of(
        expect(
            send("/v1/tokens", json!({ "project_id": "p" })).await,
            StatusCode::CREATED,
        )
        .await,
    );
    let shown = expect(
        app.get(&format!("/v1/tokens/{tok}"), ADMIN).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(shown["project_id"], "p");
    assert!(shown.get("token").is_none(), "{shown}");
    expect(
        app.delete(&format!("/v1/tokens/{tok}"), ADMIN).await,
        StatusCode::NO_CONTENT,
    )
    .await;
    expect_problem(
        app.get(&format!("/v1/tokens/{tok}"), ADMIN).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let gone = send("/v1/tokens", json!({ "project_id": "p" })).await;
    expect_problem(gone, StatusCode::CONFLICT, "idempotency_result_gone").await;
}

both_backends!(
    a_replay_after_the_object_was_deleted_says_it_is_gone,
    random_allocation_stays_inside_the_pool,
    small_pools_exhaust_cleanly_and_skip_reserved_addresses,
    rfc2526_anycast_addresses_are_never_allocated,
    explicit_addresses_are_checked,
    released_addresses_wait_out_the_quarantine,
    quarantined_addresses_are_skipped_by_random_allocation,
    association_bumps_revision_and_status,
    if_match_guards_concurrent_updates,
    instances_of_other_projects_cannot_be_associated,
    events_record_what_happened,
    list_filters_and_pages,
    idempotency_keys_make_one_floating_ip,
    failed_requests_do_not_burn_the_idempotency_key,
);
