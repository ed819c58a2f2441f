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
use crate::fipd::{die_with_us, peak_rss_mib};

/// See the wait after the baseline in `run`: robustness (2) reports at the
/// unsolicited report interval (1 s), with room to spare.
const MLD_QUIET: Duration = Duration::from_secs(8);

/// The agent is stopped when its peak RSS passes this (the target is 20 MB).
const RSS_LIMIT_MIB: f64 = 4096.0;

pub struct Scale {
    pub n: usize,
    /// `ip -batch` start → no address tentative.
    pub ip_batch_ms: f64,
    /// Bindings on A reported active when we stopped waiting.
    pub active: usize,
    /// Agent start → the last binding reported active (or, when not all
    /// became active, how long we waited).
    pub agent_ms: f64,
    /// The restart, when all N became active first.
    pub adopt: Option<Adopt>,
    /// VmHWM of the agent that applied the N addresses.
    pub rss_mib: f64,
}

pub struct Adopt {
    /// Restarted agent start → every binding reported again, active (or
    /// how long we waited when not all did).
    pub ms: f64,
    /// Bindings reported active again by the restarted agent.
    pub reported: usize,
    /// RTM_DELADDR seen on A's eth0 across the restart.
    pub deletes: usize,
    pub rss_mib: f64,
    /// The self-fence that followed, when it ran.
    pub fence: Option<Fence>,
}

/// The restarted agent, cut off fipd with its N addresses, fences itself.
pub struct Fence {
    /// Lease end (by the agent's clock) → the last address gone: when the
    /// fence began after the lease's end, plus how long its removal took,
    /// both from the agent's own log line.
    pub ms: f64,
    pub late_ms: f64,
    pub removed: usize,
    /// Floating addresses left in A's kernel afterwards (by `ip`).
    pub left: usize,
    /// The fence grace fipd ran with; the fence must end within it.
    pub grace_ms: f64,
}

/// A field `key=VALUE` of a tracing line.
fn field(line: &str, key: &str) -> Option<f64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.trim_matches(|c: char| !c.is_ascii_digit()).parse().ok())
}

