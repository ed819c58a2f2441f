//! `fip-bench netns` (root): figures 1, 1b, 2, 5 and the agent's part of 6
//! on the demo topology (hosts A and B with agents, client C, fipd on the
//! management bridge), each next to its baseline from the same run.

mod cluster;
mod cut;
mod keepalived;
mod moves;
pub mod probe;
mod scale;
mod topology;

use std::time::Duration;

use anyhow::{bail, Result};

use crate::report::{print, Row};
use moves::Moves;

pub struct Opts {
    pub quick: bool,
    /// Figures to run ("1", "1b", "2", "5"); empty: all.
    pub only: Vec<String>,
    /// Floating IPs for figure 5 instead of the mode's default.
    pub addresses: Option<usize>,
    /// PostgreSQL server for the two-replica run (a scratch database).
    pub pg_admin_url: String,
}

/// Iteration counts and bounds of a run.
struct Plan {
    moves: usize,
    cuts: usize,
    addresses: usize,
    /// Longest we wait for C to hear the new holder after a switchover
    /// (without NAs that is until C's neighbour entry expires: up to
    /// ~50 s with the kernel's defaults).
    cap: Duration,
}

/// 20 MB in MiB (the unit VmHWM is printed in).
const MB20_MIB: f64 = 20.0 * 1e6 / (1024.0 * 1024.0);

fn summary(v: &[f64]) -> (f64, f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    // Nearest-rank median (the lower middle for an even count).
    (s[0], s[(s.len() - 1) / 2], s[s.len() - 1])
}

fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

fn push(rows: &mut Vec<Row>, row: Row) {
    print(&row);
    rows.push(row);
}

fn spread(m: &Moves) -> String {
    let (lo, _, hi) = summary(&m.gaps());
    let c = m.censored();
    let censored = if c > 0 {
        format!(", {c} capped")
    } else {
        String::new()
    };
    format!("{lo:.0}–{hi:.0}{censored}")
}

pub struct Outcome {
    /// For the results file: skipped baselines and failed figures, and why.
    pub notes: Vec<String>,
    /// Some figure failed (the others were still measured).
    pub failed: bool,
}

