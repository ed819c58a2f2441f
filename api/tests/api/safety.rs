//! Issue 9: the holes in fipd's side of the one promise (never two holders
//! of a floating IP), each with the scenario that opened it. The agent is
//! scripted over HTTP; process-level scenarios (clock skew, cancelled
//! requests, renewals under load) run real fipd binaries on PostgreSQL.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;
use crate::scripted::*;

/// A network with a /64 pool, hosts A and B with agents, an instance on
/// each, and F on A's instance, delivered and reported active.
struct Placed<'a> {
    a: Agent<'a>,
    b: Agent<'a>,
    vm_b: String,
    id: String,
}

async fn placed(app: &TestApp, lease_extra: Value) -> Placed<'_> {
    let net = app.network("n").await;
    app.pool(&net, "2001:db8:1::/64").await;
    let a = Agent::register(app, "host-a").await;
    let b = Agent::register(app, "host-b").await;
    let vm_a = app.instance("p", "host-a").await;
    let vm_b = app.instance("p", "host-b").await;
    a.lease_with(lease_extra.clone()).await;
    b.lease_with(lease_extra).await;
    let id = id_of(fip_on(app, &net, &vm_a).await);
    let st = a.desired(0, 0).await;
    assert_eq!(ids(&st["addresses"]), vec![id.clone()]);
    a.report(&id, 1, "active", json!({})).await;
    assert_eq!(get_fip(app, &id).await["status"], "ACTIVE");
    Placed { a, b, vm_b, id }
}

async fn move_to(app: &TestApp, id: &str, vm: &str) -> Value {
    let r = app
        .patch(
            &format!("/v1/floating-ips/{id}"),
            ADMIN,
            json!({ "instance_id": vm }),
        )
        .await;
    expect(r, StatusCode::OK).await
}

async fn host_state(app: &TestApp, name: &str) -> Value {
    let hosts = expect(app.get("/v1/hosts", ADMIN).await, StatusCode::OK).await;
    hosts["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == name)
        .cloned()
        .unwrap()
}

/// Item 1: host A is lost (its lease ran out) but not fenced (a long
/// grace), F moves to B, then A's agent renews. A has not confirmed the
/// removal and may still hold F, so B must not get F until A reports it
/// absent. Before the fix, the renewal assumed A's removals.
async fn a_lost_host_that_renews_before_its_fence_still_confirms_its_removals(b: Backend) {
    let app = TestApp::spawn_config(b, |c| {
        c.lease_ttl_ms = 300;
        c.fence_grace_ms = 120_000;
    })
    .await;
    let p = placed(&app, json!({})).await;
    // Lost as the controller marks it (its event), not merely expired.
    wait_for(Duration::from_secs(5), "A marked lost", || async {
        let ev = events(&app, &p.id).await;
        ev.iter().any(|e| e["kind"] == "host_lost").then_some(())
    })
    .await;
    assert_eq!(host_state(&app, "host-a").await["state"], "lost");
    p.b.lease().await;
    let f = move_to(&app, &p.id, &p.vm_b).await;
    let rev = f["revision"].as_i64().unwrap();
    // A comes back before its fence.
    p.a.lease().await;
    p.b.lease().await;
    let (wanted_b, _) = p.b.wanted_and_removals().await;
    assert!(
        wanted_b.is_empty(),
        "B got F while A, back before its fence, may still hold it"
    );
    let (_, removals_a) = p.a.wanted_and_removals().await;
    assert_eq!(removals_a, vec![p.id.clone()], "A is asked to remove F");
    // A confirms: now B gets F.
    p.a.report(&p.id, rev, "absent", json!({})).await;
    let (wanted_b, _) = p.b.wanted_and_removals().await;
    assert_eq!(wanted_b, vec![p.id.clone()]);
}

/// Item 4: a report for a revision the floating IP has not reached yet is
/// refused. Before the fix, A's `absent@5` at revision 1 was stored and
/// later counted as confirming the removal asked at revision 2, so B got F
/// while A still held it.
async fn reports_from_the_future_are_refused(b: Backend) {
    let app = TestApp::spawn(b).await;
    let p = placed(&app, json!({})).await;
    let res = p.a.report(&p.id, 5, "absent", json!({})).await;
    assert_eq!(res, json!({ "accepted": 0, "ignored": 1 }));
    let f = get_fip(&app, &p.id).await;
    assert_eq!(f["status"], "ACTIVE", "the refused report changed nothing");
    move_to(&app, &p.id, &p.vm_b).await;
    let (wanted_b, _) = p.b.wanted_and_removals().await;
    assert!(wanted_b.is_empty(), "B must wait for A's real confirmation");
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("fipd_agent_reports_refused_total{reason=\"future_revision\"}"),
        "refusals are counted"
    );
}

