//! The agent protocol and the controller, driven over HTTP by a scripted
//! agent: ordering of moves, reports, long polls, leases, failover, release.
//! (The real agent in network namespaces is tested in tests/e2e.)

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;
use crate::scripted::*;

async fn hosts_and_agent_tokens_are_scoped(b: Backend) {
    let app = TestApp::spawn(b).await;
    let a = Agent::register(&app, "host-a").await;
    let hosts = expect(app.get("/v1/hosts", ADMIN).await, StatusCode::OK).await;
    let host = hosts["items"][0].clone();
    assert_eq!(host["state"], "never_seen");
    assert!(host.get("token").is_none());
    expect_problem(
        app.post("/v1/hosts", ADMIN, json!({ "name": "host-a" }))
            .await,
        StatusCode::CONFLICT,
        "name_taken",
    )
    .await;

    let lease = a.lease().await;
    assert_eq!(lease["host"], "host-a");
    assert_eq!(lease["lease_ttl_ms"], 10_000);
    assert!(lease["renew_after_ms"].as_u64().unwrap() < 10_000);
    let id = host["id"].as_str().unwrap();
    let host = expect(
        app.get(&format!("/v1/hosts/{id}"), ADMIN).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(host["state"], "alive");
    assert_eq!(host["agent_version"], "test");
    assert_eq!(host["networks"][0]["interface"], "eth0");
    assert_eq!(host["networks"][0]["mac"], "02:00:00:00:00:01");

    // An agent token works on agent endpoints only.
    for path in [
        "/v1/networks",
        "/v1/floating-ips",
        "/v1/hosts",
        "/metrics-not-a-route",
    ] {
        let r = app.get(path, &a.token).await;
        assert!(
            matches!(r.status(), StatusCode::FORBIDDEN | StatusCode::NOT_FOUND),
            "{path}"
        );
    }
    expect_problem(
        app.get("/v1/networks", &a.token).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    // Other tokens cannot use agent endpoints.
    let project = app.project_token("p").await;
    for token in [ADMIN, project.as_str()] {
        expect_problem(
            app.get("/v1/agent/desired-state?wait_ms=0", token).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
    }
    expect_problem(
        app.get("/v1/hosts", &project).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    expect(
        app.delete(&format!("/v1/hosts/{id}"), ADMIN).await,
        StatusCode::NO_CONTENT,
    )
    .await;
    expect_problem(
        app.get("/v1/agent/desired-state?wait_ms=0", &a.token).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
}

async fn moves_are_break_before_make(b: Backend) {
    let app = TestApp::spawn(b).await;
    let net = app.network("n").await;
    app.pool(&net, "2001:db8:1::/64").await;
    let a = Agent::register(&app, "host-a").await;
    let bb = Agent::register(&app, "host-b").await;
    let vm_a = app.instance("p", "host-a").await;
    let vm_b = app.instance("p", "host-b").await;
    let f = fip_on(&app, &net, &vm_a).await;
    let id = id_of(f.clone());
    assert_eq!(f["status"], "PENDING");

    let da = a.desired(0, 0).await;
    assert_eq!(ids(&da["addresses"]), vec![id.clone()]);
    let entry = &da["addresses"][0];
    assert_eq!(entry["address"], f["address"]);
    assert_eq!(entry["network"], "n");
    assert_eq!(entry["prefix_len"], 64);
    assert_eq!(entry["dad"], "strict");
    assert_eq!(entry["na_count"], 3);
    assert_eq!(entry["revision"], 1);
    assert!(
        ids(&bb.desired(0, 0).await["addresses"]).is_empty(),
        "B gets nothing"
    );

    a.report(&id, 1, "active", json!({ "dad_ms": 104, "na_sent": 1 }))
        .await;
    let f = get_fip(&app, &id).await;
    assert_eq!(f["status"], "ACTIVE");
    assert_eq!(f["bindings"][0]["host"], "host-a");
    assert_eq!(f["bindings"][0]["dad_ms"], 104);

    // Move to B: B must not get F before A confirmed removal.
    let moved = expect(
        app.patch(
            &format!("/v1/floating-ips/{id}"),
            ADMIN,
            json!({ "instance_id": vm_b }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (moved["status"].as_str(), moved["revision"].as_i64()),
        (Some("PENDING"), Some(2))
    );
    let db = bb.desired(0, 0).await;
    assert!(ids(&db["addresses"]).is_empty(), "B waits for A: {db}");
    let da2 = a.desired(da["revision"].as_i64().unwrap(), 0).await;
    assert!(ids(&da2["addresses"]).is_empty());
    assert_eq!(ids(&da2["removals"]), vec![id.clone()]);
    assert_eq!(da2["removals"][0]["revision"], 2);
    // "Absent" at the old revision does not confirm the removal asked at 2.
    a.report(&id, 1, "absent", json!({})).await;
    assert!(ids(&bb.desired(0, 0).await["addresses"]).is_empty());

    a.report(&id, 2, "absent", json!({})).await;
    // A report older than the last one stored is ignored.
    let r = a.report(&id, 1, "active", json!({})).await;
    assert_eq!(
        (r["accepted"].as_i64(), r["ignored"].as_i64()),
        (Some(0), Some(1))
    );
    let db2 = bb.desired(db["revision"].as_i64().unwrap(), 0).await;
    assert_eq!(
        ids(&db2["addresses"]),
        vec![id.clone()],
        "gate open after A confirmed"
    );
    assert!(db2["revision"].as_i64().unwrap() > db["revision"].as_i64().unwrap());
    bb.report(&id, 2, "tentative", json!({})).await;
    assert_eq!(get_fip(&app, &id).await["status"], "PENDING");
    bb.report(&id, 2, "active", json!({ "dad_ms": 1370, "na_sent": 1 }))
        .await;
    let f = get_fip(&app, &id).await;
    assert_eq!(f["status"], "ACTIVE");
    assert_eq!(f["host"], "host-b");

    let ev = expect(
        app.get(&format!("/v1/floating-ips/{id}/events"), ADMIN)
            .await,
        StatusCode::OK,
    )
    .await;
    let kinds: Vec<String> = ev["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}@{}",
                e["kind"].as_str().unwrap(),
                e["host"].as_str().unwrap_or("-")
            )
        })
        .collect();
    let want = [
        "allocated@-",
        "associated@host-a",
        "add_requested@host-a",
        "dad_passed@host-a",
        "announced@host-a",
        "active@host-a",
        "reassociated@host-b",
        "removal_requested@host-a",
        "absent@host-a",
        "removal_confirmed@host-a",
        "add_requested@host-b",
        "dad_started@host-b",
        "dad_passed@host-b",
        "announced@host-b",
        "active@host-b",
    ];
    assert_eq!(kinds, want);
    let dad = ev["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "dad_passed" && e["host"] == "host-b")
        .unwrap();
    assert_eq!(dad["detail"]["dad_ms"], 1370);
}

async fn long_polls_wake_on_change(b: Backend) {
    let app = TestApp::spawn(b).await;
    let net = app.network("n").await;
    app.pool(&net, "2001:db8:1::/64").await;
    let a = Agent::register(&app, "host-a").await;
    let vm = app.instance("p", "host-a").await;
    let first = a.desired(0, 0).await;
    let rev = first["revision"].as_i64().unwrap();
    let waiting = async {
        let started = Instant::now();
        let st = a.desired(rev, 20_000).await;
        (st, started.elapsed())
    };
    let change = async {
        // Let the poll start first; the poll must wake either way.
        tokio::time::sleep(Duration::from_millis(200)).await;
        fip_on(&app, &net, &vm).await
    };
    let ((st, waited), f) = tokio::join!(waiting, change);
    assert_eq!(ids(&st["addresses"]), [id_of(f)]);
    assert!(
        waited < Duration::from_secs(10),
        "woke on the change, not the timeout ({waited:?})"
    );
    // Nothing new: the poll runs to its wait and returns the same revision.
    let same = a.desired(st["revision"].as_i64().unwrap(), 100).await;
    assert_eq!(same["revision"], st["revision"]);
    expect_problem(
        app.get("/v1/agent/desired-state?wait_ms=600000", &a.token)
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    )
    .await;
}

async fn dad_failure_is_an_error_until_a_retry_succeeds(b: Backend) {
    let app = TestApp::spawn(b).await;
    let net = app.network("n").await;
    app.pool(&net, "2001:db8:1::/64").await;
    let a = Agent::register(&app, "host-a").await;
    let vm = app.instance("p", "host-a").await;
    let id = id_of(fip_on(&app, &net, &vm).await);
    a.desired(0, 0).await;
    a.report(
        &id,
        1,
        "dad_failed",
        json!({ "dad_ms": 1000, "defender_mac": "02:aa:bb:cc:dd:ee" }),
    )
    .await;
    let f = get_fip(&app, &id).await;
    assert_eq!(f["status"], "ERROR");
    let detail = f["status_detail"].as_str().unwrap();
    assert!(
        detail.contains("host-a") && detail.contains("02:aa:bb:cc:dd:ee"),
        "{detail}"
    );
    assert_eq!(f["bindings"][0]["defender_mac"], "02:aa:bb:cc:dd:ee");
    a.report(&id, 1, "active", json!({ "dad_ms": 1100, "na_sent": 1 }))
        .await;
    let f = get_fip(&app, &id).await;
    assert_eq!(f["status"], "ACTIVE");
    assert_eq!(f["status_detail"], Value::Null);
    assert_eq!(f["revision"], 1, "status changes do not bump the revision");
}

async fn deleted_addresses_return_only_after_the_holder_confirms(b: Backend) {
    let app = TestApp::spawn(b).await;
    let net = app.network("n").await;
    let pool = app.pool(&net, "2001:db8:1::/64").await;
    let a = Agent::register(&app, "host-a").await;
    let vm = app.instance("p", "host-a").await;
    let f = fip_on(&app, &net, &vm).await;
    let id = id_of(f.clone());
    a.desired(0, 0).await;
    a.report(&id, 1, "active", json!({})).await;
    expect(
        app.delete(&format!("/v1/floating-ips/{id}"), ADMIN).await,
        StatusCode::NO_CONTENT,
    )
    .await;
    let usage = expect(
        app.get(&format!("/v1/pools/{pool}/usage"), ADMIN).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (usage["allocated"].as_i64(), usage["held"].as_i64()),
        (Some(0), Some(1))
    );
    let again = json!({ "network_id": net, "project_id": "p", "address": f["address"] });
    expect_problem(
        app.post("/v1/floating-ips", ADMIN, again.clone()).await,
        StatusCode::CONFLICT,
        "address_in_use",
    )
    .await;
    let st = a.desired(0, 0).await;
    assert_eq!(ids(&st["removals"]), vec![id.clone()]);
    a.report(&id, 2, "absent", json!({})).await;
    let usage = expect(
        app.get(&format!("/v1/pools/{pool}/usage"), ADMIN).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(usage["held"], 0, "released (quarantine 0 in tests)");
    expect(
        app.post("/v1/floating-ips", ADMIN, again).await,
        StatusCode::CREATED,
    )
    .await;
}

async fn a_lost_host_fails_over_to_the_standby(b: Backend) {
    let app = TestApp::spawn_config(b, |c| {
        c.lease_ttl_ms = 400;
        c.fence_grace_ms = 300;
    })
    .await;
    let net = app.network("n").await;
    app.pool(&net, "2001:db8:1::/64").await;
    let a = Agent::register(&app, "host-a").await;
    let bb = Agent::register(&app, "host-b").await;
    let vm_a = app.instance("p", "host-a").await;
    let vm_b = app.instance("p", "host-b").await;
    let id = id_of(fip_on(&app, &net, &vm_a).await);
    let r = app
        .patch(
            &format!("/v1/floating-ips/{id}"),
            ADMIN,
            json!({ "standby_instance_ids": [vm_b] }),
        )
        .await;
    let f = expect(r, StatusCode::OK).await;
    assert_eq!(f["standby_instance_ids"], json!([vm_b]));
    a.lease().await;
    bb.lease().await;
    a.desired(0, 0).await;
    a.report(&id, 2, "active", json!({})).await;
    assert_eq!(get_fip(&app, &id).await["status"], "ACTIVE");

    // A stops renewing; B keeps its lease.
    let renew_b = async {
        for _ in 0..40 {
            bb.lease().await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let watch = async {
        let f = wait_for(Duration::from_secs(5), "failover", || async {
            let f = get_fip(&app, &id).await;
            (f["host"] == "host-b").then_some(f)
        })
        .await;
        assert_eq!(f["instance_id"], vm_b.as_str());
        assert_eq!(f["status"], "PENDING");
        // B gets F once A's lease plus the grace has run out.
        let st = wait_for(Duration::from_secs(5), "B's desired state", || async {
            let st = bb.desired(0, 0).await;
            (!ids(&st["addresses"]).is_empty()).then_some(st)
        })
        .await;
        let rev = st["addresses"][0]["revision"].as_i64().unwrap();
        bb.report(&id, rev, "active", json!({ "dad_ms": 100 }))
            .await;
        assert_eq!(get_fip(&app, &id).await["status"], "ACTIVE");
    };
    tokio::select! {
        _ = renew_b => panic!("renewals ran out before the failover finished"),
        _ = watch => {}
    }
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
    let pos = |k: &str| {
        kinds
            .iter()
            .position(|x| *x == k)
            .unwrap_or_else(|| panic!("{k} in {kinds:?}"))
    };
    assert!(pos("host_lost") < pos("failover"));
    assert!(pos("failover") < pos("removal_assumed"));
    assert!(pos("removal_assumed") < kinds.iter().rposition(|x| *x == "add_requested").unwrap());
    let failover = &ev["items"][pos("failover")];
    assert!(failover["detail"]["reason"]
        .as_str()
        .unwrap()
        .contains("host-a"));
    let hosts = expect(app.get("/v1/hosts", ADMIN).await, StatusCode::OK).await;
    let state_a = hosts["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "host-a")
        .unwrap()["state"]
        .clone();
    assert_eq!(state_a, "lost");
    // A host with floating IPs bound to it cannot be deleted.
    let a_id = hosts["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "host-b")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    expect_problem(
        app.req(Method::DELETE, &format!("/v1/hosts/{a_id}"), ADMIN)
            .send()
            .await
            .unwrap(),
        StatusCode::CONFLICT,
        "host_in_use",
    )
    .await;
}

/// The agent's unsigned fields are documented with a signed format
/// (`int64`, `int32`); beyond it the server refuses them (issue 14).
async fn agent_numbers_beyond_their_documented_format_are_refused(b: Backend) {
    let app = TestApp::spawn(b).await;
    let a = Agent::register(&app, "host-a").await;
    let lease = |fence: u64| {
        let app = &app;
        let token = a.token.clone();
        async move {
            let body = json!({ "agent_version": "t", "networks": [], "fence_max_ms": fence });
            app.post("/v1/agent/lease", &token, body).await
        }
    };
    expect(lease(i64::MAX as u64).await, StatusCode::OK).await;
    let p = expect_problem(
        lease(1 << 63).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    )
    .await;
    assert!(
        p["detail"].as_str().unwrap().starts_with("fence_max_ms:"),
        "{p}"
    );
    let report = |na_sent: u64| {
        let app = &app;
        let token = a.token.clone();
        async move {
            let r = json!({ "floating_ip_id": uuid::Uuid::new_v4(), "revision": 1, "state": "active",
                            "observed_at": "2026-01-01T00:00:00Z", "na_sent": na_sent });
            app.post("/v1/agent/reports", &token, json!({ "reports": [r] }))
                .await
        }
    };
    expect(report(i32::MAX as u64).await, StatusCode::OK).await;
    let p = expect_problem(
        report(1 << 31).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    )
    .await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .starts_with("reports[0].na_sent:"),
        "{p}"
    );
}

/// One batch larger than a transaction's share (256), naming one floating
/// IP twice and carrying reports that must be ignored: each report is
/// applied in order, counted once, and logged with its events in order.
async fn a_large_batch_is_applied_report_by_report(b: Backend) {
    let app = TestApp::spawn(b).await;
    let net = app.network("n").await;
    app.pool(&net, "2001:db8:1::/64").await;
    let a = Agent::register(&app, "host-a").await;
    let vm = app.instance("p", "host-a").await;
    let unlimited = app.req(Method::PUT, "/v1/quotas/p", ADMIN);
    let q = unlimited
        .json(&json!({ "floating_ips": null }))
        .send()
        .await
        .unwrap();
    assert_eq!(q.status(), StatusCode::OK);
    let mut fips = Vec::new();
    for _ in 0..300 {
        fips.push(id_of(fip_on(&app, &net, &vm).await));
    }
    let st = a.desired(0, 0).await;
    assert_eq!(ids(&st["addresses"]).len(), 300);
    let rep = |fip: &str, revision: i64, state: &str, extra: Value| {
        let mut r = json!({
            "floating_ip_id": fip, "revision": revision, "state": state,
            "observed_at": chrono::Utc::now().to_rfc3339(),
        });
        for (k, v) in extra.as_object().unwrap() {
            r[k] = v.clone();
        }
        r
    };
    let mut batch = vec![rep(&fips[0], 1, "applying", json!({}))];
    for f in &fips {
        batch.push(rep(f, 1, "active", json!({ "dad_ms": 7, "na_sent": 2 })));
    }
    // Ignored: a revision that does not exist yet, a floating IP that does
    // not exist, and a revision older than the one already reported.
    batch.push(rep(&fips[1], 9, "absent", json!({})));
    batch.push(rep(
        &uuid::Uuid::new_v4().to_string(),
        1,
        "active",
        json!({}),
    ));
    batch.push(rep(&fips[2], 0, "error", json!({ "detail": "stale" })));
    let r = expect(
        app.post("/v1/agent/reports", &a.token, json!({ "reports": batch }))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (r["accepted"].as_u64(), r["ignored"].as_u64()),
        (Some(301), Some(3))
    );
    for f in [&fips[0], &fips[1], &fips[2], &fips[299]] {
        let got = get_fip(&app, f).await;
        assert_eq!(got["status"], "ACTIVE", "{got}");
        assert_eq!(got["bindings"][0]["na_sent"], 2, "{got}");
    }
    let app = &app;
    let last_four = |id: String| async move {
        let page = expect(
            app.get(&format!("/v1/floating-ips/{id}/events"), ADMIN)
                .await,
            StatusCode::OK,
        )
        .await;
        let kinds: Vec<String> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_owned())
            .collect();
        kinds[kinds.len().saturating_sub(4)..].to_vec()
    };
    assert_eq!(
        last_four(fips[0].clone()).await,
        ["add_started", "dad_passed", "announced", "active"]
    );
    assert_eq!(
        last_four(fips[299].clone()).await,
        ["add_requested", "dad_passed", "announced", "active"]
    );
}

both_backends!(
    a_large_batch_is_applied_report_by_report,
    agent_numbers_beyond_their_documented_format_are_refused,
    hosts_and_agent_tokens_are_scoped,
    moves_are_break_before_make,
    long_polls_wake_on_change,
    dad_failure_is_an_error_until_a_retry_succeeds,
    deleted_addresses_return_only_after_the_holder_confirms,
    a_lost_host_fails_over_to_the_standby,
);
