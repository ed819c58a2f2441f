//! Benchmarks that need no root: API throughput against raw INSERT+COMMIT
//! (figure 3), allocation latency at scale (figure 4) and fipd's memory
//! (figure 6).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;

use crate::fipd::{Fipd, ADMIN};
use crate::report::Row;
use crate::stats::{ms, Samples};

pub struct Opts {
    pub pg_admin_url: String,
    pub quick: bool,
}

/// A scratch PostgreSQL database, dropped at the end.
pub(crate) struct ScratchDb {
    admin: AnyPool,
    name: String,
    pub url: String,
}

impl ScratchDb {
    pub async fn new(admin_url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let admin = AnyPoolOptions::new()
            .max_connections(1)
            .connect(admin_url)
            .await
            .with_context(|| format!("connecting to {admin_url}"))?;
        let name = format!("fip_bench_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await?;
        let base = admin_url.rsplit_once('/').map_or(admin_url, |(b, _)| b);
        Ok(Self {
            url: format!("{base}/{name}"),
            admin,
            name,
        })
    }

    pub async fn drop_db(self) {
        let _ = sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&self.admin)
        .await;
    }
}

#[derive(Clone)]
pub(crate) struct Api {
    pub http: reqwest::Client,
    pub url: String,
}

impl Api {
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(ADMIN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await?;
        let status = r.status();
        let text = r.text().await?;
        if !status.is_success() {
            bail!("{path}: {status}: {text}");
        }
        Ok(if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        })
    }

    async fn setup(&self, cidr: &str, instances: usize) -> Result<(String, Vec<String>)> {
        let net = self
            .call(
                reqwest::Method::POST,
                "/v1/networks",
                Some(json!({ "name": "bench" })),
            )
            .await?;
        let pool = self
            .call(
                reqwest::Method::POST,
                "/v1/pools",
                Some(json!({ "network_id": net["id"], "cidr": cidr })),
            )
            .await?;
        self.call(
            reqwest::Method::POST,
            "/v1/hosts",
            Some(json!({ "name": "bench-host" })),
        )
        .await?;
        let mut vms = Vec::new();
        for i in 0..instances {
            let vm = self
                .call(
                    reqwest::Method::POST,
                    "/v1/instances",
                    Some(json!({ "name": format!("vm{i}"), "project_id": "bench", "host": "bench-host" })),
                )
                .await?;
            vms.push(vm["id"].as_str().unwrap_or_default().to_owned());
        }
        Ok((pool["id"].as_str().unwrap_or_default().to_owned(), vms))
    }
}

/// allocate → associate → disassociate → delete, by `n` clients for `dur`.
/// Returns (requests per second, request latencies).
async fn lifecycle_load(
    api: Arc<Api>,
    pool: String,
    vms: Vec<String>,
    n: usize,
    dur: Duration,
) -> Result<(f64, Samples)> {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for vm in vms.into_iter().take(n) {
        let api = api.clone();
        let pool = pool.clone();
        tasks.spawn(async move {
            let mut lat = Samples::default();
            let mut requests = 0u64;
            while started.elapsed() < dur {
                let t = Instant::now();
                let f = api
                    .call(
                        reqwest::Method::POST,
                        "/v1/floating-ips",
                        Some(json!({ "pool_id": pool, "project_id": "bench" })),
                    )
                    .await?;
                lat.push(t.elapsed());
                let path = format!("/v1/floating-ips/{}", f["id"].as_str().unwrap_or_default());
                for body in [json!({ "instance_id": vm }), json!({ "instance_id": null })] {
                    let t = Instant::now();
                    api.call(reqwest::Method::PATCH, &path, Some(body)).await?;
                    lat.push(t.elapsed());
                }
                let t = Instant::now();
                api.call(reqwest::Method::DELETE, &path, None).await?;
                lat.push(t.elapsed());
                requests += 4;
            }
            anyhow::Ok((requests, lat))
        });
    }
    let mut total = 0u64;
    let mut all = Samples::default();
    while let Some(r) = tasks.join_next().await {
        let (n, lat) = r??;
        total += n;
        all.extend(lat);
    }
    Ok((total as f64 / started.elapsed().as_secs_f64(), all))
}