/// The lease expiry (ms) of a lease answer.
fn expiry_ms(lease: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(lease["lease_expires_at"].as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

/// Makes B's instance F's standby.
async fn standby_on_b(app: &TestApp, p: &Placed<'_>) {
    let r = app
        .patch(
            &format!("/v1/floating-ips/{}", p.id),
            ADMIN,
            json!({ "standby_instance_ids": [p.vm_b] }),
        )
        .await;
    expect(r, StatusCode::OK).await;
}

/// Makes B F's standby; A has stopped renewing, B renews (with `b_lease`)
/// until its desired state carries F, within `within`. Returns when, in
/// wall-clock ms.
async fn failover_to_b(app: &TestApp, p: &Placed<'_>, b_lease: Value, within: Duration) -> i64 {
    standby_on_b(app, p).await;
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < within,
            "B did not get F within {within:?}"
        );
        p.b.lease_with(b_lease.clone()).await;
        if !p.b.wanted_and_removals().await.0.is_empty() {
            return chrono::Utc::now().timestamp_millis();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Item 3: with DAD off nothing catches a copy left behind, so a host that
/// stopped renewing counts as fenced only once every kernel lifetime its
/// agent set has run out (lease end + the longest lifetime it reported +
/// the kernel's slack), not after lease + grace. Before the fix, B got F
/// after the grace while A's kernel could still hold it.
async fn with_dad_off_the_fence_waits_for_the_agents_kernel_lifetimes(b: Backend) {
    let app = TestApp::spawn_config(b, |c| {
        c.lease_ttl_ms = 400;
        c.fence_grace_ms = 200;
        c.dad = fipd::app::DadMode::Off;
    })
    .await;
    let lifetime_ms = 1_500;
    let p = placed(&app, json!({ "kernel_lifetime_max_ms": lifetime_ms })).await;
    let expires = expiry_ms(
        &p.a.lease_with(json!({ "kernel_lifetime_max_ms": lifetime_ms }))
            .await,
    );
    let got = failover_to_b(
        &app,
        &p,
        json!({ "kernel_lifetime_max_ms": lifetime_ms }),
        Duration::from_secs(15),
    )
    .await;
    let backstop = expires + lifetime_ms + 2_000;
    assert!(
        got >= backstop,
        "B got F {} ms before A's kernel lifetimes could have run out",
        backstop - got
    );
}

/// Item 3, the other side: with DAD on (strict), the next holder's DAD
/// catches a copy left behind, so the fence does not wait for the kernel
/// lifetimes and failover stays at lease + grace.
async fn with_dad_on_the_fence_does_not_wait_for_kernel_lifetimes(b: Backend) {
    let app = TestApp::spawn_config(b, |c| {
        c.lease_ttl_ms = 400;
        c.fence_grace_ms = 200;
    })
    .await;
    let p = placed(&app, json!({ "kernel_lifetime_max_ms": 60_000 })).await;
    failover_to_b(&app, &p, json!({}), Duration::from_secs(10)).await;
}

/// Issue 10 item 2, fipd's side: an agent holding thousands of addresses
/// needs longer than the grace to remove them all (9.7 s for 10,000 in
/// bench/results.md, figure 7), and says so with each renewal. Even with
/// DAD on, fipd assumes its removals only once that fence can have ended.
/// Before, B got F at lease + grace while A's fence was still deleting.
async fn the_fence_waits_for_the_agents_own_fence_time(b: Backend) {
    let app = TestApp::spawn_config(b, |c| {
        c.lease_ttl_ms = 400;
        c.fence_grace_ms = 200;
    })
    .await;
    let fence_ms = 2_500;
    let p = placed(&app, json!({ "fence_max_ms": fence_ms })).await;
    let expires = expiry_ms(&p.a.lease_with(json!({ "fence_max_ms": fence_ms })).await);
    let got = failover_to_b(&app, &p, json!({}), Duration::from_secs(15)).await;
    assert!(
        got >= expires + fence_ms,
        "B got F {} ms before A's fence could have ended",
        expires + fence_ms - got
    );
}

/// Item 3: an agent that overrides DAD to `off` locally takes the DAD
/// protection away from moves onto its host, so fencing waits for kernel
/// lifetimes even though fipd's own mode is strict.
async fn an_agent_with_dad_off_makes_the_fence_wait_for_lifetimes(b: Backend) {
    let app = TestApp::spawn_config(b, |c| {
        c.lease_ttl_ms = 400;
        c.fence_grace_ms = 200;
    })
    .await;
    let p = placed(&app, json!({ "kernel_lifetime_max_ms": 60_000 })).await;
    p.b.lease_with(json!({ "dad_override": "off", "kernel_lifetime_max_ms": 1000 }))
        .await;
    standby_on_b(&app, &p).await;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        p.b.lease_with(json!({ "dad_override": "off", "kernel_lifetime_max_ms": 1000 }))
            .await;
        assert!(
            p.b.wanted_and_removals().await.0.is_empty(),
            "B got F although A's kernel may hold it for 60 s and B runs no DAD"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Item 8: the secret of a host or project token is never stored, not
/// even in an Idempotency-Key record; a replay answers 200 with the object
/// and no secret.
async fn idempotency_records_keep_no_secrets(b: Backend) {
    let app = TestApp::spawn(b).await;
    for (path, body) in [
        ("/v1/hosts", json!({ "name": "h1" })),
        ("/v1/tokens", json!({ "project_id": "p" })),
    ] {
        let send = || {
            app.req(reqwest::Method::POST, path, ADMIN)
                .header("idempotency-key", format!("key-{path}"))
                .json(&body)
                .send()
        };
        let first = expect(send().await.unwrap(), StatusCode::CREATED).await;
        let secret = first["token"].as_str().unwrap().to_owned();
        let stored: Vec<String> =
            sqlx::query_scalar("SELECT response FROM idempotency_keys WHERE response IS NOT NULL")
                .fetch_all(app.store.pool())
                .await
                .unwrap();
        assert!(!stored.is_empty());
        assert!(
            stored.iter().all(|r| !r.contains(&secret)),
            "{path}: the secret is stored in plain text"
        );
        let again = send().await.unwrap();
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        let again = expect(again, StatusCode::OK).await;
        assert_eq!(again["id"], first["id"], "{path}: the same object");
        assert!(again.get("token").is_none(), "{path}: no secret on replay");
    }
}

/// Item 9: agents find networks by name, so renaming a network that a
/// host serves would make every agent drop its addresses: refused.
async fn a_network_that_a_host_serves_cannot_be_renamed(b: Backend) {
    let app = TestApp::spawn(b).await;
    let net = app.network("n").await;
    let other = app.network("spare").await;
    let a = Agent::register(&app, "host-a").await;
    a.lease().await; // serves "n"
    let r = app
        .patch(
            &format!("/v1/networks/{net}"),
            ADMIN,
            json!({ "name": "m" }),
        )
        .await;
    let body = expect_problem(r, StatusCode::CONFLICT, "network_in_use").await;
    assert!(
        body["detail"].as_str().unwrap().contains("host-a"),
        "{body}"
    );
    let r = app
        .patch(
            &format!("/v1/networks/{net}"),
            ADMIN,
            json!({ "description": "x" }),
        )
        .await;
    expect(r, StatusCode::OK).await;
    let r = app
        .patch(
            &format!("/v1/networks/{other}"),
            ADMIN,
            json!({ "name": "spare-2" }),
        )
        .await;
    assert_eq!(expect(r, StatusCode::OK).await["name"], "spare-2");
}

/// Item 10: a floating IP stuck in a DAD conflict keeps a bounded log: a
/// retry loop is counted on its events, not appended forever.
async fn a_dad_retry_loop_does_not_grow_the_event_log(b: Backend) {
    let app = TestApp::spawn(b).await;
    let p = placed(&app, json!({})).await;
    move_to(&app, &p.id, &p.vm_b).await;
    p.a.report(&p.id, 2, "absent", json!({})).await;
    p.b.desired(0, 0).await;
    let before = events(&app, &p.id).await.len();
    for _ in 0..25 {
        p.b.report(&p.id, 2, "tentative", json!({})).await;
        p.b.report(
            &p.id,
            2,
            "dad_failed",
            json!({ "defender_mac": "02:00:00:00:00:05", "dad_ms": 100 }),
        )
        .await;
    }
    let ev = events(&app, &p.id).await;
    assert!(
        ev.len() <= before + 4,
        "50 retry steps added {} events",
        ev.len() - before
    );
    let failed = ev.iter().rev().find(|e| e["kind"] == "dad_failed").unwrap();
    assert!(failed["repeats"].as_i64().unwrap() >= 20, "{failed}");
    assert!(failed["last_at"].is_string());
    // The loop ends: a success is a new event.
    p.b.report(&p.id, 2, "active", json!({ "dad_ms": 100 }))
        .await;
    assert_eq!(events(&app, &p.id).await.last().unwrap()["kind"], "active");
}

async fn events(app: &TestApp, id: &str) -> Vec<Value> {
    let v = expect(
        app.get(&format!("/v1/floating-ips/{id}/events?limit=1000"), ADMIN)
            .await,
        StatusCode::OK,
    )
    .await;
    v["items"].as_array().unwrap().clone()
}

/// Item 10: events past their retention go, by age and by count per
/// floating IP.
async fn events_are_pruned_by_age_and_count(b: Backend) {
    let app = TestApp::spawn(b).await;
    let net = app.network("n").await;
    app.pool(&net, "2001:db8:1::/64").await;
    let id = id_of(app.fip(&net, "p").await);
    for i in 0..12 {
        let r = app
            .patch(
                &format!("/v1/floating-ips/{id}"),
                ADMIN,
                json!({ "description": format!("d{i}") }),
            )
            .await;
        expect(r, StatusCode::OK).await;
    }
    assert_eq!(events(&app, &id).await.len(), 13);
    app.store.events_prune(0, Some(5)).await.unwrap();
    let ev = events(&app, &id).await;
    assert_eq!(ev.len(), 5, "the newest five stay");
    assert_eq!(ev.last().unwrap()["detail"]["description"], "d11");
    let future = chrono::Utc::now().timestamp_millis() + 1000;
    app.store.events_prune(future, None).await.unwrap();
    assert!(
        events(&app, &id).await.is_empty(),
        "all older than the cutoff"
    );
}

/// Item 10: an Idempotency-Key claimed by a request that never finished
/// (its replica died) is free again after a while, not for 24 h.
async fn an_abandoned_idempotency_claim_expires(b: Backend) {
    let app = TestApp::spawn(b).await;
    let old = chrono::Utc::now().timestamp_millis() - 5 * 60 * 1000;
    sqlx::query(
        "INSERT INTO idempotency_keys (scope, key, request_hash, created_at) VALUES ('admin', 'k1', 'x', $1)",
    )
    .bind(old)
    .execute(app.store.pool())
    .await
    .unwrap();
    let r = app
        .req(reqwest::Method::POST, "/v1/networks", ADMIN)
        .header("idempotency-key", "k1")
        .json(&json!({ "name": "n" }))
        .send()
        .await
        .unwrap();
    expect(r, StatusCode::CREATED).await;
}

/// Item 10: the release scan has an index of its own.
async fn the_release_scan_is_indexed(b: Backend) {
    let app = TestApp::spawn(b).await;
    let q = match b {
        Backend::Postgres => "SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'floating_ips_unreleased_idx'",
        Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'floating_ips_unreleased_idx'",
    };
    let n: i64 = sqlx::query_scalar(q)
        .fetch_one(app.store.pool())
        .await
        .unwrap();
    assert_eq!(n, 1);
}

/// Item 11: a project token cannot take a shared pool: its project's
/// quota refuses with `quota_exceeded`; it sees its own usage, not other
/// projects'; the admin raises the limit.
async fn project_quotas_limit_floating_ips_and_instances(b: Backend) {
    let app = TestApp::spawn_config(b, |c| {
        c.default_quota = fipd::app::quotas::Limits {
            floating_ips: Some(2),
            instances: Some(1),
        };
    })
    .await;
    let net = app.network("n").await;
    app.pool(&net, "2001:db8:1::/64").await;
    app.host("h").await;
    let token = app.project_token("p").await;
    for _ in 0..2 {
        let r = app
            .post("/v1/floating-ips", &token, json!({ "network_id": net }))
            .await;
        expect(r, StatusCode::CREATED).await;
    }
    let r = app
        .post("/v1/floating-ips", &token, json!({ "network_id": net }))
        .await;
    expect_problem(r, StatusCode::CONFLICT, "quota_exceeded").await;
    let vm = json!({ "name": "vm", "host": "h" });
    expect(
        app.post("/v1/instances", &token, vm.clone()).await,
        StatusCode::CREATED,
    )
    .await;
    let r = app.post("/v1/instances", &token, vm.clone()).await;
    expect_problem(r, StatusCode::CONFLICT, "quota_exceeded").await;
    let q = expect(app.get("/v1/quotas/p", &token).await, StatusCode::OK).await;
    assert_eq!(
        q,
        json!({ "project_id": "p",
                "floating_ips": { "limit": 2, "used": 2, "default": true },
                "instances": { "limit": 1, "used": 1, "default": true } })
    );
    let r = app.get("/v1/quotas/other", &token).await;
    expect_problem(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = app
        .req(reqwest::Method::PUT, "/v1/quotas/p", &token)
        .json(&json!({ "floating_ips": 10 }))
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = app
        .req(reqwest::Method::PUT, "/v1/quotas/p", ADMIN)
        .json(&json!({ "floating_ips": 3, "instances": null }))
        .send()
        .await
        .unwrap();
    let q = expect(r, StatusCode::OK).await;
    assert_eq!(
        q["floating_ips"],
        json!({ "limit": 3, "used": 2, "default": false })
    );
    assert_eq!(q["instances"]["limit"], Value::Null, "unlimited");
    let r = app
        .post("/v1/floating-ips", &token, json!({ "network_id": net }))
        .await;
    expect(r, StatusCode::CREATED).await;
    expect(
        app.post("/v1/instances", &token, vm).await,
        StatusCode::CREATED,
    )
    .await;
    let list = expect(app.get("/v1/quotas", ADMIN).await, StatusCode::OK).await;
    assert_eq!(list["items"][0]["project_id"], "p");
    let r = app.delete("/v1/quotas/p", ADMIN).await;
    expect(r, StatusCode::NO_CONTENT).await;
    let q = expect(app.get("/v1/quotas/p", ADMIN).await, StatusCode::OK).await;
    assert_eq!(
        q["floating_ips"],
        json!({ "limit": 2, "used": 3, "default": true })
    );
}

/// Item 12: `If-Match` uses the strong comparison: a weak tag of the
/// current revision does not match.
async fn if_match_compares_strongly(b: Backend) {
    let app = TestApp::spawn(b).await;
    let net = app.network("n").await;
    app.pool(&net, "2001:db8:1::/64").await;
    let id = id_of(app.fip(&net, "p").await);
    let patch = |tag: &'static str| {
        app.req(
            reqwest::Method::PATCH,
            &format!("/v1/floating-ips/{id}"),
            ADMIN,
        )
        .header("if-match", tag)
        .json(&json!({ "description": "x" }))
        .send()
    };
    let r = patch("W/\"1\"").await.unwrap();
    expect_problem(r, StatusCode::PRECONDITION_FAILED, "revision_mismatch").await;
    let r = patch("\"7\", \"1\"").await.unwrap();
    expect(r, StatusCode::OK).await;
}

/// Item 12: a standby list is bounded and names each instance once.
async fn standby_lists_are_bounded(b: Backend) {
    let app = TestApp::spawn(b).await;
    let net = app.network("n").await;
    app.pool(&net, "2001:db8:1::/64").await;
    let id = id_of(app.fip(&net, "p").await);
    let vm = app.instance("p", "h").await;
    let r = app
        .patch(
            &format!("/v1/floating-ips/{id}"),
            ADMIN,
            json!({ "standby_instance_ids": [vm, vm] }),
        )
        .await;
    expect_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
    let many: Vec<String> = (0..17).map(|_| vm.clone()).collect();
    let r = app
        .patch(
            &format!("/v1/floating-ips/{id}"),
            ADMIN,
            json!({ "standby_instance_ids": many }),
        )
        .await;
    let body = expect_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
    assert!(body["detail"].as_str().unwrap().contains("at most 16"));
}

both_backends!(
    a_lost_host_that_renews_before_its_fence_still_confirms_its_removals,
    reports_from_the_future_are_refused,
    with_dad_off_the_fence_waits_for_the_agents_kernel_lifetimes,
    with_dad_on_the_fence_does_not_wait_for_kernel_lifetimes,
    the_fence_waits_for_the_agents_own_fence_time,
    an_agent_with_dad_off_makes_the_fence_wait_for_lifetimes,
    idempotency_records_keep_no_secrets,
    a_network_that_a_host_serves_cannot_be_renamed,
    a_dad_retry_loop_does_not_grow_the_event_log,
    events_are_pruned_by_age_and_count,
    an_abandoned_idempotency_claim_expires,
    the_release_scan_is_indexed,
    project_quotas_limit_floating_ips_and_instances,
    if_match_compares_strongly,
    standby_lists_are_bounded,
);

// ---- races on PostgreSQL (item 5) -------------------------------------------

/// Item 5: a migration racing a disassociation. The disassociation must
/// win for good: nothing asked to re-associate F. Before the fix, the
/// migration wrote back the floating IP it had read without a lock, with
/// the instance still set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_never_overwrites_a_concurrent_disassociation() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let net = app.network("n").await;
    app.pool(&net, "2001:db8:1::/64").await;
    app.host("host-a").await;
    app.host("host-b").await;
    for round in 0..30 {
        let vm = app.instance("p", "host-a").await;
        let id = id_of(fip_on(&app, &net, &vm).await);
        let (fip_path, vm_path) = (
            format!("/v1/floating-ips/{id}"),
            format!("/v1/instances/{vm}"),
        );
        let (r1, r2) = tokio::join!(
            app.patch(&fip_path, ADMIN, json!({ "instance_id": null })),
            app.patch(&vm_path, ADMIN, json!({ "host": "host-b" })),
        );
        expect(r1, StatusCode::OK).await;
        expect(r2, StatusCode::OK).await;
        let f = get_fip(&app, &id).await;
        assert_eq!(f["instance_id"], Value::Null, "round {round}: {f}");
        assert!(
            f["bindings"]
                .as_array()
                .unwrap()
                .iter()
                .all(|b| b["desired"] == "absent"),
            "round {round}: F is still wanted somewhere: {f}"
        );
        expect(
            app.delete(&format!("/v1/floating-ips/{id}"), ADMIN).await,
            StatusCode::NO_CONTENT,
        )
        .await;
    }
}

/// Item 5: a create with an instance racing that instance's migration.
/// The new floating IP must end where the instance is. Before the fix, the
/// create read the instance's host without a lock and could place F on the
/// host the instance had just left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_never_places_on_the_host_a_concurrent_migration_left() {
    let app = TestApp::spawn_config(Backend::Postgres, |c| {
        c.default_quota.floating_ips = None;
    })
    .await;
    let net = app.network("n").await;
    app.pool(&net, "2001:db8:1::/64").await;
    app.host("host-a").await;
    app.host("host-b").await;
    for round in 0..30 {
        let vm = app.instance("p", "host-a").await;
        let vm_path = format!("/v1/instances/{vm}");
        let (created, migrated) = tokio::join!(
            fip_on(&app, &net, &vm),
            app.patch(&vm_path, ADMIN, json!({ "host": "host-b" })),
        );
        expect(migrated, StatusCode::OK).await;
        let f = get_fip(&app, &id_of(created)).await;
        let present: Vec<&Value> = f["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["desired"] == "present")
            .collect();
        assert_eq!(f["host"], "host-b", "round {round}: {f}");
        assert_eq!(present.len(), 1, "round {round}: {f}");
        assert_eq!(
            present[0]["host"], "host-b",
            "round {round}: F left behind: {f}"
        );
    }
}
