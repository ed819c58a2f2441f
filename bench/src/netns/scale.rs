//! Figures 5 and 6 (agent part): one agent applying N floating IPs on A,
//! against `ip -batch` adding the same N addresses on the same interface;
//! then an agent restart that must adopt all N without a delete; the
//! agent's peak RSS.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use reqwest::Method;
use serde_json::Value;

use super::cluster::{self, ms_of, Cluster};
use super::probe::wall_ms;
use super::topology::{ip, Topo, DEV};
use crate::fipd::peak_rss_mib;

pub struct Scale {
    pub n: usize,
    /// `ip -batch` start → no address tentative.
    pub ip_batch_ms: f64,
    /// Agent start → the last binding reported active.
    pub agent_ms: f64,
    /// Restarted agent start → every binding reported again, active.
    pub adopt_ms: f64,
    /// RTM_DELADDR seen on A's eth0 across the restart.
    pub deletes: usize,
    /// VmHWM of the agent that applied the N addresses, and of the one
    /// that adopted them.
    pub rss_mib: f64,
    pub rss_adopt_mib: f64,
}

/// Every floating IP of the cluster (paged).
async fn all_fips(c: &Cluster) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..1_000 {
        let path = match &token {
            Some(t) => format!("/v1/floating-ips?limit=1000&page_token={t}"),
            None => "/v1/floating-ips?limit=1000".to_owned(),
        };
        let page = c.api.call(Method::GET, &path, None).await?;
        out.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_page_token"].as_str() {
            Some(t) if !t.is_empty() => token = Some(t.to_owned()),
            _ => return Ok(out),
        }
    }
    bail!("more than 1,000 pages of floating IPs")
}

/// Whether no floating IP is in `status` (one cheap filtered query).
async fn none_in(c: &Cluster, status: &str) -> Result<bool> {
    let page = c
        .api
        .call(
            Method::GET,
            &format!("/v1/floating-ips?status={status}&limit=1"),
            None,
        )
        .await?;
    Ok(page["items"].as_array().is_none_or(|v| v.is_empty()))
}

/// For every floating IP, A's binding's state and reported_at (ms).
fn bindings_on(fips: &[Value], host: &str) -> Vec<(String, Option<f64>)> {
    fips.iter()
        .map(|f| {
            cluster::binding(f, host).map_or((String::new(), None), |b| {
                (
                    b["state"].as_str().unwrap_or_default().to_owned(),
                    ms_of(&b["reported_at"]),
                )
            })
        })
        .collect()
}

/// `ip -n NS monitor address`, counting deletions on eth0.
struct DelMonitor {
    child: Child,
    deletes: Arc<AtomicUsize>,
}