/// Cuts A off (frames dropped, carrier up), waits for its agent's fence
/// and reads its figures; A is reconnected before this returns.
async fn fence(topo: &Topo, log: &std::path::Path, grace_ms: u64, lease_ms: u64) -> Result<Fence> {
    topo.cut_off(&topo.a, fip_testkit::Cut::Frames)?;
    let r = async {
        let deadline = Instant::now() + Duration::from_millis(lease_ms) + Duration::from_secs(60);
        let line = loop {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if let Some(l) = text.lines().find(|l| l.contains("fenced: removed")) {
                break l.to_owned();
            }
            if Instant::now() > deadline {
                bail!("the agent did not fence itself within the lease + 60 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let took = field(&line, "took_ms").context("no took_ms in the fence's log line")?;
        let late = field(&line, "late_ms").unwrap_or(0.0);
        let removed = field(&line, "removed").unwrap_or(0.0) as usize;
        let (left, _) = count_addrs(&topo.a.ns)?;
        eprintln!("figure 7: {line}");
        Ok(Fence {
            ms: late + took,
            late_ms: late,
            removed,
            left,
            grace_ms: grace_ms as f64,
        })
    }
    .await;
    topo.reconnect(&topo.a)?;
    r
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

/// The earliest reported_at of `host`'s bindings.
fn bindings_first_report(fips: &[Value], host: &str) -> Option<f64> {
    bindings_on(fips, host)
        .into_iter()
        .filter_map(|(_, t)| t)
        .reduce(f64::min)
}

/// `ip -n NS monitor address`, counting deletions on eth0.
struct DelMonitor {
    child: Child,
    deletes: Arc<AtomicUsize>,
}

impl DelMonitor {
    fn start(ns: &str) -> Result<Self> {
        let mut child = die_with_us(&mut Command::new("ip"))
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
    let opts = cluster::Opts::default();
    let c = Cluster::new(topo, &opts).await?;
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
    // Leaving N solicited-node groups leaves N MLDv2 records behind until
    // they have been reported; every join walks them and pushes that report
    // back, so adding N addresses right after deleting N is quadratic in
    // the kernel whoever adds them (2,000 adds: 15 s instead of 0.5 s with
    // `ip -batch`). A quiet spell lets the records drain.
    std::thread::sleep(MLD_QUIET);

    // Ours: the agent starts with N addresses in its desired state.
    let t0 = wall_ms();
    let agent = c.start_agent(&topo.a, &c.token_a, "scale")?;
    let limit = Duration::from_secs(180);
    let deadline = Instant::now() + limit;
    // Where the time goes, seen from A's kernel: when all N were added,
    // when DAD was over for all of them (to the poll's 50 ms).
    let (mut all_added, mut dad_over) = (None, None);
    loop {
        let (all, tentative) = count_addrs(&topo.a.ns)?;
        if all >= n && all_added.is_none() {
            all_added = Some(wall_ms() - t0);
        }
        if all >= n && tentative == 0 && dad_over.is_none() {
            dad_over = Some(wall_ms() - t0);
        }
        if none_in(&c, "PENDING").await?
            && none_in(&c, "DOWN").await?
            && none_in(&c, "ERROR").await?
        {
            break;
        }
        if Instant::now() > deadline {
            break;
        }
        // A bound on what a runaway agent may take from the machine.
        if peak_rss_mib(agent.pid()).is_ok_and(|m| m > RSS_LIMIT_MIB) {
            eprintln!("figure 5: the agent passed {RSS_LIMIT_MIB} MiB; stopping it");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let waited = wall_ms() - t0;
    let fips = all_fips(&c).await?;
    let on_a = bindings_on(&fips, &topo.a.name);
    let active = on_a.iter().filter(|(s, _)| s == "active").count();
    let rss_mib = peak_rss_mib(agent.pid())?;
    let kernel = format!(
        "all {n} in the kernel {}, DAD over for all {}",
        all_added.map_or("never".into(), |t| format!("at {t:.0}")),
        dad_over.map_or("never".into(), |t| format!("at {t:.0}"))
    );
    if active < n {
        let sample = fips
            .iter()
            .find(|f| cluster::binding(f, &topo.a.name).is_none_or(|b| b["state"] != "active"))
            .map(|f| {
                format!(
                    "status {} ({}), binding {}",
                    f["status"],
                    f["status_detail"],
                    cluster::binding(f, &topo.a.name)
                        .cloned()
                        .unwrap_or_default()
                )
            })
            .unwrap_or_default();
        eprintln!(
            "figure 5: only {active} of {n} active after {waited:.0} ms ({kernel}); one that is not: {sample}"
        );
        drop(agent);
        flush(topo);
        return Ok(Scale {
            n,
            ip_batch_ms,
            active,
            agent_ms: waited,
            adopt: None,
            rss_mib,
        });
    }
    let last = on_a.iter().filter_map(|(_, t)| *t).fold(f64::MIN, f64::max);
    let agent_ms = last - t0;
    let first = bindings_first_report(&fips, &topo.a.name);
    eprintln!(
        "figure 5 breakdown (ms from the agent's start): first active report {:.0}, {kernel}, last active report {agent_ms:.0}",
        first.map_or(f64::NAN, |t| t - t0),
    );
    // The floating IP reported last: its timeline says whether the tail is
    // the agent (late observed_at) or the report path (late `at`).
    if let Some(f) = fips.iter().max_by(|x, y| {
        let t = |f: &Value| {
            cluster::binding(f, &topo.a.name)
                .and_then(|b| ms_of(&b["reported_at"]))
                .unwrap_or(f64::MIN)
        };
        t(x).total_cmp(&t(y))
    }) {
        let id = f["id"].as_str().unwrap_or_default();
        let mut line = String::from("figure 5, the last one reported (ms from the agent's start):");
        for e in c.events(id).await? {
            let at = ms_of(&e["at"]).map_or(f64::NAN, |t| t - t0);
            let seen = ms_of(&e["detail"]["observed_at"]).map(|t| t - t0);
            line.push_str(&format!(
                " {} at {at:.0}{}",
                e["kind"].as_str().unwrap_or("?"),
                seen.map_or(String::new(), |s| format!(" (agent {s:.0})"))
            ));
        }
        eprintln!("{line}");
    }

    // Restart: the new agent adopts what the kernel holds.
    let mon = DelMonitor::start(&topo.a.ns)?;
    agent.stop();
    let t1 = wall_ms();
    let agent2 = c.start_agent(&topo.a, &c.token_a, "adopt")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let (adopt_ms, reported) = loop {
        let fips = all_fips(&c).await?;
        let on_a = bindings_on(&fips, &topo.a.name);
        let fresh: Vec<f64> = on_a
            .iter()
            .filter(|(s, _)| s == "active")
            .filter_map(|(_, t)| t.filter(|t| *t > t1))
            .collect();
        if fresh.len() == n || Instant::now() > deadline {
            let last = fresh.iter().copied().fold(f64::MIN, f64::max);
            break (
                if fresh.len() == n {
                    last - t1
                } else {
                    wall_ms() - t1
                },
                fresh.len(),
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Late deletions would show up here too.
    std::thread::sleep(Duration::from_millis(300));
    let deletes = mon.count();
    let rss_adopt_mib = peak_rss_mib(agent2.pid())?;
    // Figure 7: with all N held, the agent fences itself once its lease
    // runs out (issue 10 item 2).
    let fenced = if reported == n {
        match fence(topo, &agent2.log, opts.fence_grace_ms, opts.lease_ttl_ms).await {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("figure 7 failed: {e:#}");
                None
            }
        }
    } else {
        None
    };
    drop(agent2);
    flush(topo);
    Ok(Scale {
        n,
        ip_batch_ms,
        active,
        agent_ms,
        adopt: Some(Adopt {
            ms: adopt_ms,
            reported,
            deletes,
            rss_mib: rss_adopt_mib,
            fence: fenced,
        }),
        rss_mib,
    })
}

/// The kernel keeps the addresses after the agent (their lifetimes end
/// them); remove them so whatever runs next starts clean.
fn flush(topo: &Topo) {
    let _ = ip(&[
        "-n", &topo.a.ns, "-6", "addr", "flush", "dev", DEV, "scope", "global",
    ]);
}
