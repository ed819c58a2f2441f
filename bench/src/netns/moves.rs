//! Planned moves A → B → A …: ours through the API (figures 1 and 2), the
//! plain-`ip` sequence and keepalived's planned switchover (figure 1's
//! baselines), all watched by C's prober on the same topology.

use std::net::Ipv6Addr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;

use super::cluster::{self, binding, find_event, ms_of, Cluster};
use super::keepalived::{self, Keepalived};
use super::probe::{analyse, wall_ms, Outage, Prober, Responders};
use super::topology::{ip, wait_for, Host, Topo, DEV};

/// The address the baselines move (fipd's clusters are gone by then).
pub const BASELINE_F: &str = "2001:db8:100::f0";
/// Replies in a row from the new holder that end a switchover.
const STEADY: usize = 5;

/// What a series of moves measured.
#[derive(Debug, Default)]
pub struct Moves {
    pub outages: Vec<Outage>,
    /// The kernel's DAD time on the new holder, per move (agents' dad_ms).
    pub dad_ms: Vec<f64>,
    /// PATCH response → the new holder's add (dad_started observed_at).
    pub to_kernel_ms: Vec<f64>,
    /// Moves without the events needed for `to_kernel_ms`.
    pub missing_events: usize,
}

impl Moves {
    pub fn gaps(&self) -> Vec<f64> {
        self.outages.iter().map(|o| o.gap_ms).collect()
    }
    pub fn violations(&self) -> usize {
        self.outages.iter().map(|o| o.violations).sum()
    }
    pub fn censored(&self) -> usize {
        self.outages.iter().filter(|o| o.censored).count()
    }
}

/// The hosts of move `i`: A → B on even moves, B → A on odd ones.
fn pair(topo: &Topo, i: usize) -> (&Host, &Host) {
    if i.is_multiple_of(2) {
        (&topo.a, &topo.b)
    } else {
        (&topo.b, &topo.a)
    }
}

/// Waits until C hears `h` steadily; false after `within`.
fn steady(prober: &Prober, h: &Host, since: f64, within: Duration) -> bool {
    prober.wait_steady(&h.name, since, STEADY, within)
}

/// Ours: `moves` PATCHes of F between instances on A and B.
pub async fn ours(topo: &Topo, opts: &cluster::Opts, moves: usize, cap: Duration) -> Result<Moves> {
    let mut c = Cluster::new(topo, opts).await?;
    c.start_agents(topo).await?;
    let (id, addr) = c.create_fip(&c.vm_a).await?;
    c.wait_active_on(&id, &topo.a.name, Duration::from_secs(20))
        .await?;
    let f: Ipv6Addr = addr.parse()?;
    let _responders = Responders::start(&[&topo.a, &topo.b], f)?;
    let prober = Prober::start(&topo.c, f)?;
    if !steady(&prober, &topo.a, 0.0, Duration::from_secs(10)) {
        bail!("C does not reach F ({addr}) on A");
    }
    let mut out = Moves::default();
    for i in 0..moves {
        let (from, to) = pair(topo, i);
        let vm = if i.is_multiple_of(2) {
            &c.vm_b
        } else {
            &c.vm_a
        };
        let t0 = wall_ms();
        let resp = c.patch(&id, json!({ "instance_id": vm })).await?;
        let t_resp = wall_ms();
        let rev = resp["revision"]
            .as_i64()
            .ok_or_else(|| anyhow!("no revision in {resp}"))?;
        let fip = c
            .wait_active_on(&id, &to.name, Duration::from_secs(20))
            .await?;
        if let Some(d) = binding(&fip, &to.name).and_then(|b| b["dad_ms"].as_f64()) {
            out.dad_ms.push(d);
        }
        steady(&prober, to, t0, cap);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let end = wall_ms();
        let ev = c.events(&id).await?;
        let released =
            find_event(&ev, "removal_confirmed", &from.name, rev).and_then(|e| ms_of(&e["at"]));
        let added = find_event(&ev, "dad_started", &to.name, rev)
            .or_else(|| find_event(&ev, "add_started", &to.name, rev))
            .and_then(|e| ms_of(&e["detail"]["observed_at"]));
        match added {
            Some(t) => out.to_kernel_ms.push(t - t_resp),
            None => out.missing_events += 1,
        }
        out.outages.push(analyse(
            &prober.replies(),
            &from.name,
            &to.name,
            t0,
            end,
            released,
        ));
    }
    Ok(out)
}

/// Ours on PostgreSQL with `replicas` fipd processes: with two, the PATCH
/// goes to the first and both agents talk to the second (figure 2).
pub async fn ours_on_postgres(
    topo: &Topo,
    admin_url: &str,
    replicas: usize,
    moves: usize,
    cap: Duration,
) -> Result<Moves> {
    let db = crate::api::ScratchDb::new(admin_url)
        .await
        .context("PostgreSQL for the two-replica run")?;
    let opts = cluster::Opts {
        database_url: Some(db.url.clone()),
        replicas,
        ..cluster::Opts::default()
    };
    let r = ours(topo, &opts, moves, cap).await;
    db.drop_db().await;
    r
}

/// Adds F to `h` the plain way and waits until DAD is over.
fn ip_add(h: &Host, f: &str) -> Result<()> {
    ip(&[
        "-n",
        &h.ns,
        "-6",
        "addr",
        "add",
        &format!("{f}/64"),
        "dev",
        DEV,
    ])?;
    let mut err = None;
    wait_for("F not tentative", Duration::from_secs(10), || {
        match h.holds_usable(f) {
            Ok(v) => v,
            Err(e) => {
                err = Some(e);
                true
            }
        }
    })?;
    err.map_or(Ok(()), Err)
}

