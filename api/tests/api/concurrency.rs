//! Two fipd processes on one PostgreSQL, many concurrent allocations from
//! one small pool: distinct addresses, clean 409s, no 500s.

use std::collections::HashSet;
use std::net::Ipv6Addr;
use std::sync::Arc;
use std::time::Instant;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::process::Fipd;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_allocate_distinct_addresses_from_one_small_pool() {
    let db = TestDb::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let args = |d: &str| {
        vec![
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--data-dir".to_owned(),
            d.to_owned(),
            "--database-url".to_owned(),
            db.url.clone(),
            "--admin-token".to_owned(),
            ADMIN.to_owned(),
        ]
    };
    let d1 = dir.path().join("a");
    let d2 = dir.path().join("b");
    let a1 = args(d1.to_str().unwrap());
    let a2 = args(d2.to_str().unwrap());
    let r1 = Fipd::start(&a1.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    let r2 = Fipd::start(&a2.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    let client = reqwest::Client::new();
    let net: Value = client
        .post(format!("{}/v1/networks", r1.url))
        .bearer_auth(ADMIN)
        .json(&json!({ "name": "n" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pool = client
        .post(format!("{}/v1/pools", r2.url))
        .bearer_auth(ADMIN)
        .json(&json!({ "network_id": net["id"], "cidr": "2001:db8::/120" }))
        .send()
        .await
        .unwrap();
    assert_eq!(pool.status(), StatusCode::CREATED);
    let pool: Value = pool.json().await.unwrap();
    // The pool, not the project's quota, is what runs out here.
    let q = client
        .put(format!("{}/v1/quotas/p", r1.url))
        .bearer_auth(ADMIN)
        .json(&json!({ "floating_ips": null }))
        .send()
        .await
        .unwrap();
    assert_eq!(q.status(), StatusCode::OK);

    // 300 requests, 64 at a time, alternating replicas: the /120 holds 255.
    const REQUESTS: usize = 300;
    let limit = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    for i in 0..REQUESTS {
        let url = if i % 2 == 0 {
            r1.url.clone()
        } else {
            r2.url.clone()
        };
        let client = client.clone();
        let body = json!({ "pool_id": pool["id"], "project_id": "p" });
        let permit = limit.clone().acquire_owned().await.unwrap();
        tasks.spawn(async move {
            let r = client
                .post(format!("{url}/v1/floating-ips"))
                .bearer_auth(ADMIN)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let body: Value = r.json().await.unwrap();
            drop(permit);
            (status, body)
        });
    }
    let mut addresses = HashSet::new();
    let mut exhausted = 0;
    while let Some(res) = tasks.join_next().await {
        let (status, body) = res.unwrap();
        match status {
            StatusCode::CREATED => {
                let a: Ipv6Addr = body["address"].as_str().unwrap().parse().unwrap();
                let bits = u128::from(a);
                let net = u128::from("2001:db8::".parse::<Ipv6Addr>().unwrap());
                assert_eq!(bits & !0xff, net, "{a} inside the /120");
                assert_ne!(bits & 0xff, 0, "never the subnet-router anycast");
                assert!(addresses.insert(a), "{a} handed out twice");
            }
            StatusCode::CONFLICT => {
                assert_eq!(body["code"], "pool_exhausted", "{body}");
                exhausted += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    let elapsed = started.elapsed();
    assert_eq!(addresses.len(), 255, "the whole pool is used");
    assert_eq!(exhausted, REQUESTS - 255);
    eprintln!(
        "concurrent allocation: {REQUESTS} requests in {:.2} s ({:.0} req/s) over two replicas",
        elapsed.as_secs_f64(),
        REQUESTS as f64 / elapsed.as_secs_f64()
    );
}

/// Issue 9 item 11: a quota holds under concurrent creates on two
/// replicas: exactly the limit succeeds, the rest is `quota_exceeded`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_holds_under_concurrent_creates_on_two_replicas() {
    let db = TestDb::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let start = |d: &str| {
        Fipd::start(
            &[
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                d,
                "--database-url",
                &db.url,
                "--admin-token",
                ADMIN,
                "--quota-floating-ips",
                "12",
            ],
            &[],
        )
    };
    let r1 = start(dir.path().join("a").to_str().unwrap());
    let r2 = start(dir.path().join("b").to_str().unwrap());
    let client = reqwest::Client::new();
    let net: Value = client
        .post(format!("{}/v1/networks", r1.url))
        .bearer_auth(ADMIN)
        .json(&json!({ "name": "n" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = client
        .post(format!("{}/v1/pools", r1.url))
        .bearer_auth(ADMIN)
        .json(&json!({ "network_id": net["id"], "cidr": "2001:db8::/64" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let url = if i % 2 == 0 {
            r1.url.clone()
        } else {
            r2.url.clone()
        };
        let client = client.clone();
        let body = json!({ "network_id": net["id"], "project_id": "q" });
        tasks.spawn(async move {
            let r = client
                .post(format!("{url}/v1/floating-ips"))
                .bearer_auth(ADMIN)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap())
        });
    }
    let (mut created, mut refused) = (0, 0);
    while let Some(res) = tasks.join_next().await {
        match res.unwrap() {
            (StatusCode::CREATED, _) => created += 1,
            (StatusCode::CONFLICT, body) => {
                assert_eq!(body["code"], "quota_exceeded", "{body}");
                refused += 1;
            }
            (other, body) => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((created, refused), (12, 28));
    let q: Value = client
        .get(format!("{}/v1/quotas/q", r2.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(q["floating_ips"]["used"], 12);
    assert_eq!(q["floating_ips"]["limit"], 12);
    assert_eq!(q["floating_ips"]["default"], true);
}

/// Creates that associate with one instance at once must all succeed. Each
/// insert takes a key-share lock on the instance row (its foreign key);
/// locking the instance `FOR UPDATE` afterwards, under the project's quota
/// lock, deadlocked two such creates (found by `fip-bench fleet`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_on_one_instance_do_not_deadlock() {
    let app = Arc::new(TestApp::spawn(Backend::Postgres).await);
    let net = app.network("n").await;
    app.pool(&net, "2001:db8::/64").await;
    let vm = app.instance("p", "compute-1").await;
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (app, net, vm) = (app.clone(), net.clone(), vm.clone());
        tasks.push(tokio::spawn(async move {
            let body = json!({ "network_id": net, "project_id": "p", "instance_id": vm });
            let r = app.post("/v1/floating-ips", ADMIN, body).await;
            let status = r.status();
            (status, r.text().await.unwrap())
        }));
    }
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
}
