//! Figure 1b: A is cut off (its bridge and management ports go down) while
//! it holds F. Ours fails over to the standby instance on B once A's lease
//! (1 s) runs out; keepalived (`advert_int 1`) once B misses three adverts.
//! Also records how long A itself keeps F after the cut.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use reqwest::Method;
use serde_json::json;

use super::cluster::{self, Cluster};
use super::keepalived::{self, Keepalived};
use super::moves::{log_tail, BASELINE_F};
use super::probe::{analyse, wall_ms, Outage, Prober, Responders};
use super::topology::{ip, wait_for, Host, Topo, DEV};

pub const LEASE_TTL_MS: u64 = 1_000;
/// The smallest grace docs/protocol.md allows on one machine (the kernel's
/// lifetime granularity).
pub const FENCE_GRACE_MS: u64 = 1_000;

#[derive(Debug, Default)]
pub struct Cuts {
    pub outages: Vec<Outage>,
    /// Per run: ms from the cut until A's kernel no longer held F (`None`:
    /// still held when we stopped looking, after `watch`).
    pub a_dropped_ms: Vec<Option<f64>>,
    pub watch: Duration,
}

/// Polls `h` every 10 ms until it no longer holds `f`; ms since `t0`.
fn time_until_dropped(h: &Host, f: &str, t0: f64, within: Duration) -> Result<Option<f64>> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if !h.holds(f)? {
            return Ok(Some(wall_ms() - t0));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(None)
}

/// Waits until fipd sees `h`'s agent alive again.
async fn wait_alive(c: &Cluster, h: &Host, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let hosts = c.api.call(Method::GET, "/v1/hosts", None).await?;
        let alive = hosts["items"].as_array().is_some_and(|v| {
            v.iter()
                .any(|x| x["name"] == h.name && x["state"] == "alive")
        });
        if alive {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{} did not come back within {within:?}", h.name);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn ours(topo: &Topo, runs: usize, cap: Duration) -> Result<Cuts> {
    let opts = cluster::Opts {
        lease_ttl_ms: LEASE_TTL_MS,
        fence_grace_ms: FENCE_GRACE_MS,
        ..cluster::Opts::default()
    };
    let mut c = Cluster::new(topo, &opts).await?;
    c.start_agents(topo).await?;
    let (id, addr) = c.create_fip(&c.vm_a).await?;
    let f: Ipv6Addr = addr.parse()?;
    let _responders = Responders::start(&[&topo.a, &topo.b], f)?;
    let prober = Prober::start(&topo.c, f)?;
    let watch = Duration::from_secs(5);
    let mut out = Cuts {
        watch,
        ..Cuts::default()
    };
    for run in 0..runs {
        c.patch(
            &id,
            json!({ "instance_id": c.vm_a, "standby_instance_ids": [c.vm_b] }),
        )
        .await?;
        c.wait_active_on(&id, &topo.a.name, Duration::from_secs(20))
            .await?;
        if !prober.wait_steady(&topo.a.name, wall_ms(), 5, Duration::from_secs(10)) {
            bail!("run {run}: C does not reach F on A");
        }
        let t0 = wall_ms();
        topo.cut_off(&topo.a, fip_testkit::Cut::Carrier)?;
        let r = cut_run(&c, topo, &prober, &id, &addr, t0, watch, cap).await;
        // Reconnect whatever happened, so the next run (or the next
        // figure) starts from a whole topology.
        topo.reconnect(&topo.a)?;
        let (outage, dropped) = r?;
        out.outages.push(outage);
        out.a_dropped_ms.push(dropped);
        wait_alive(&c, &topo.a, Duration::from_secs(20)).await?;
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
async fn cut_run(
    c: &Cluster,
    topo: &Topo,
    prober: &Prober,
    id: &str,
    addr: &str,
    t0: f64,
    watch: Duration,
    cap: Duration,
) -> Result<(Outage, Option<f64>)> {
    let dropped = time_until_dropped(&topo.a, addr, t0, watch)?;
    c.wait_active_on(id, &topo.b.name, cap)
        .await
        .context("failover to the standby on B")?;
    prober.wait_steady(&topo.b.name, t0, 5, cap);
    let end = wall_ms();
    Ok((
        analyse(&prober.replies(), &topo.a.name, &topo.b.name, t0, end, None),
        dropped,
    ))
}

/// keepalived with `advert_int 1`: both fresh per run, A master.
pub fn keepalived_cut(
    bin: &std::path::Path,
    topo: &Topo,
    runs: usize,
    cap: Duration,
) -> Result<Cuts> {
    let f: Ipv6Addr = BASELINE_F.parse()?;
    let dir = crate::api::tempdir()?;
    let watch = Duration::from_secs(5);
    let mut out = Cuts {
        watch,
        ..Cuts::default()
    };
    let r = (|| -> Result<()> {
        let conf_a = keepalived::config(&dir, &topo.a, 150, "1", BASELINE_F)?;
        let conf_b = keepalived::config(&dir, &topo.b, 100, "1", BASELINE_F)?;
        let _responders = Responders::start(&[&topo.a, &topo.b], f)?;
        let prober = Prober::start(&topo.c, f)?;
        for run in 0..runs {
            let ka = Keepalived::start(bin, &topo.a, &conf_a, &dir, &run.to_string())?;
            wait_for("keepalived on A to own F", Duration::from_secs(15), || {
                topo.a.holds_usable(BASELINE_F).unwrap_or(false)
            })
            .with_context(|| log_tail(Some(&ka)))?;
            let kb = Keepalived::start(bin, &topo.b, &conf_b, &dir, &run.to_string())?;
            if !prober.wait_steady(&topo.a.name, wall_ms(), 5, Duration::from_secs(10)) {
                bail!("run {run}: C does not reach {BASELINE_F} on A under keepalived");
            }
            // B settles as backup (it hears A's adverts) before the cut.
            std::thread::sleep(Duration::from_millis(2_500));
            let t0 = wall_ms();
            topo.cut_off(&topo.a, fip_testkit::Cut::Carrier)?;
            let res = (|| -> Result<(Outage, Option<f64>)> {
                let dropped = time_until_dropped(&topo.a, BASELINE_F, t0, watch)?;
                prober.wait_steady(&topo.b.name, t0, 5, cap);
                let end = wall_ms();
                Ok((
                    analyse(&prober.replies(), &topo.a.name, &topo.b.name, t0, end, None),
                    dropped,
                ))
            })();
            drop(ka);
            drop(kb);
            topo.reconnect(&topo.a)?;
            for h in [&topo.a, &topo.b] {
                if h.holds(BASELINE_F).unwrap_or(false) {
                    let _ = ip(&[
                        "-n",
                        &h.ns,
                        "-6",
                        "addr",
                        "del",
                        &format!("{BASELINE_F}/64"),
                        "dev",
                        DEV,
                    ]);
                }
            }
            let (o, d) = res?;
            out.outages.push(o);
            out.a_dropped_ms.push(d);
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    r.map(|()| out)
}