impl DelMonitor {
    fn start(ns: &str) -> Result<Self> {
        let mut child = Command::new("ip")
            .args(["-n", ns, "monitor", "address"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting ip monitor")?;
        let stdout = child.stdout.take().expect("piped");
        let deletes = Arc::new(AtomicUsize::new(0));
        let d = deletes.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("Deleted") && line.contains(DEV) {
                    d.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        // ip subscribes before it prints anything; give it a moment.
        std::thread::sleep(Duration::from_millis(200));
        Ok(DelMonitor { child, deletes })
    }

    fn count(&self) -> usize {
        self.deletes.load(Ordering::Relaxed)
    }
}

impl Drop for DelMonitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `ip -n NS -batch FILE` with `cmds`.
fn ip_batch(ns: &str, dir: &std::path::Path, name: &str, cmds: &str) -> Result<()> {
    let p = dir.join(name);
    std::fs::write(&p, cmds)?;
    let path = p.to_string_lossy().into_owned();
    ip(&["-n", ns, "-batch", &path]).map(drop)
}

/// Counts (all, tentative) global addresses on A's eth0.
fn count_addrs(ns: &str) -> Result<(usize, usize)> {
    let out = ip(&[
        "-n", ns, "-6", "-o", "addr", "show", "dev", DEV, "scope", "global",
    ])?;
    let all = out.lines().count();
    let tentative = out.lines().filter(|l| l.contains("tentative")).count();
    Ok((all, tentative))
}

pub async fn run(topo: &Topo, n: usize) -> Result<Scale> {
    let mut c = Cluster::new(topo, &cluster::Opts::default()).await?;
    // N floating IPs on A's instance while A's agent is not running:
    // creating them is not part of the measurement.
    let created = Instant::now();
    let api = Arc::new(c.api.clone());
    let mut tasks = tokio::task::JoinSet::new();
    let workers = 16;
    for w in 0..workers {
        let api = api.clone();
        let (net, vm) = (c.net_id.clone(), c.vm_a.clone());
        tasks.spawn(async move {
            for _ in (w..n).step_by(workers) {
                api.call(
                    Method::POST,
                    "/v1/floating-ips",
                    Some(serde_json::json!({ "network_id": net, "project_id": "bench", "instance_id": vm })),
                )
                .await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    eprintln!(
        "created {n} floating IPs on host-a in {:.1} s",
        created.elapsed().as_secs_f64()
    );
    let fips = all_fips(&c).await?;
    if fips.len() != n {
        bail!("expected {n} floating IPs, fipd lists {}", fips.len());
    }
    let addrs: Vec<String> = fips
        .iter()
        .filter_map(|f| f["address"].as_str().map(str::to_owned))
        .collect();

    // Baseline: the same addresses through `ip -batch` on the same eth0.
    let adds: String = addrs
        .iter()
        .map(|a| format!("addr add {a}/64 dev {DEV}\n"))
        .collect();
    let dels: String = addrs
        .iter()
        .map(|a| format!("addr del {a}/64 dev {DEV}\n"))
        .collect();
    let t = Instant::now();
    ip_batch(&topo.a.ns, &c.dir, "add.batch", &adds)?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (all, tentative) = count_addrs(&topo.a.ns)?;
        if all >= n && tentative == 0 {
            break;
        }
        if Instant::now() > deadline {
            bail!("ip -batch: {tentative} of {all} addresses still tentative after 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let ip_batch_ms = t.elapsed().as_secs_f64() * 1000.0;
    ip_batch(&topo.a.ns, &c.dir, "del.batch", &dels)?;
    if count_addrs(&topo.a.ns)?.0 != 0 {
        bail!("the baseline's addresses did not all go away");
    }

    // Ours: the agent starts with N addresses in its desired state.
    let t0 = wall_ms();
    let agent = c.start_agent(&topo.a, &c.token_a, "scale")?;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if none_in(&c, "PENDING").await? && none_in(&c, "DOWN").await? {
            break;
        }
        if Instant::now() > deadline {
            bail!("the agent did not make {n} addresses active within 180 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fips = all_fips(&c).await?;
    let on_a = bindings_on(&fips, &topo.a.name);
    let not_active = on_a.iter().filter(|(s, _)| s != "active").count();
    if not_active > 0 {
        bail!("{not_active} of {n} bindings on A are not active");
    }
    let last = on_a.iter().filter_map(|(_, t)| *t).fold(f64::MIN, f64::max);
    let agent_ms = last - t0;
    let rss_mib = peak_rss_mib(agent.pid())?;

    // Restart: the new agent adopts what the kernel holds.
    let mon = DelMonitor::start(&topo.a.ns)?;
    agent.stop();
    let t1 = wall_ms();
    let agent2 = c.start_agent(&topo.a, &c.token_a, "adopt")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let adopt_ms = loop {
        let fips = all_fips(&c).await?;
        let on_a = bindings_on(&fips, &topo.a.name);
        if on_a
            .iter()
            .all(|(s, t)| s == "active" && t.is_some_and(|t| t > t1))
        {
            let last = on_a.iter().filter_map(|(_, t)| *t).fold(f64::MIN, f64::max);
            break last - t1;
        }
        if Instant::now() > deadline {
            let fresh = on_a
                .iter()
                .filter(|(_, t)| t.is_some_and(|t| t > t1))
                .count();
            bail!("after the restart only {fresh} of {n} bindings reported again within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Late deletions would show up here too.
    std::thread::sleep(Duration::from_millis(300));
    let deletes = mon.count();
    let rss_adopt_mib = peak_rss_mib(agent2.pid())?;
    drop(agent2);
    c.agents.clear();
    // The kernel keeps the addresses after the agent (their lifetimes end
    // them); remove them now so the next figure starts clean.
    let _ = ip(&[
        "-n", &topo.a.ns, "-6", "addr", "flush", "dev", DEV, "scope", "global",
    ]);
    Ok(Scale {
        n,
        ip_batch_ms,
        agent_ms,
        adopt_ms,
        deletes,
        rss_mib,
        rss_adopt_mib,
    })
}
