//! The fault-injection suite (docs/testing.md): a seeded schedule of moves,
//! migrations, failovers, deletes and faults plays against real agents
//! and two fipd replicas in namespaces, while a monitor on every host
//! records when each floating address is held. Afterwards, separately from
//! the workload (Jepsen's habit), the history is checked against the one
//! promise: no instant where two hosts hold the same address; and once the
//! faults stop, everything converges within a stated bound.

pub mod api;
pub mod rig;
pub mod schedule;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use fip_testkit::observe::DoubleHolder;
use fip_testkit::AddrMonitor;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use api::Anomaly;
use rig::{Rig, HOSTS};
use schedule::{Action, Fault, Step, What, World};

/// Floating IPs in play.
pub const FIPS: usize = 4;

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    /// How long the schedule plays (faults heal after it, at their time).
    pub duration: Duration,
    /// `strict`, `optimistic` or `off`.
    pub dad: String,
    /// Everything must converge within this after the last fault healed.
    pub converge_within: Duration,
    /// Where logs and data go.
    pub dir: PathBuf,
    /// Print the schedule and progress.
    pub verbose: bool,
}

/// What a run found.
#[derive(Debug)]
pub struct Outcome {
    pub seed: u64,
    pub dad: String,
    pub steps: usize,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, usize>,
    /// Actions by kind: (accepted, refused or failed).
    pub actions: BTreeMap<&'static str, (usize, usize)>,
    /// Moves made: accepted associations, migrations and re-creations.
    pub moves: usize,
    pub double_holders: Vec<DoubleHolder>,
    /// Time from the last heal to convergence, or why it did not converge.
    pub convergence: Result<Duration, String>,
    pub anomalies: Vec<Anomaly>,
    pub statuses: BTreeMap<String, usize>,
    pub converge_within: Duration,
    /// What the protocol did, from the events of the floating IPs that
    /// remain and the agents' logs: hosts lost, failovers, fences.
    pub protocol: BTreeMap<String, usize>,
    /// When the schedule started, to print instants relative to it.
    pub started: Instant,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.double_holders.is_empty() && self.convergence.is_ok() && self.anomalies.is_empty()
    }

    pub fn report(&self) -> String {
        let mut s = format!(
            "fault-injection run: seed {}, dad {}, {} steps\n",
            self.seed, self.dad, self.steps
        );
        s.push_str("faults injected and healed:\n");
        for k in Fault::KINDS {
            s.push_str(&format!(
                "  {k:<38} {}\n",
                self.faults.get(k).copied().unwrap_or(0)
            ));
        }
        s.push_str("actions (accepted / refused or failed):\n");
        for (k, (ok, no)) in &self.actions {
            s.push_str(&format!("  {k:<38} {ok} / {no}\n"));
        }
        s.push_str(&format!("moves made: {}\n", self.moves));
        let protocol: Vec<String> = self
            .protocol
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        s.push_str(&format!("protocol: {}\n", protocol.join(", ")));
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(k, v)| format!("{k}×{v}"))
            .collect();
        s.push_str(&format!("API answers: {}\n", statuses.join(" ")));
        s.push_str(&format!("API anomalies: {}\n", self.anomalies.len()));
        for a in self.anomalies.iter().take(10) {
            s.push_str(&format!("  {}\n", a.what));
        }
        match &self.convergence {
            Ok(d) => s.push_str(&format!(
                "converged {:.1} s after the last fault healed (bound {} s)\n",
                d.as_secs_f64(),
                self.converge_within.as_secs()
            )),
            Err(e) => s.push_str(&format!(
                "did NOT converge within {} s: {e}\n",
                self.converge_within.as_secs()
            )),
        }
        s.push_str(&format!(
            "double-holder instants: {}\n",
            self.double_holders.len()
        ));
        let t = |i: Instant| i.saturating_duration_since(self.started).as_secs_f64();
        for d in self.double_holders.iter().take(10) {
            let (a, b) = d.intervals;
            s.push_str(&format!(
                "  {} held by {} ({:.3}–{:.3} s) and {} ({:.3}–{:.3} s) at once\n",
                d.addr,
                d.hosts.0,
                t(a.0),
                t(a.1),
                d.hosts.1,
                t(b.0),
                t(b.1)
            ));
        }
        s.push_str(if self.passed() {
            "verdict: PASS\n"
        } else {
            "verdict: FAIL\n"
        });
        s
    }
}

fn action_kind(a: &Action) -> &'static str {
    match a {
        Action::Associate { .. } => "associate",
        Action::Disassociate { .. } => "disassociate",
        Action::Migrate { .. } => "migrate an instance",
        Action::Standbys { .. } => "set standbys",
        Action::Recreate { .. } => "delete and re-create",
    }
}