fn ip_del(h: &Host, f: &str) -> Result<()> {
    ip(&[
        "-n",
        &h.ns,
        "-6",
        "addr",
        "del",
        &format!("{f}/64"),
        "dev",
        DEV,
    ])
    .map(drop)
}

/// Removes F from both hosts, whatever holds it.
fn ip_clear(topo: &Topo, f: &str) {
    for h in [&topo.a, &topo.b] {
        if h.holds(f).unwrap_or(false) {
            let _ = ip_del(h, f);
        }
    }
}

/// Baseline: `ip addr del` on the old host, `ip addr add` on the new one,
/// wait until not tentative; no NA. C finds the new holder only when its
/// neighbour entry for F expires.
pub fn ip_sequence(topo: &Topo, moves: usize, cap: Duration) -> Result<Moves> {
    let f: Ipv6Addr = BASELINE_F.parse()?;
    ip_clear(topo, BASELINE_F);
    let r = ip_sequence_inner(topo, f, moves, cap);
    ip_clear(topo, BASELINE_F);
    r
}

fn ip_sequence_inner(topo: &Topo, f: Ipv6Addr, moves: usize, cap: Duration) -> Result<Moves> {
    ip_add(&topo.a, BASELINE_F)?;
    let _responders = Responders::start(&[&topo.a, &topo.b], f)?;
    let prober = Prober::start(&topo.c, f)?;
    if !steady(&prober, &topo.a, 0.0, Duration::from_secs(10)) {
        bail!("C does not reach {BASELINE_F} on A");
    }
    let mut out = Moves::default();
    for i in 0..moves {
        let (from, to) = pair(topo, i);
        let t0 = wall_ms();
        ip_del(from, BASELINE_F)?;
        let released = wall_ms();
        ip_add(to, BASELINE_F)?;
        steady(&prober, to, t0, cap);
        std::thread::sleep(Duration::from_millis(100));
        let end = wall_ms();
        out.outages.push(analyse(
            &prober.replies(),
            &from.name,
            &to.name,
            t0,
            end,
            Some(released),
        ));
    }
    Ok(out)
}

/// Baseline: keepalived VRRPv3 (`advert_int 0.1`) on A and B; each move
/// stops keepalived on the holder and starts it again as backup.
pub fn keepalived_planned(
    bin: &std::path::Path,
    topo: &Topo,
    moves: usize,
    cap: Duration,
) -> Result<Moves> {
    let f: Ipv6Addr = BASELINE_F.parse()?;
    let dir = crate::api::tempdir()?;
    ip_clear(topo, BASELINE_F);
    let r = keepalived_planned_inner(bin, topo, f, moves, cap, &dir);
    ip_clear(topo, BASELINE_F);
    let _ = std::fs::remove_dir_all(&dir);
    r
}

fn keepalived_planned_inner(
    bin: &std::path::Path,
    topo: &Topo,
    f: Ipv6Addr,
    moves: usize,
    cap: Duration,
    dir: &std::path::Path,
) -> Result<Moves> {
    let conf_a = keepalived::config(dir, &topo.a, 150, "0.1", BASELINE_F)?;
    let conf_b = keepalived::config(dir, &topo.b, 100, "0.1", BASELINE_F)?;
    let _responders = Responders::start(&[&topo.a, &topo.b], f)?;
    let prober = Prober::start(&topo.c, f)?;
    // A first, alone, so it becomes master; then B joins as backup.
    let mut ka = Some(Keepalived::start(bin, &topo.a, &conf_a, dir, "0")?);
    wait_for("keepalived on A to own F", Duration::from_secs(15), || {
        topo.a.holds_usable(BASELINE_F).unwrap_or(false)
    })
    .with_context(|| log_tail(ka.as_ref()))?;
    let mut kb = Some(Keepalived::start(bin, &topo.b, &conf_b, dir, "0")?);
    if !steady(&prober, &topo.a, 0.0, Duration::from_secs(10)) {
        bail!("C does not reach {BASELINE_F} on A under keepalived");
    }
    // Let B settle as backup before the first switchover.
    std::thread::sleep(Duration::from_millis(500));
    let mut out = Moves::default();
    for i in 0..moves {
        let (from, to) = pair(topo, i);
        let (holder, conf_from) = if i.is_multiple_of(2) {
            (&mut ka, &conf_a)
        } else {
            (&mut kb, &conf_b)
        };
        let t0 = wall_ms();
        holder
            .take()
            .ok_or_else(|| anyhow!("no keepalived on {}", from.name))?
            .stop()?;
        let released = wall_ms();
        steady(&prober, to, t0, cap);
        std::thread::sleep(Duration::from_millis(100));
        let end = wall_ms();
        out.outages.push(analyse(
            &prober.replies(),
            &from.name,
            &to.name,
            t0,
            end,
            Some(released),
        ));
        // Back as backup (nopreempt), ready for the move the other way.
        *holder = Some(Keepalived::start(
            bin,
            from,
            conf_from,
            dir,
            &(i + 1).to_string(),
        )?);
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(out)
}

pub fn log_tail(k: Option<&Keepalived>) -> String {
    k.map(|k| {
        let text = std::fs::read_to_string(&k.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    })
    .unwrap_or_default()
}