/// Runs the namespace figures.
pub async fn run(opts: &Opts, rows: &mut Vec<Row>) -> Result<Outcome> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("fip-bench netns needs root (it creates network namespaces)");
    }
    let mut plan = if opts.quick {
        Plan {
            moves: 2,
            cuts: 1,
            addresses: 200,
            cap: Duration::from_secs(10),
        }
    } else {
        Plan {
            moves: 20,
            cuts: 10,
            addresses: 10_000,
            cap: Duration::from_secs(90),
        }
    };
    if let Some(n) = opts.addresses {
        plan.addresses = n;
    }
    for f in &opts.only {
        if !["1", "1b", "2", "5", "6"].contains(&f.as_str()) {
            bail!("unknown figure {f:?} (netns runs 1, 1b, 2, 5 and 6)");
        }
    }
    let wants = |f: &str| opts.only.is_empty() || opts.only.iter().any(|o| o == f);
    let mut notes = Vec::new();
    let keepalived = if wants("1") || wants("2") || wants("1b") {
        match keepalived::locate(!opts.quick) {
            Ok(p) => Some(p),
            Err(why) => {
                let note = format!("keepalived baselines skipped: {why}");
                println!("{note}");
                notes.push(note);
                None
            }
        }
    } else {
        None
    };
    let topo = topology::Topo::new()?;

    let mut failed = false;
    // A figure that fails is reported and the others still run: a full
    // run takes long, and its other figures stay valid.
    let mut fail = |notes: &mut Vec<String>, what: &str, e: anyhow::Error| {
        let note = format!("figure {what} FAILED: {e:#}");
        eprintln!("fip-bench: {note}");
        notes.push(note);
        failed = true;
    };
    if wants("1") || wants("2") {
        let r = async {
            // Figure 1 baselines first, on a quiet link.
            eprintln!("figure 1 baseline: plain ip, {} moves", plan.moves);
            let ip_seq = moves::ip_sequence(&topo, plan.moves, plan.cap)?;
            let ka = match &keepalived {
                Some(bin) => {
                    eprintln!("figure 1 baseline: keepalived, {} moves", plan.moves);
                    Some(moves::keepalived_planned(bin, &topo, plan.moves, plan.cap)?)
                }
                None => None,
            };
            eprintln!("figure 1: ours, dad=strict, {} moves", plan.moves);
            let strict =
                moves::ours(&topo, &cluster::Opts::default(), plan.moves, plan.cap).await?;
            eprintln!("figure 1: ours, dad=optimistic, {} moves", plan.moves);
            topo.set_optimistic_dad(true)?;
            let optimistic = moves::ours(
                &topo,
                &cluster::Opts {
                    dad_mode: "optimistic",
                    ..cluster::Opts::default()
                },
                plan.moves,
                plan.cap,
            )
            .await;
            topo.set_optimistic_dad(false)?;
            let optimistic = optimistic?;
            figure1(rows, &ip_seq, ka.as_ref(), &strict, &optimistic);

            eprintln!("figure 2: one fipd on PostgreSQL, {} moves", plan.moves);
            let pg_one =
                moves::ours_on_postgres(&topo, &opts.pg_admin_url, 1, plan.moves, plan.cap).await?;
            eprintln!(
                "figure 2: two fipd replicas on PostgreSQL, {} moves",
                plan.moves
            );
            let replicas =
                moves::ours_on_postgres(&topo, &opts.pg_admin_url, 2, plan.moves, plan.cap).await?;
            figure2(rows, &strict, &optimistic, &pg_one, &replicas);
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = r {
            fail(&mut notes, "1/2", e);
        }
    }

    if wants("1b") {
        let r = async {
            eprintln!("figure 1b: ours, A cut off, {} runs", plan.cuts);
            let cut_ours = cut::ours(&topo, plan.cuts, plan.cap).await?;
            let cut_ka = match &keepalived {
                Some(bin) => {
                    eprintln!(
                        "figure 1b baseline: keepalived advert_int 1, {} runs",
                        plan.cuts
                    );
                    Some(cut::keepalived_cut(bin, &topo, plan.cuts, plan.cap)?)
                }
                None => None,
            };
            figure1b(rows, &cut_ours, cut_ka.as_ref());
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = r {
            fail(&mut notes, "1b", e);
        }
    }

    if wants("5") || wants("6") {
        eprintln!("figure 5: one agent, {} addresses", plan.addresses);
        match scale::run(&topo, plan.addresses).await {
            Ok(s) => figure5(rows, &s),
            Err(e) => fail(&mut notes, "5/6", e),
        }
    }
    Ok(Outcome { notes, failed })
}

fn figure1(
    rows: &mut Vec<Row>,
    ip_seq: &Moves,
    ka: Option<&Moves>,
    strict: &Moves,
    optimistic: &Moves,
) {
    let (_, ip_med, _) = summary(&ip_seq.gaps());
    let ka_med = ka.map(|k| summary(&k.gaps()).1);
    let (_, dad, _) = summary(&strict.dad_ms);
    let n = strict.outages.len();
    let (_, s_med, _) = summary(&strict.gaps());
    push(
        rows,
        Row {
            figure: format!(
                "1. planned move outage, dad=strict, median of {n} (ours {}, plain ip {} ms)",
                spread(strict),
                spread(ip_seq)
            ),
            ours: s_med,
            baseline: Some(ip_med),
            unit: "ms",
            target: format!("≤ DAD {dad:.0} + 50 ms"),
            met: Some(s_med <= dad + 50.0),
        },
    );
    let (_, o_med, _) = summary(&optimistic.gaps());
    let o_target_met = o_med <= 20.0 && ka_med.is_none_or(|k| o_med < k);
    match (ka, ka_med) {
        (Some(k), Some(km)) => {
            push(
                rows,
                Row {
                    figure: format!(
                        "1. planned move outage, dad=strict vs keepalived (ours {}, keepalived {} ms)",
                        spread(strict),
                        spread(k)
                    ),
                    ours: s_med,
                    baseline: Some(km),
                    unit: "ms",
                    target: "-".into(),
                    met: None,
                },
            );
            push(
                rows,
                Row {
                    figure: format!(
                        "1. planned move outage, dad=optimistic, median of {} (ours {}, keepalived {} ms)",
                        optimistic.outages.len(),
                        spread(optimistic),
                        spread(k)
                    ),
                    ours: o_med,
                    baseline: Some(km),
                    unit: "ms",
                    target: "≤ 20 ms and < keepalived".into(),
                    met: Some(o_target_met),
                },
            );
        }
        _ => push(
            rows,
            Row {
                figure: format!(
                    "1. planned move outage, dad=optimistic, median of {} (ours {} ms; keepalived skipped)",
                    optimistic.outages.len(),
                    spread(optimistic)
                ),
                ours: o_med,
                baseline: None,
                unit: "ms",
                target: "≤ 20 ms (keepalived part not measured)".into(),
                met: Some(o_target_met),
            },
        ),
    }
    push(
        rows,
        Row {
            figure: format!(
                "1. planned move outage, dad=optimistic vs plain ip (plain ip {} ms)",
                spread(ip_seq)
            ),
            ours: o_med,
            baseline: Some(ip_med),
            unit: "ms",
            target: "-".into(),
            met: None,
        },
    );
    let ours_v = strict.violations() + optimistic.violations();
    let base_v = ip_seq.violations() + ka.map_or(0, Moves::violations);
    push(
        rows,
        Row {
            figure: format!(
                "1. replies from a host no longer entitled to F ({} moves; baseline: plain ip{})",
                strict.outages.len() + optimistic.outages.len(),
                if ka.is_some() { " + keepalived" } else { "" }
            ),
            ours: ours_v as f64,
            baseline: Some(base_v as f64),
            unit: "",
            target: "0".into(),
            met: Some(ours_v == 0),
        },
    );
}

fn figure2(
    rows: &mut Vec<Row>,
    strict: &Moves,
    optimistic: &Moves,
    pg_one: &Moves,
    replicas: &Moves,
) {
    let mut one: Vec<f64> = strict.to_kernel_ms.clone();
    one.extend(&optimistic.to_kernel_ms);
    let missing = strict.missing_events + optimistic.missing_events;
    let p99 = percentile(&one, 99.0);
    push(
        rows,
        Row {
            figure: format!(
                "2. PATCH response → add on the new holder, p99 of {} moves (p50 {:.1} ms{}), one fipd on SQLite",
                one.len(),
                percentile(&one, 50.0),
                if missing > 0 {
                    format!(", {missing} without events")
                } else {
                    String::new()
                }
            ),
            ours: p99,
            baseline: None,
            unit: "ms",
            target: "p99 ≤ 20 ms".into(),
            met: Some(p99 <= 20.0 && missing == 0),
        },
    );
    let one_pg = &pg_one.to_kernel_ms;
    let r = &replicas.to_kernel_ms;
    let rp99 = percentile(r, 99.0);
    push(
        rows,
        Row {
            figure: format!(
                "2. same on PostgreSQL: two fipd replicas (PATCH on one, agents on the other), p99 of {} (p50 {:.1} ms); baseline: one fipd on PostgreSQL (p50 {:.1} ms)",
                r.len(),
                percentile(r, 50.0),
                percentile(one_pg, 50.0)
            ),
            ours: rp99,
            baseline: Some(percentile(one_pg, 99.0)),
            unit: "ms",
            target: "p99 ≤ 20 ms".into(),
            met: Some(rp99 <= 20.0 && replicas.missing_events == 0),
        },
    );
}

fn figure1b(rows: &mut Vec<Row>, ours: &cut::Cuts, ka: Option<&cut::Cuts>) {
    let gaps = |c: &cut::Cuts| c.outages.iter().map(|o| o.gap_ms).collect::<Vec<_>>();
    let (lo, med, hi) = summary(&gaps(ours));
    let ka_sum = ka.map(|k| summary(&gaps(k)));
    push(
        rows,
        Row {
            figure: format!(
                "1b. outage when A is cut off (lease TTL {} ms), median of {} (ours {lo:.0}–{hi:.0}{} ms)",
                cut::LEASE_TTL_MS,
                ours.outages.len(),
                ka_sum.map_or(", keepalived skipped".into(), |(l, _, h)| format!(
                    ", keepalived advert_int 1 {l:.0}–{h:.0}"
                ))
            ),
            ours: med,
            baseline: ka_sum.map(|s| s.1),
            unit: "ms",
            target: "≤ 0.7× keepalived".into(),
            met: ka_sum.map(|s| med <= 0.7 * s.1),
        },
    );
    // How long A itself kept F; None = still held when we stopped looking.
    let held = |c: &cut::Cuts| -> (f64, usize) {
        let kept = c.a_dropped_ms.iter().filter(|d| d.is_none()).count();
        let worst = c
            .a_dropped_ms
            .iter()
            .map(|d| d.unwrap_or(c.watch.as_secs_f64() * 1000.0))
            .fold(0.0, f64::max);
        (worst, kept)
    };
    let (worst, kept) = held(ours);
    let base = ka.map(held);
    push(
        rows,
        Row {
            figure: format!(
                "1b. A still holds F after the cut, worst of {} runs (runs where A kept F past {} s: ours {kept}{})",
                ours.a_dropped_ms.len(),
                ours.watch.as_secs(),
                base.map_or(String::new(), |(_, k)| format!(", keepalived {k}"))
            ),
            ours: worst,
            baseline: base.map(|b| b.0),
            unit: "ms",
            target: format!("≤ lease TTL {} ms", cut::LEASE_TTL_MS),
            met: Some(kept == 0 && worst <= cut::LEASE_TTL_MS as f64),
        },
    );
}

fn figure5(rows: &mut Vec<Row>, s: &scale::Scale) {
    let all = s.active == s.n;
    push(
        rows,
        Row {
            figure: if all {
                format!(
                    "5. one agent, {} addresses: desired state → all active; baseline ip -batch until none tentative",
                    s.n
                )
            } else {
                format!(
                    "5. one agent, {} addresses: only {} active when we stopped waiting; baseline ip -batch until none tentative",
                    s.n, s.active
                )
            },
            ours: s.agent_ms,
            baseline: Some(s.ip_batch_ms),
            unit: "ms",
            target: "≤ 1.5×".into(),
            met: Some(all && s.agent_ms <= 1.5 * s.ip_batch_ms),
        },
    );
    if let Some(a) = &s.adopt {
        push(
            rows,
            Row {
                figure: format!(
                    "5. agent restart: {} of {} reported active again, {} deletes",
                    a.reported, s.n, a.deletes
                ),
                ours: a.ms,
                baseline: None,
                unit: "ms",
                target: "≤ 2000 ms, 0 deletes".into(),
                met: Some(a.reported == s.n && a.ms <= 2000.0 && a.deletes == 0),
            },
        );
    }
    if let Some(f) = s.adopt.as_ref().and_then(|a| a.fence.as_ref()) {
        push(
            rows,
            Row {
                figure: format!(
                    "7. self-fence with {} addresses held, A cut off (carrier up): lease end → last address gone (began {:.0} ms after the lease end; {} removed, {} left)",
                    s.n, f.late_ms, f.removed, f.left
                ),
                ours: f.ms,
                baseline: None,
                unit: "ms",
                target: format!("≤ fence grace {:.0} ms, none left", f.grace_ms),
                // The rest expired in the kernel at about the same time
                // when their lifetime is the lease's (a small host).
                met: Some(f.ms <= f.grace_ms && f.left == 0),
            },
        );
    }
    let adopt_rss = s.adopt.as_ref().map(|a| a.rss_mib);
    push(
        rows,
        Row {
            figure: format!(
                "6. agent peak RSS applying {} addresses{}",
                s.n,
                adopt_rss.map_or(String::new(), |r| format!(" (after restart: {r:.1} MiB)"))
            ),
            ours: s.rss_mib,
            baseline: None,
            unit: "MiB",
            target: "≤ 20 MB".into(),
            met: Some(s.rss_mib <= MB20_MIB && adopt_rss.is_none_or(|r| r <= MB20_MIB)),
        },
    );
}
