//! Issue 9 scenarios that need real fipd processes on PostgreSQL: replicas
//! with skewed clocks and different settings, clients that give up half
//! way through requests, and lease renewals under a storm of long polls.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::process::Fipd;

fn args<'a>(data: &'a str, db: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data,
        "--database-url",
        db,
        "--admin-token",
        ADMIN,
    ];
    v.extend_from_slice(extra);
    v
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = client.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn host_token(client: &reqwest::Client, url: &str, name: &str) -> String {
    let (st, v) = call(
        client,
        reqwest::Method::POST,
        format!("{url}/v1/hosts"),
        ADMIN,
        Some(json!({ "name": name })),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v["token"].as_str().unwrap().to_owned()
}

async fn renew(client: &reqwest::Client, url: &str, token: &str) -> StatusCode {
    let body = json!({ "agent_version": "test", "networks": [] });
    call(
        client,
        reqwest::Method::POST,
        format!("{url}/v1/agent/lease"),
        token,
        Some(body),
    )
    .await
    .0
}

async fn hosts(client: &reqwest::Client, url: &str) -> Vec<Value> {
    let (_, v) = call(
        client,
        reqwest::Method::GET,
        format!("{url}/v1/hosts?limit=1000"),
        ADMIN,
        None,
    )
    .await;
    v["items"].as_array().unwrap().clone()
}

/// Item 2: replica r2's clock runs 5 s ahead (libfaketime). Leases and
/// fences must live on the database's clock: before the fix, r2's
/// controller saw the lease r1 had just written as long expired and
/// marked a healthy host lost, and a renewal through r2 wrote an expiry
/// 5 s in the future.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_with_a_skewed_clock_neither_loses_hosts_nor_stretches_leases() {
    const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
    assert!(
        std::path::Path::new(LIBFAKETIME).exists(),
        "this test needs libfaketime (Debian package faketime; scripts/test.sh installs it)"
    );
    let db = TestDb::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let (d1, d2) = (dir.path().join("1"), dir.path().join("2"));
    let settings = ["--lease-ttl-ms", "1000", "--fence-grace-ms", "500"];
    let r1 = Fipd::start(&args(d1.to_str().unwrap(), &db.url, &settings), &[]);
    // Preloaded rather than through the `faketime` wrapper, which forks:
    // dropping it would leave this fipd running.
    let r2 = Fipd::start(
        &args(d2.to_str().unwrap(), &db.url, &settings),
        &[
            ("LD_PRELOAD", LIBFAKETIME),
            ("FAKETIME", "+5s"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    let client = reqwest::Client::new();
    // The skew is real: r2's own clock (its Date header) is ahead.
    let r = client
        .get(format!("{}/healthz", r2.url))
        .send()
        .await
        .unwrap();
    let date = httpdate(r.headers()["date"].to_str().unwrap());
    let ahead = date - chrono::Utc::now().timestamp();
    assert!((3..=7).contains(&ahead), "r2 runs {ahead} s ahead");

    let a = host_token(&client, &r1.url, "host-a").await;
    let b = host_token(&client, &r1.url, "host-b").await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        // A renews through r1, B through the skewed r2; both controllers run.
        assert_eq!(renew(&client, &r1.url, &a).await, StatusCode::OK);
        assert_eq!(renew(&client, &r2.url, &b).await, StatusCode::OK);
        let now = chrono::Utc::now().timestamp_millis();
        for h in hosts(&client, &r1.url).await {
            assert_eq!(h["state"], "alive", "{} lost with no fault: {h}", h["name"]);
            let exp = chrono::DateTime::parse_from_rfc3339(h["lease_expires_at"].as_str().unwrap())
                .unwrap()
                .timestamp_millis();
            assert!(
                exp <= now + 1000 + 500,
                "{}'s lease ends {} ms from now with a 1000 ms TTL",
                h["name"],
                exp - now
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The seconds since the epoch of an IMF-fixdate (`Date` header).
fn httpdate(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc2822(&s.replace("GMT", "+0000"))
        .unwrap()
        .timestamp()
}

/// Item 2: a renewal never moves an expiry back. r1 grants 10 s leases,
/// r2 (configured differently during a rolling change) 2 s; a renewal
/// through r2 right after one through r1 must not shorten the lease the
/// agent already counts on. Before the fix it did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_never_moves_a_lease_back() {
    let db = TestDb::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let (d1, d2) = (dir.path().join("1"), dir.path().join("2"));
    let r1 = Fipd::start(
        &args(d1.to_str().unwrap(), &db.url, &["--lease-ttl-ms", "10000"]),
        &[],
    );
    let r2 = Fipd::start(
        &args(d2.to_str().unwrap(), &db.url, &["--lease-ttl-ms", "2000"]),
        &[],
    );
    let client = reqwest::Client::new();
    let a = host_token(&client, &r1.url, "host-a").await;
    let expiry = || async {
        let h = hosts(&client, &r1.url).await;
        chrono::DateTime::parse_from_rfc3339(h[0]["lease_expires_at"].as_str().unwrap())
            .unwrap()
            .timestamp_millis()
    };
    assert_eq!(renew(&client, &r1.url, &a).await, StatusCode::OK);
    let long = expiry().await;
    assert_eq!(renew(&client, &r2.url, &a).await, StatusCode::OK);
    assert!(expiry().await >= long, "the lease was shortened");
}

/// A TCP proxy that delays every chunk by `delay` in both directions: a
/// database 2 × `delay` away, so that work cut off by a client often lands
/// in the middle of a round trip (as it does in production when the
/// database is slow). Runs until the test's runtime ends.
async fn slow_link(target: std::net::SocketAddr, delay: Duration) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            for (mut from, mut to) in [
                (
                    Box::new(cr) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                    Box::new(sw) as Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
                ),
                (Box::new(sr) as _, Box::new(cw) as _),
            ] {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match from.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        tokio::time::sleep(delay).await;
                        if to.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown().await;
                });
            }
        }
    });
    addr
}