/// An action that ran: its kind, whether fipd accepted it, whether it
/// moved a floating IP.
type Done = (&'static str, bool, bool);

/// The floating IPs of a run: the live one in each slot, and every
/// address ever deleted (no host may keep holding those).
struct Fips {
    live: Vec<(String, String)>,
    deleted: Vec<String>,
}

/// Plays one run and checks it.
pub async fn run(opts: &Options) -> Result<Outcome> {
    std::fs::create_dir_all(&opts.dir)?;
    let mut rig = Rig::start(&opts.dad, opts.dir.clone()).await?;
    let mut fips = Fips {
        live: Vec::new(),
        deleted: Vec::new(),
    };
    for i in 0..FIPS {
        fips.live.push(rig.create_fip(Some(i)).await?);
    }
    converge(&rig, &fips, Duration::from_secs(30))
        .await
        .map_err(|e| anyhow::anyhow!("the start did not converge: {e}\n{}", rig.logs()))?;
    let fips = Arc::new(tokio::sync::Mutex::new(fips));
    let client = Client {
        api: rig.api.clone(),
        net_id: rig.net_id.clone(),
        instances: rig.instances.clone(),
    };

    let monitors: Vec<(String, AddrMonitor)> = HOSTS
        .iter()
        .map(|r| {
            let h = rig.host_of_role(r);
            Ok((h.name.clone(), AddrMonitor::start(&h.ns)?))
        })
        .collect::<Result<_>>()?;
    let world = World {
        hosts: HOSTS.len(),
        replicas: 2,
        fips: FIPS,
        instances: rig.instances.len(),
    };
    let steps = schedule::generate(opts.seed, opts.duration, world);
    if opts.verbose {
        println!(
            "schedule for seed {} ({} steps over {} s):",
            opts.seed,
            steps.len(),
            opts.duration.as_secs()
        );
        for s in &steps {
            println!("  {s}");
        }
    }
    let mut out = Outcome {
        seed: opts.seed,
        dad: opts.dad.clone(),
        steps: steps.len(),
        faults: BTreeMap::new(),
        actions: BTreeMap::new(),
        moves: 0,
        double_holders: Vec::new(),
        convergence: Err("not checked".into()),
        anomalies: Vec::new(),
        statuses: BTreeMap::new(),
        converge_within: opts.converge_within,
        protocol: BTreeMap::new(),
        started: Instant::now(),
    };

    // Steps and heals, in time order. Actions run in tasks of their own
    // (an API call waits out a database outage), so faults are injected
    // and healed on time.
    let results: Arc<std::sync::Mutex<Vec<Done>>> = Arc::default();
    let mut actions = tokio::task::JoinSet::new();
    let started = Instant::now();
    out.started = started;
    let mut heals: BinaryHeap<Reverse<(Duration, usize)>> = BinaryHeap::new();
    let mut healing: Vec<Fault> = Vec::new();
    let mut next = 0;
    loop {
        let next_step = steps.get(next).map(|s| s.at);
        let next_heal = heals.peek().map(|Reverse((t, _))| *t);
        let (at, is_heal) = match (next_step, next_heal) {
            (None, None) => break,
            (Some(s), Some(h)) if h <= s => (h, true),
            (Some(s), _) => (s, false),
            (None, Some(h)) => (h, true),
        };
        tokio::time::sleep_until((started + at).into()).await;
        if is_heal {
            let Reverse((_, i)) = heals.pop().expect("peeked");
            let f = healing[i];
            if opts.verbose {
                println!("{:7.2}s  heal {f:?}", started.elapsed().as_secs_f64());
            }
            rig.heal(f)
                .await
                .with_context(|| format!("healing {f:?}"))?;
            continue;
        }
        let Step { what, .. } = &steps[next];
        next += 1;
        match what {
            What::Fault { fault, lasts } => {
                if opts.verbose {
                    println!("{:7.2}s  inject {fault:?}", started.elapsed().as_secs_f64());
                }
                rig.inject(*fault)
                    .await
                    .with_context(|| format!("injecting {fault:?}"))?;
                *out.faults.entry(fault.kind()).or_default() += 1;
                healing.push(*fault);
                heals.push(Reverse((at + *lasts, healing.len() - 1)));
            }
            What::Action(a) => {
                let (client, fips, results, a) =
                    (client.clone(), fips.clone(), results.clone(), a.clone());
                actions.spawn(async move {
                    let ok = act(&client, &fips, &a).await;
                    let is_move = matches!(
                        a,
                        Action::Associate { .. } | Action::Migrate { .. } | Action::Recreate { .. }
                    );
                    results.lock().unwrap_or_else(|p| p.into_inner()).push((
                        action_kind(&a),
                        ok,
                        is_move,
                    ));
                });
            }
        }
    }
    while actions.join_next().await.is_some() {}
    for (kind, ok, is_move) in results.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        let e = out.actions.entry(kind).or_default();
        if *ok {
            e.0 += 1;
            out.moves += usize::from(*is_move);
        } else {
            e.1 += 1;
        }
    }
    let fips = Arc::try_unwrap(fips)
        .map_err(|_| anyhow::anyhow!("an action still holds the floating IPs"))?
        .into_inner();
    let healed = Instant::now();
    if opts.verbose {
        println!("all faults healed; waiting for convergence");
    }
    out.convergence = converge(&rig, &fips, opts.converge_within)
        .await
        .map(|()| healed.elapsed());
    if out.convergence.is_err() {
        eprintln!("{}", rig.logs());
    }
    if let Err(e) = rig.all_running() {
        out.convergence = Err(format!("{e:#}"));
    }

    // The history, checked apart from the workload.
    let end = Instant::now();
    let ours: HashSet<Ipv6Addr> = fips
        .live
        .iter()
        .map(|(_, a)| a.as_str())
        .chain(fips.deleted.iter().map(String::as_str))
        .filter_map(|a| a.parse().ok())
        .collect();
    let mut per_host = Vec::new();
    for (name, m) in monitors {
        let events = m.stop()?;
        let held: HashMap<Ipv6Addr, Vec<_>> = fip_testkit::usable_intervals(&events, end)
            .into_iter()
            .filter(|(a, _)| ours.contains(a))
            .collect();
        per_host.push((name, held));
    }
    out.double_holders = fip_testkit::double_holders(&per_host);
    for (id, _) in &fips.live {
        if let Ok((StatusCode::OK, v)) = rig
            .api
            .call(
                Method::GET,
                &format!("/v1/floating-ips/{id}/events?limit=1000"),
                None,
            )
            .await
        {
            for e in v["items"].as_array().into_iter().flatten() {
                let kind = e["kind"].as_str().unwrap_or("");
                if [
                    "host_lost",
                    "failover",
                    "removal_assumed",
                    "dad_failed",
                    "host_recovered",
                ]
                .contains(&kind)
                {
                    *out.protocol.entry(kind.to_owned()).or_default() +=
                        e["repeats"].as_u64().unwrap_or(1) as usize;
                }
            }
        }
    }
    out.protocol
        .insert("agent self-fences".into(), rig.agent_fences());
    let ledger = rig.api.ledger.lock().unwrap_or_else(|p| p.into_inner());
    out.anomalies = ledger.anomalies.clone();
    out.statuses = ledger.by_status.clone();
    Ok(out)
}