/// Single-row INSERT+COMMIT by `n` concurrent connections for `dur`:
/// the write rate the database itself sustains.
async fn raw_insert_rate(url: &str, n: usize, dur: Duration) -> Result<f64> {
    let pool = AnyPoolOptions::new()
        .max_connections(n as u32)
        .connect(url)
        .await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS bench_raw (id TEXT PRIMARY KEY, v BIGINT NOT NULL)")
        .execute(&pool)
        .await?;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let pool = pool.clone();
        tasks.spawn(async move {
            let mut count = 0u64;
            while started.elapsed() < dur {
                sqlx::query("INSERT INTO bench_raw (id, v) VALUES ($1, $2)")
                    .bind(uuid::Uuid::new_v4().to_string())
                    .bind(count as i64)
                    .execute(&pool)
                    .await?;
                count += 1;
            }
            anyhow::Ok(count)
        });
    }
    let mut total = 0;
    while let Some(r) = tasks.join_next().await {
        total += r??;
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    pool.close().await;
    Ok(rate)
}

/// Figure 3 (PostgreSQL and SQLite) and figure 6 (fipd memory).
pub async fn throughput(opts: &Opts, rows: &mut Vec<Row>) -> Result<()> {
    let dur = Duration::from_secs(if opts.quick { 1 } else { 10 });
    let clients: &[usize] = if opts.quick { &[1, 8] } else { &[1, 8, 64] };
    let max_n = *clients.iter().max().unwrap_or(&1);
    for backend in ["postgres", "sqlite"] {
        let dir = tempdir()?;
        let db = if backend == "postgres" {
            Some(ScratchDb::new(&opts.pg_admin_url).await?)
        } else {
            None
        };
        let fipd = Fipd::start(&dir, db.as_ref().map(|d| d.url.as_str()), &[])?;
        let api = Arc::new(Api {
            http: reqwest::Client::new(),
            url: fipd.url.clone(),
        });
        let (pool, vms) = api.setup("2001:db8:100::/64", max_n).await?;
        if backend == "postgres" {
            let idle = fipd.peak_rss_mib()?;
            rows.push(Row {
                figure: "6. fipd peak RSS, idle (PostgreSQL)".into(),
                ours: idle,
                baseline: None,
                unit: "MiB",
                target: "≤ 50 MB".into(),
                met: Some(idle <= 50.0 * 1e6 / (1024.0 * 1024.0)),
            });
            crate::report::print(rows.last().unwrap());
        }
        for &n in clients {
            let (rate, lat) =
                lifecycle_load(api.clone(), pool.clone(), vms.clone(), n, dur).await?;
            let baseline_url = match &db {
                Some(d) => d.url.clone(),
                None => format!("sqlite://{}?mode=rwc", dir.join("raw.db").display()),
            };
            let base = if backend == "sqlite" {
                // One writer, as fipd's SQLite store has.
                raw_insert_rate(&baseline_url, 1, dur).await?
            } else {
                raw_insert_rate(&baseline_url, n, dur).await?
            };
            let ratio = rate / base;
            rows.push(Row {
                figure: format!(
                    "3. API requests/s, lifecycle, {backend}, N={n} (p50 {:.1} ms, p99 {:.1} ms)",
                    ms(lat.percentile(50.0)),
                    ms(lat.percentile(99.0))
                ),
                ours: rate,
                baseline: Some(base),
                unit: "req/s",
                target: if backend == "postgres" && n == 64 {
                    "≥ 0.5× INSERT+COMMIT".into()
                } else {
                    "-".into()
                },
                met: (backend == "postgres" && n == 64).then_some(ratio >= 0.5),
            });
            crate::report::print(rows.last().unwrap());
        }
        if backend == "postgres" {
            let peak = fipd.peak_rss_mib()?;
            rows.push(Row {
                figure: "6. fipd peak RSS under figure 3 load (PostgreSQL)".into(),
                ours: peak,
                baseline: None,
                unit: "MiB",
                target: "≤ 150 MB".into(),
                met: Some(peak <= 150.0 * 1e6 / (1024.0 * 1024.0)),
            });
            crate::report::print(rows.last().unwrap());
        }
        fipd.stop();
        if let Some(db) = db {
            db.drop_db().await;
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// Figure 4: allocation latency with 1,000 and with 1,000,000 addresses
/// already allocated in one /64 (bulk-loaded through SQL).
pub async fn allocation_at_scale(opts: &Opts, rows: &mut Vec<Row>) -> Result<()> {
    let big = if opts.quick { 20_000 } else { 1_000_000 };
    let samples = if opts.quick { 50 } else { 500 };
    let mut p50 = Vec::new();
    for preload in [1_000usize, big] {
        let dir = tempdir()?;
        let db = ScratchDb::new(&opts.pg_admin_url).await?;
        let fipd = Fipd::start(&dir, Some(&db.url), &[])?;
        let api = Api {
            http: reqwest::Client::new(),
            url: fipd.url.clone(),
        };
        let (pool, _) = api.setup("2001:db8:100::/64", 0).await?;
        let sql = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&db.url)
            .await?;
        bulk_load(&sql, &pool, preload).await?;
        let mut lat = Samples::default();
        for _ in 0..samples {
            let t = Instant::now();
            api.call(
                reqwest::Method::POST,
                "/v1/floating-ips",
                Some(json!({ "pool_id": pool, "project_id": "bench" })),
            )
            .await?;
            lat.push(t.elapsed());
        }
        p50.push((preload, lat.percentile(50.0), lat.percentile(99.0)));
        sql.close().await;
        fipd.stop();
        db.drop_db().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
    let (small, big) = (&p50[0], &p50[1]);
    let ratio = ms(big.1) / ms(small.1);
    rows.push(Row {
        figure: format!(
            "4. allocation p50 with {} vs {} allocated in a /64 (p99 {:.1} vs {:.1} ms)",
            big.0,
            small.0,
            ms(big.2),
            ms(small.2)
        ),
        ours: ms(big.1),
        baseline: Some(ms(small.1)),
        unit: "ms",
        target: "ratio ≤ 2".into(),
        met: Some(ratio <= 2.0),
    });
    crate::report::print(rows.last().unwrap());
    Ok(())
}

/// Inserts `n` allocations with pseudo-random interface IDs into the pool.
async fn bulk_load(sql: &AnyPool, pool_id: &str, n: usize) -> Result<()> {
    let started = Instant::now();
    // Interface IDs from md5 are spread over the /64 like random draws;
    // the first hex digit is forced to 0 to stay clear of the reserved
    // anycast blocks at the top of the /64.
    let q = "INSERT INTO floating_ips (id, network_id, pool_id, address, address_key, project_id, \
             description, status, revision, created_at, updated_at) \
             SELECT md5('id' || i), p.network_id, p.id, \
                    '2001:db8:100:0:' || substr(iid, 1, 4) || ':' || substr(iid, 5, 4) || ':' \
                      || substr(iid, 9, 4) || ':' || substr(iid, 13, 4), \
                    '20010db801000000' || iid, 'bulk', '', 'DOWN', 1, 0, 0 \
             FROM pools p, (SELECT i, '0' || substr(md5(i::text), 2, 15) AS iid \
                            FROM generate_series(1, $2) AS i) g \
             WHERE p.id = $1 ON CONFLICT DO NOTHING";
    sqlx::query(q)
        .bind(pool_id)
        .bind(n as i64)
        .execute(sql)
        .await?;
    sqlx::query("ANALYZE floating_ips").execute(sql).await?;
    eprintln!(
        "bulk-loaded {n} allocations in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

pub(crate) fn tempdir() -> Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("fip-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