/// Item 7: thousands of requests that the client abandons part way
/// through (as agents do when a long poll times out, or a client gives
/// up), against a database 4 ms away. sqlx's `begin` on PostgreSQL is not
/// cancel-safe: before the fix, a request cut off during `BEGIN` left its
/// pooled connection inside a transaction, PostgreSQL warned "there is
/// already a transaction in progress" to the next user of that
/// connection, and the stale transaction showed in `pg_stat_activity`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_cancelled_mid_transaction_leave_no_transaction_behind() {
    let db = TestDb::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let url = reqwest::Url::parse(&db.url).unwrap();
    let pg: std::net::SocketAddr =
        format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432))
            .parse()
            .unwrap();
    let via = slow_link(pg, Duration::from_millis(1)).await;
    let mut slow_url = url.clone();
    slow_url.set_port(Some(via.port())).unwrap();
    let fipd = Fipd::start(
        &args(data.to_str().unwrap(), slow_url.as_str(), &[]),
        &[
            ("FIPD_LOG", "info,sqlx=warn,sqlx::postgres::notice=trace"),
            ("FIPD_QUOTA_FLOATING_IPS", "-1"),
        ],
    );
    let client = reqwest::Client::new();
    let (_, net) = call(
        &client,
        reqwest::Method::POST,
        format!("{}/v1/networks", fipd.url),
        ADMIN,
        Some(json!({ "name": "n" })),
    )
    .await;
    let (st, _) = call(
        &client,
        reqwest::Method::POST,
        format!("{}/v1/pools", fipd.url),
        ADMIN,
        Some(json!({ "network_id": net["id"], "cidr": "2001:db8::/64" })),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    let t0 = Instant::now();
    let (st, _) = call(
        &client,
        reqwest::Method::POST,
        format!("{}/v1/floating-ips", fipd.url),
        ADMIN,
        Some(json!({ "network_id": net["id"], "project_id": "p" })),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    // A request's duration sets the range of the clients' timeouts.
    let full = t0.elapsed().as_micros() as u64;
    eprintln!("one create takes {full} µs against the slowed database");
    // Fewer at once than the pool has connections, so requests reach
    // their transactions instead of queueing for a connection.
    let limit = Arc::new(tokio::sync::Semaphore::new(12));
    let mut tasks = tokio::task::JoinSet::new();
    let cut = Arc::new(AtomicUsize::new(0));
    for i in 0..1500u64 {
        let permit = limit.clone().acquire_owned().await.unwrap();
        let client = client.clone();
        let url = fipd.url.clone();
        let net = net["id"].clone();
        let cut = cut.clone();
        let full = full.max(1000);
        tasks.spawn(async move {
            // Timeouts spread over a whole request's duration land inside
            // its transactions (their BEGIN included) at every point.
            let timeout = Duration::from_micros(500 + (i * 7919) % (full * 3 / 2));
            let r = client
                .post(format!("{url}/v1/floating-ips"))
                .bearer_auth(ADMIN)
                .timeout(timeout)
                .json(&json!({ "network_id": net, "project_id": "p" }))
                .send()
                .await;
            if r.is_err() {
                cut.fetch_add(1, Ordering::Relaxed);
            }
            drop(permit);
        });
    }
    while tasks.join_next().await.is_some() {}
    let cut = cut.load(Ordering::Relaxed);
    assert!(
        cut > 500,
        "only {cut} requests were cut off: the test would prove nothing"
    );
    // Abandoned requests still run to their end: wait until the database
    // is idle, then use every pooled connection again.
    let store = fipd::store::Store::connect(&db.url).await.unwrap();
    let mut quiet = 0;
    for _ in 0..600 {
        let busy: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND pid <> pg_backend_pid() AND state <> 'idle'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        quiet = if busy == 0 { quiet + 1 } else { 0 };
        if quiet == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut users = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let client = client.clone();
        let url = fipd.url.clone();
        let net = net["id"].clone();
        users.spawn(async move {
            call(
                &client,
                reqwest::Method::POST,
                format!("{url}/v1/floating-ips"),
                ADMIN,
                Some(json!({ "network_id": net, "project_id": "p" })),
            )
            .await
            .0
        });
    }
    while let Some(st) = users.join_next().await {
        assert_eq!(st.unwrap(), StatusCode::CREATED);
    }
    let log = fipd.stderr_so_far();
    let bad: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("transaction in progress"))
        .collect();
    assert!(
        bad.is_empty(),
        "{} notices, e.g. {:?}",
        bad.len(),
        bad.first()
    );
    // A transaction left behind stays open; fipd's own background work
    // (the controller's tick) may be caught between two statements. So
    // count what is still inside the same transaction a second later.
    let open_now = || async {
        let rows: Vec<(i32, String)> = sqlx::query_as(
            "SELECT pid, CAST(xact_start AS TEXT) FROM pg_stat_activity \
             WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        rows
    };
    let before = open_now().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = open_now().await;
    let stale = before.iter().filter(|t| after.contains(t)).count();
    store.close().await;
    assert_eq!(stale, 0, "connections left inside a transaction");
    eprintln!("{cut} of 1500 requests cut off by their client; no transaction left behind");
}

/// Item 6: 200 concurrent long polls from one agent token, a stream of
/// changes to that host's desired state, and 50 other hosts renewing
/// every 300 ms for 30 s: no lease is lost and no request fails with a
/// 5xx. Before the fix every change woke every poll, each wake took the
/// host's row lock while holding a pooled connection, and renewals
/// waited for connections until their leases ran out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewals_never_wait_behind_long_polls() {
    let db = TestDb::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let fipd = Fipd::start(
        &args(
            data.to_str().unwrap(),
            &db.url,
            &["--lease-ttl-ms", "2000", "--fence-grace-ms", "1000"],
        ),
        &[],
    );
    let url = fipd.url.clone();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()
        .unwrap();
    let (_, net) = call(
        &client,
        reqwest::Method::POST,
        format!("{url}/v1/networks"),
        ADMIN,
        Some(json!({ "name": "n" })),
    )
    .await;
    call(
        &client,
        reqwest::Method::POST,
        format!("{url}/v1/pools"),
        ADMIN,
        Some(json!({ "network_id": net["id"], "cidr": "2001:db8::/64" })),
    )
    .await;
    let poller = host_token(&client, &url, "poller").await;
    let mut tokens = vec![poller.clone()];
    for i in 0..50 {
        tokens.push(host_token(&client, &url, &format!("h{i}")).await);
    }
    let vm = |host: &'static str| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let (st, v) = call(
                &client,
                reqwest::Method::POST,
                format!("{url}/v1/instances"),
                ADMIN,
                Some(json!({ "name": "vm", "project_id": "p", "host": host })),
            )
            .await;
            assert_eq!(st, StatusCode::CREATED, "{v}");
            v["id"].as_str().unwrap().to_owned()
        }
    };
    let vm_p = vm("poller").await;
    let vm_0 = vm("h0").await;
    for t in &tokens {
        assert_eq!(renew(&client, &url, t).await, StatusCode::OK);
    }
    let (st, f) = call(
        &client,
        reqwest::Method::POST,
        format!("{url}/v1/floating-ips"),
        ADMIN,
        Some(json!({ "network_id": net["id"], "project_id": "p", "instance_id": vm_p })),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    let fid = f["id"].as_str().unwrap().to_owned();

    let end = Instant::now() + Duration::from_secs(30);
    let server_errors = Arc::new(AtomicUsize::new(0));
    let failed_renewals = Arc::new(AtomicUsize::new(0));
    let slow_renewals = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let (client, url, token, errs) = (
            client.clone(),
            url.clone(),
            poller.clone(),
            server_errors.clone(),
        );
        tasks.spawn(async move {
            let mut after = 0;
            while Instant::now() < end {
                let r = client
                    .get(format!(
                        "{url}/v1/agent/desired-state?after={after}&wait_ms=5000"
                    ))
                    .bearer_auth(&token)
                    .timeout(Duration::from_secs(20))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_server_error() => {
                        errs.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) if r.status().is_success() => {
                        let v: Value = r.json().await.unwrap_or(Value::Null);
                        after = v["revision"].as_i64().unwrap_or(after);
                    }
                    _ => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        });
    }
    for t in tokens {
        let (client, url, failed, errs) = (
            client.clone(),
            url.clone(),
            failed_renewals.clone(),
            server_errors.clone(),
        );
        tasks.spawn(async move {
            while Instant::now() < end {
                let sent = Instant::now();
                let st = renew(&client, &url, &t).await;
                if st.is_server_error() {
                    errs.fetch_add(1, Ordering::Relaxed);
                }
                if st != StatusCode::OK || sent.elapsed() > Duration::from_millis(500) {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep_until((sent + Duration::from_millis(300)).into()).await;
            }
        });
    }
    {
        let (client, url, errs) = (client.clone(), url.clone(), server_errors.clone());
        tasks.spawn(async move {
            let mut on_poller = false;
            while Instant::now() < end {
                let to = if on_poller { &vm_p } else { &vm_0 };
                on_poller = !on_poller;
                let (st, _) = call(
                    &client,
                    reqwest::Method::PATCH,
                    format!("{url}/v1/floating-ips/{fid}"),
                    ADMIN,
                    Some(json!({ "instance_id": to })),
                )
                .await;
                if st.is_server_error() {
                    errs.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }
    // Watch for lost leases while the storm lasts.
    let mut lost: Vec<Value> = Vec::new();
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(500)).await;
        lost.extend(
            hosts(&client, &url)
                .await
                .into_iter()
                .filter(|h| h["state"] != "alive"),
        );
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    assert!(
        lost.is_empty(),
        "{} times a host was lost, e.g. {}",
        lost.len(),
        lost[0]
    );
    assert_eq!(server_errors.load(Ordering::Relaxed), 0, "5xx answers");
    assert_eq!(
        failed_renewals.load(Ordering::Relaxed),
        0,
        "failed renewals"
    );
    // Latency is the benchmark's to judge; printed for the record.
    eprintln!(
        "{} renewals took over 500 ms",
        slow_renewals.load(Ordering::Relaxed)
    );
}