/// What an action needs: the API and the names of things.
#[derive(Clone)]
struct Client {
    api: api::Api,
    net_id: String,
    instances: Vec<String>,
}

impl Client {
    async fn create_fip(&self, instance: Option<usize>) -> Result<(String, String)> {
        let body = json!({
            "network_id": self.net_id,
            "project_id": "p",
            "instance_id": instance.map(|i| self.instances[i].clone()),
        });
        let v = self
            .api
            .must(
                Method::POST,
                "/v1/floating-ips",
                Some(&body),
                StatusCode::CREATED,
            )
            .await?;
        Ok((
            v["id"].as_str().context("id")?.to_owned(),
            v["address"].as_str().context("address")?.to_owned(),
        ))
    }
}

/// Carries out one API action; whether fipd accepted it. A delete and
/// re-create holds the floating IPs' list while it runs, so its slot is
/// never used half way.
async fn act(rig: &Client, fips: &tokio::sync::Mutex<Fips>, a: &Action) -> bool {
    let api = &rig.api;
    let mut guard = None;
    let path_of = |i: usize, f: &Fips| format!("/v1/floating-ips/{}", f.live[i].0);
    let fip_path = |i: usize| async move { path_of(i, &*fips.lock().await) };
    let r = match a {
        Action::Associate { fip, instance } => {
            api.call(
                Method::PATCH,
                &fip_path(*fip).await,
                Some(&json!({ "instance_id": rig.instances[*instance] })),
            )
            .await
        }
        Action::Disassociate { fip } => {
            api.call(
                Method::PATCH,
                &fip_path(*fip).await,
                Some(&json!({ "instance_id": null })),
            )
            .await
        }
        Action::Migrate { instance, host } => {
            api.call(
                Method::PATCH,
                &format!("/v1/instances/{}", rig.instances[*instance]),
                Some(&json!({ "host": format!("host-{}", HOSTS[*host]) })),
            )
            .await
        }
        Action::Standbys { fip, instances } => {
            let ids: Vec<&String> = instances.iter().map(|i| &rig.instances[*i]).collect();
            api.call(
                Method::PATCH,
                &fip_path(*fip).await,
                Some(&json!({ "standby_instance_ids": ids })),
            )
            .await
        }
        Action::Recreate { fip, instance } => {
            let f = guard.insert(fips.lock().await);
            match api.call(Method::DELETE, &path_of(*fip, f), None).await {
                Ok((StatusCode::NO_CONTENT, _)) => {
                    let (_, old) = f.live[*fip].clone();
                    f.deleted.push(old);
                    // The slot must hold a live floating IP again; retry
                    // through a database outage.
                    let deadline = Instant::now() + Duration::from_secs(30);
                    loop {
                        match rig.create_fip(*instance).await {
                            Ok(new) => {
                                f.live[*fip] = new;
                                break;
                            }
                            Err(_) if Instant::now() < deadline => {
                                tokio::time::sleep(Duration::from_millis(200)).await
                            }
                            Err(_) => return false,
                        }
                    }
                    return true;
                }
                other => other,
            }
        }
    };
    matches!(r, Ok((st, _)) if st.is_success())
}

/// Waits until everything converged: every host alive; every live
/// floating IP ACTIVE on its instance's host and held there (and only
/// there), or DOWN and held nowhere; no address lost from the store; no
/// removal waiting on a live host; no deleted address held anywhere.
async fn converge(rig: &Rig, fips: &Fips, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    loop {
        let last = match converged(rig, fips).await {
            Ok(()) => return Ok(()),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() > deadline {
            return Err(last);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn converged(rig: &Rig, fips: &Fips) -> Result<()> {
    let states = rig.host_states().await?;
    if let Some((h, s)) = states.iter().find(|(_, s)| s != "alive") {
        anyhow::bail!("host {h} is {s}");
    }
    let hosts: Vec<&fip_testkit::Host> = HOSTS.iter().map(|r| rig.host_of_role(r)).collect();
    for (id, addr) in &fips.live {
        let (st, f) = rig
            .api
            .call(Method::GET, &format!("/v1/floating-ips/{id}"), None)
            .await?;
        if st == StatusCode::NOT_FOUND {
            anyhow::bail!("floating IP {id} ({addr}) was lost from the store");
        }
        if st != StatusCode::OK {
            anyhow::bail!("GET floating IP {id}: {st}");
        }
        if f["address"] != addr.as_str() {
            anyhow::bail!("floating IP {id} changed address: {f}");
        }
        let want_host: Option<String> = match f["instance_id"].as_str() {
            None => None,
            Some(inst) => {
                let i = rig
                    .api
                    .must(
                        Method::GET,
                        &format!("/v1/instances/{inst}"),
                        None,
                        StatusCode::OK,
                    )
                    .await?;
                if i["host"] != f["host"] {
                    anyhow::bail!(
                        "floating IP {id} is on {} but its instance on {}",
                        f["host"],
                        i["host"]
                    );
                }
                Some(i["host"].as_str().unwrap_or("").to_owned())
            }
        };
        let want_status = if want_host.is_some() {
            "ACTIVE"
        } else {
            "DOWN"
        };
        if f["status"] != want_status {
            anyhow::bail!(
                "floating IP {id} is {} (want {want_status}): {}",
                f["status"],
                f["status_detail"]
            );
        }
        waiting(&f)?;
        for h in &hosts {
            let held = h.holds_usable(addr)?;
            let should = want_host.as_deref() == Some(h.name.as_str());
            if held != should {
                anyhow::bail!(
                    "{addr} ({id}) is {} on {} (want {})",
                    if held { "held" } else { "not held" },
                    h.name,
                    want_host.as_deref().unwrap_or("nowhere")
                );
            }
        }
    }
    for addr in &fips.deleted {
        for h in &hosts {
            if h.has_addr(addr)? {
                anyhow::bail!("deleted {addr} is still on {}", h.name);
            }
        }
    }
    Ok(())
}

/// Fails when a binding still waits for a removal on some host (all hosts
/// are alive by now, so each must have confirmed).
fn waiting(f: &Value) -> Result<()> {
    for b in f["bindings"].as_array().into_iter().flatten() {
        let confirmed = b["state"] == "absent"
            && b["reported_revision"].as_i64().unwrap_or(-1)
                >= b["desired_revision"].as_i64().unwrap_or(i64::MAX);
        if b["desired"] == "absent" && !confirmed {
            anyhow::bail!(
                "floating IP {} waits for {} to confirm its removal: {b}",
                f["id"],
                b["host"]
            );
        }
    }
    Ok(())
}
