//! The daemon's level-triggered reconcile loop: desired state vs. the
//! kernel → plan → removals, then adds (each DAD in its own task) → reports;
//! plus self-fencing when the lease runs out and lifetime refreshes when it
//! is renewed.
//!
//! Triggers (a new desired state, an address event, the resync timer, a
//! retry timer, a finished add) only mark the loop dirty; every pass reads
//! the whole desired state and the whole observed state again, so a missed
//! or duplicated trigger costs at most one extra pass, never correctness.

use std::collections::{HashMap, HashSet};
use std::net::Ipv6Addr;
use std::sync::Arc;
use std::time::Duration;

use fip_types::{DesiredAddress, DesiredState, Report, ReportedState};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

use super::backoff::{self, Jitter};
use super::client::chain;
use super::config::Settings;
use super::Lease;
use crate::addr::{FloatingAddr, Mac};
use crate::manager::{AddOptions, AddOutcome, AddressManager, DadMode, NaOptions, Outcome};
use crate::reconcile::plan::{plan, BlockReason, DesiredAddr, ObservedAddr};
use crate::reconcile::status::AddrState;

/// (interface, address): how the kernel, and the plan, key an address.
type Key = (String, Ipv6Addr);

/// A pass that could not read the kernel is retried this soon.
const PASS_RETRY: Duration = Duration::from_secs(1);

/// Passes for address events and finished adds are at least this far apart
/// (see `Reconciler::run`); changes to what is wanted do not wait.
const MIN_PASS_GAP: Duration = Duration::from_millis(50);

/// What an add task tells the loop.
enum TaskEvent {
    /// The verdict, sent as soon as it is known: for `active` that is when
    /// the first NA is out (the rest follow in the same task, in the
    /// background of the loop).
    Verdict {
        generation: u64,
        key: Key,
        id: Uuid,
        revision: i64,
        result: Result<(AddOutcome, u32), String>,
    },
    /// The task ended (all NAs sent, or it failed).
    Finished { generation: u64, key: Key },
}

/// What a report says beyond its state; everything optional.
#[derive(Default)]
struct Obs {
    dad_ms: Option<u64>,
    defender_mac: Option<Mac>,
    na_sent: Option<u32>,
    detail: Option<String>,
}

/// Whether an unchanged (state, revision) is sent again.
enum Send {
    /// Verdicts and `tentative`: each is a step fipd logs.
    Always,
    /// Level-triggered observations repeated on every pass.
    IfChanged,
}

/// An add running in its own task.
struct InFlight {
    generation: u64,
    handle: JoinHandle<()>,
    /// DAD passed and the first NA is out; the task only sends more NAs.
    active: bool,
}

/// Retry state of one floating IP after a DAD failure or an error.
struct Retry {
    failures: u32,
    next_at: Instant,
}

pub struct Reconciler {
    mgr: AddressManager,
    settings: Settings,
    lease_rx: watch::Receiver<Option<Lease>>,
    desired_rx: watch::Receiver<Option<DesiredState>>,
    reports: mpsc::UnboundedSender<Report>,
    wake: Arc<Notify>,
    task_tx: mpsc::UnboundedSender<TaskEvent>,
    task_rx: mpsc::UnboundedReceiver<TaskEvent>,

    desired: Option<DesiredState>,
    lease: Option<Lease>,
    /// The lease ran out: every managed address on served links is gone and
    /// nothing is added until a renewal succeeds.
    fenced: bool,
    in_flight: HashMap<Key, InFlight>,
    next_generation: u64,
    retries: HashMap<Uuid, Retry>,
    jitter: Jitter,
    /// The last (state, revision) reported per floating IP, so unchanged
    /// state is not re-sent on every pass.
    last_reported: HashMap<Uuid, (ReportedState, i64)>,
    next_resync: Instant,
    /// Bounds adds waiting for a DAD verdict at once, so a desired state of
    /// tens of thousands of addresses does not hold that many tasks, kernel
    /// timers and reports in flight. Waiting costs little (events and
    /// captures are shared), and DAD time is spent in the kernel's timers,
    /// so the bound is wide: it must not serialise the DAD runs.
    add_slots: Arc<tokio::sync::Semaphore>,
}

/// Adds waiting for a DAD verdict at once (see `Reconciler::add_slots`).
const MAX_PENDING_DAD: usize = 4096;

impl Reconciler {
    pub fn new(
        mgr: AddressManager,
        settings: Settings,
        lease_rx: watch::Receiver<Option<Lease>>,
        desired_rx: watch::Receiver<Option<DesiredState>>,
        reports: mpsc::UnboundedSender<Report>,
        wake: Arc<Notify>,
    ) -> Self {
        let (task_tx, task_rx) = mpsc::unbounded_channel();
        let next_resync = Instant::now() + settings.resync;
        Self {
            mgr,
            settings,
            lease_rx,
            desired_rx,
            reports,
            wake,
            task_tx,
            task_rx,
            desired: None,
            lease: None,
            fenced: false,
            in_flight: HashMap::new(),
            next_generation: 0,
            retries: HashMap::new(),
            jitter: Jitter::new(),
            add_slots: Arc::new(tokio::sync::Semaphore::new(MAX_PENDING_DAD)),
            last_reported: HashMap::new(),
            next_resync,
        }
    }

    /// Runs until SIGTERM or SIGINT, then returns 0 *without* removing any
    /// address: a restarted agent adopts them, and if none comes back the
    /// kernel lifetimes (tied to the lease) expire them.
    pub async fn run(mut self) -> i32 {
        use tokio::signal::unix::{signal, SignalKind};
        let (mut term, mut int) = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(t), Ok(i)) => (t, i),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!("cannot install signal handlers: {e}");
                return 1;
            }
        };
        // `dirty`: pass now (what is wanted changed, or the lease did).
        // `soon`: pass within MIN_PASS_GAP (an address event, a finished
        // add): a pass reads every address, so with thousands of adds
        // finishing one by one, a pass per trigger would be quadratic.
        let (mut dirty, mut soon) = (false, false);
        let mut last_pass = Instant::now();
        loop {
            if dirty || (soon && Instant::now() >= last_pass + MIN_PASS_GAP) {
                (dirty, soon) = (false, false);
                last_pass = Instant::now();
                if !self.pass().await {
                    self.next_resync = self.next_resync.min(Instant::now() + PASS_RETRY);
                }
            }
            let fence_at = self.lease.filter(|_| !self.fenced).map(|l| l.expires_at());
            let retry_at = self.next_retry();
            tokio::select! {
                // Cancel-safe: `changed` only waits; the value stays in the
                // watch until we borrow it below.
                r = self.desired_rx.changed() => {
                    if r.is_err() { return 1; }
                    self.desired = self.desired_rx.borrow_and_update().clone();
                    dirty = true;
                }
                // Cancel-safe: as above.
                r = self.lease_rx.changed() => {
                    if r.is_err() { return 1; }
                    let lease = *self.lease_rx.borrow_and_update();
                    self.on_lease(lease).await;
                    dirty = true;
                }
                // Cancel-safe: a notification not consumed here stays
                // stored as a permit for the next `notified()`.
                _ = self.wake.notified() => soon = true,
                // Cancel-safe: an mpsc receive loses nothing when dropped.
                Some(ev) = self.task_rx.recv() => {
                    soon |= self.on_task_event(ev);
                    // Take whatever else is ready, so one pass covers it all.
                    while let Ok(ev) = self.task_rx.try_recv() {
                        soon |= self.on_task_event(ev);
                    }
                }
                // Cancel-safe: recomputed from `last_pass` every iteration.
                _ = tokio::time::sleep_until(last_pass + MIN_PASS_GAP), if soon => {}
                // Cancel-safe: the deadline lives in `self`, a dropped
                // sleep is recreated with it next iteration.
                _ = tokio::time::sleep_until(self.next_resync) => {
                    self.next_resync = Instant::now() + self.settings.resync;
                    dirty = true;
                }
                // Cancel-safe: recomputed from `self.retries` every iteration.
                _ = sleep_opt(retry_at) => dirty = true,
                // Cancel-safe: recomputed from `self.lease` every iteration.
                _ = sleep_opt(fence_at) => {
                    // A renewal may have landed in the watch at the same
                    // moment; only fence if the newest lease ran out too.
                    if self.lease_rx.has_changed().unwrap_or(false) {
                        let lease = *self.lease_rx.borrow_and_update();
                        self.on_lease(lease).await;
                    }
                    if self.lease.is_some_and(|l| l.expires_at() <= Instant::now()) {
                        self.fence().await;
                    }
                    dirty = true;
                }
                // Cancel-safe: signal streams keep undelivered signals.
                _ = term.recv() => {
                    tracing::info!("SIGTERM: exiting; managed addresses stay (a restart adopts them, lifetimes expire them otherwise)");
                    return 0;
                }
                // Cancel-safe: as above.
                _ = int.recv() => {
                    tracing::info!("SIGINT: exiting; managed addresses stay");
                    return 0;
                }
            }
        }
    }

    /// The earliest future retry; retries already due were handled by the
    /// pass that just ran (or wait for an add still in flight).
    fn next_retry(&self) -> Option<Instant> {
        let now = Instant::now();
        self.retries
            .values()
            .map(|r| r.next_at)
            .filter(|t| *t > now)
            .min()
    }

    fn dev_of(&self, network: &str) -> Option<&str> {
        self.settings
            .networks
            .iter()
            .find(|(n, _)| n == network)
            .map(|(_, d)| d.as_str())
    }

    /// The kernel lifetime new and refreshed addresses get: the lease's,
    /// or longer when this host holds many addresses (see
    /// [`lifetime_for`]).
    fn lifetime_s(&self) -> Option<u32> {
        let held = self.desired.as_ref().map_or(0, |d| d.addresses.len());
        self.lease.map(|l| lifetime_for(l.lifetime_s(), held))
    }

    /// A renewal succeeded: leave the fenced state if we were in it, and
    /// push the kernel lifetimes of the addresses we hold forward.
    async fn on_lease(&mut self, lease: Option<Lease>) {
        self.lease = lease;
        let Some(l) = lease else { return };
        if self.fenced {
            tracing::info!("lease regained: applying the desired state again");
            self.fenced = false;
        }
        let Some(lifetime) = self.lifetime_s() else {
            return;
        };
        // Only addresses that would run out before the lease just granted
        // need a refresh; with the lease's own lifetime that is all of them.
        let due = l.lifetime_s();
        let wanted = self.wanted_keys();
        for (_, dev) in self.settings.networks.clone() {
            let (Ok(link), Ok(held)) = (
                self.mgr.link(&dev).await,
                self.mgr.observed(Some(&dev)).await,
            ) else {
                continue;
            };
            for o in held {
                if !o.managed
                    || o.flags.dadfailed()
                    || o.valid_lft.is_some_and(|v| v > due)
                    || !wanted.contains(&(o.dev.clone(), o.addr))
                {
                    continue;
                }
                let Ok(addr) = FloatingAddr::new(o.addr, o.prefix_len) else {
                    continue;
                };
                // NLM_F_REPLACE: new lifetimes, no delete, no new DAD.
                if let Err(e) = self
                    .mgr
                    .refresh_lifetime_seen(&link, addr, o.flags, lifetime)
                    .await
                {
                    tracing::warn!(%addr, %dev, "lifetime refresh failed: {}", chain(&e));
                }
            }
        }
    }

    /// Keys the current desired state asks this host to hold.
    fn wanted_keys(&self) -> HashSet<Key> {
        let Some(d) = &self.desired else {
            return HashSet::new();
        };
        d.addresses
            .iter()
            .filter_map(|a| Some((self.dev_of(&a.network)?.to_owned(), a.address)))
            .collect()
    }

    /// Self-fencing (design §5): the lease ran out by our own clock, so
    /// fipd may already have handed our addresses to another host. Remove
    /// every managed address on the served interfaces, now.
    async fn fence(&mut self) {
        tracing::warn!(
            "lease expired without a successful renewal: removing every managed address (self-fencing)"
        );
        self.fenced = true;
        for (_, f) in self.in_flight.drain() {
            f.handle.abort();
        }
        for (_, dev) in self.settings.networks.clone() {
            match self.mgr.list_managed(Some(&dev)).await {
                Ok(held) => {
                    for m in held {
                        match self.mgr.remove(&dev, m.address, false).await {
                            Ok(_) => tracing::warn!(addr = %m.address, %dev, "fenced: removed"),
                            Err(e) => {
                                tracing::error!(addr = %m.address, %dev, "fencing removal failed: {}", chain(&e))
                            }
                        }
                    }
                }
                Err(e) => tracing::error!(%dev, "cannot list addresses to fence: {}", chain(&e)),
            }
        }
    }

    /// Queues a report for the reporter task. With `Send::IfChanged` a
    /// (state, revision) equal to the last one reported for this floating
    /// IP is skipped; returns whether it was queued.
    fn report(
        &mut self,
        id: Uuid,
        revision: i64,
        state: ReportedState,
        obs: Obs,
        when: Send,
    ) -> bool {
        if matches!(when, Send::IfChanged)
            && self.last_reported.get(&id) == Some(&(state, revision))
        {
            return false;
        }
        self.last_reported.insert(id, (state, revision));
        let _ = self.reports.send(Report {
            floating_ip_id: id,
            revision,
            state,
            dad_ms: obs.dad_ms,
            defender_mac: obs.defender_mac.map(|m| m.to_string()),
            na_sent: obs.na_sent,
            // fipd takes at most 1024 characters of detail.
            detail: obs.detail.map(|mut d| {
                if d.len() > 1000 {
                    let mut cut = 1000;
                    while !d.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    d.truncate(cut);
                }
                d
            }),
            observed_at: chrono::Utc::now(),
        });
        true
    }

    fn schedule_retry(&mut self, id: Uuid) {
        let j = self.jitter.factor();
        let r = self.retries.entry(id).or_insert(Retry {
            failures: 0,
            next_at: Instant::now(),
        });
        r.failures += 1;
        let d = backoff::delay(r.failures, j);
        r.next_at = Instant::now() + d;
        tracing::info!(%id, failures = r.failures, retry_in_ms = d.as_millis() as u64, "will retry");
    }

    /// The revision of `id` in the current desired state, if it is there.
    fn current_revision(&self, id: Uuid) -> Option<i64> {
        self.desired
            .as_ref()?
            .addresses
            .iter()
            .find(|a| a.floating_ip_id == id)
            .map(|a| a.revision)
    }

    /// Handles a message of an add task; returns whether a pass is due.
    fn on_task_event(&mut self, ev: TaskEvent) -> bool {
        match ev {
            TaskEvent::Verdict {
                generation,
                key,
                id,
                revision,
                result,
            } => {
                // An aborted task's last words are stale.
                if self.in_flight.get(&key).map(|f| f.generation) != Some(generation) {
                    return false;
                }
                // The address is still wanted here (else the task would have
                // been aborted), so the verdict holds for the floating IP's
                // current revision even if it moved on during DAD (e.g. a
                // description change, or a move away and back that this host
                // never acted on).
                let revision = self.current_revision(id).unwrap_or(revision);
                match result {
                    Ok((o, na_sent)) if o.outcome == Outcome::Active => {
                        if let Some(f) = self.in_flight.get_mut(&key) {
                            f.active = true;
                        }
                        tracing::info!(addr = %key.1, dev = %key.0, dad_ms = ?o.dad_ms, na_sent, adopted = !o.changed, "active");
                        self.retries.remove(&id);
                        let na = o.changed.then_some(na_sent);
                        self.report(
                            id,
                            revision,
                            ReportedState::Active,
                            Obs {
                                dad_ms: o.dad_ms,
                                na_sent: na,
                                ..Obs::default()
                            },
                            Send::Always,
                        );
                    }
                    Ok((o, _)) => {
                        let by = o
                            .defender_mac
                            .map_or("an unseen node".to_owned(), |m| m.to_string());
                        tracing::warn!(addr = %key.1, dev = %key.0, defender = %by, dad_ms = ?o.dad_ms, "DAD failed: the address is in use on the link; our copy was removed");
                        self.report(
                            id,
                            revision,
                            ReportedState::DadFailed,
                            Obs {
                                dad_ms: o.dad_ms,
                                defender_mac: o.defender_mac,
                                na_sent: Some(0),
                                detail: Some(format!("{} is defended by {by}", key.1)),
                            },
                            Send::Always,
                        );
                        self.schedule_retry(id);
                    }
                    Err(detail) => {
                        tracing::warn!(addr = %key.1, dev = %key.0, "add failed: {detail}");
                        self.report(
                            id,
                            revision,
                            ReportedState::Error,
                            Obs {
                                detail: Some(detail),
                                ..Obs::default()
                            },
                            Send::Always,
                        );
                        self.schedule_retry(id);
                    }
                }
                false
            }
            TaskEvent::Finished { generation, key } => {
                if self.in_flight.get(&key).map(|f| f.generation) == Some(generation) {
                    self.in_flight.remove(&key);
                }
                true
            }
        }
    }

    /// One reconcile pass. Returns false when the kernel could not be read
    /// (the caller retries soon).
    async fn pass(&mut self) -> bool {
        // Nothing to act on before the first desired state; nothing to act
        // on before the first lease either: without one we may not hold
        // addresses, and what we hold from a previous run is adopted once
        // we have it (kernel lifetimes cover the gap).
        let Some(desired) = self.desired.clone() else {
            return true;
        };
        if self.lease.is_none() {
            return true;
        }
        let mut observed: Vec<ObservedAddr> = Vec::new();
        for (_, dev) in self.settings.networks.clone() {
            match self.mgr.observed(Some(&dev)).await {
                Ok(v) => observed.extend(v),
                Err(e) => {
                    tracing::warn!(%dev, "cannot read addresses: {}", chain(&e));
                    return false;
                }
            }
        }
        let lifetime = self.lifetime_s();

        // Desired entries this agent can apply; the rest are reported.
        let mut want: Vec<DesiredAddr> = Vec::new();
        let mut meta: HashMap<Key, DesiredAddress> = HashMap::new();
        for d in &desired.addresses {
            let Some(dev) = self.dev_of(&d.network).map(str::to_owned) else {
                let served: Vec<&str> = self
                    .settings
                    .networks
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect();
                self.report(
                    d.floating_ip_id,
                    d.revision,
                    ReportedState::Error,
                    Obs {
                        detail: Some(format!(
                            "network {} is not served by this agent (it serves: {})",
                            d.network,
                            served.join(", ")
                        )),
                        ..Obs::default()
                    },
                    Send::IfChanged,
                );
                continue;
            };
            let addr = match FloatingAddr::new(d.address, d.prefix_len) {
                Ok(a) => a,
                Err(e) => {
                    self.report(
                        d.floating_ip_id,
                        d.revision,
                        ReportedState::Error,
                        Obs {
                            detail: Some(e.to_string()),
                            ..Obs::default()
                        },
                        Send::IfChanged,
                    );
                    continue;
                }
            };
            if !self.fenced {
                want.push(DesiredAddr {
                    dev: dev.clone(),
                    addr,
                    lifetime_s: lifetime,
                });
            }
            meta.insert((dev, d.address), d.clone());
        }
        let wanted_ids: HashSet<Uuid> =
            desired.addresses.iter().map(|d| d.floating_ip_id).collect();
        self.retries.retain(|id, _| wanted_ids.contains(id));
        // Forget what was reported for floating IPs fipd no longer mentions,
        // so the map does not grow with every address this host ever held.
        let removal_ids: HashSet<Uuid> =
            desired.removals.iter().map(|r| r.floating_ip_id).collect();
        self.last_reported
            .retain(|id, _| wanted_ids.contains(id) || removal_ids.contains(id));

        let mut p = plan(&want, &observed);
        // Lifetimes are refreshed on lease renewal, not on every pass: a
        // refresh is itself an address event, which would wake the loop again.
        for k in &mut p.unchanged {
            k.refresh_lifetime = false;
        }
        let wanted: HashSet<Key> = want
            .iter()
            .map(|d| (d.dev.clone(), d.addr.addr()))
            .collect();
        // An add whose address is no longer wanted stops here (its DAD
        // watch and NA train with it) before the address is removed.
        self.in_flight.retain(|k, f| {
            let keep = wanted.contains(k);
            if !keep {
                f.handle.abort();
            }
            keep
        });

        // Removals first (design §4 step 2), one by one, each confirmed.
        let mut still_held: HashSet<Key> = observed
            .iter()
            .filter(|o| o.managed)
            .map(|o| (o.dev.clone(), o.addr))
            .collect();
        let mut failed: HashMap<Key, String> = HashMap::new();
        for o in &p.to_remove {
            let key = (o.dev.clone(), o.addr);
            // A wanted address with an add in flight belongs to that task:
            // a dadfailed copy is its DAD verdict, and the task deletes it
            // after reading the defender (removing it here would turn the
            // verdict into "removed during DAD").
            if self.in_flight.contains_key(&key) {
                continue;
            }
            match self.mgr.remove(&o.dev, o.addr, false).await {
                Ok(_) => {
                    tracing::info!(addr = %o.addr, dev = %o.dev, "removed");
                    still_held.remove(&key);
                }
                Err(e) => {
                    tracing::warn!(addr = %o.addr, dev = %o.dev, "removal failed: {}", chain(&e));
                    failed.insert(key, chain(&e));
                }
            }
        }
        // Confirm removals fipd asked for: `absent` at the removal's
        // revision once the kernel no longer holds it (also when it never
        // did). An address wanted again on this host is not confirmed.
        for r in &desired.removals {
            let Some(dev) = self.dev_of(&r.network).map(str::to_owned) else {
                self.report(
                    r.floating_ip_id,
                    r.revision,
                    ReportedState::Absent,
                    Obs {
                        detail: Some(format!("network {} is not served here", r.network)),
                        ..Obs::default()
                    },
                    Send::IfChanged,
                );
                continue;
            };
            let key = (dev, r.address);
            if wanted.contains(&key) || wanted_ids.contains(&r.floating_ip_id) {
                continue;
            }
            if let Some(err) = failed.get(&key) {
                self.report(
                    r.floating_ip_id,
                    r.revision,
                    ReportedState::Error,
                    Obs {
                        detail: Some(format!("removal failed: {err}")),
                        ..Obs::default()
                    },
                    Send::IfChanged,
                );
            } else if !still_held.contains(&key) {
                self.report(
                    r.floating_ip_id,
                    r.revision,
                    ReportedState::Absent,
                    Obs::default(),
                    Send::IfChanged,
                );
            }
        }
        if self.fenced {
            return true;
        }

        // Additions: each in its own task so DAD runs concurrently and the
        // loop stays responsive (a move away must not wait for a DAD).
        let now = Instant::now();
        for d in &p.to_add {
            let key = (d.dev.clone(), d.addr.addr());
            if self.in_flight.contains_key(&key) || failed.contains_key(&key) {
                continue;
            }
            let Some(m) = meta.get(&key).cloned() else {
                continue;
            };
            if self
                .retries
                .get(&m.floating_ip_id)
                .is_some_and(|r| r.next_at > now)
            {
                continue;
            }
            self.spawn_add(key, d.addr, &m);
        }
        for k in &p.unchanged {
            let key = (k.desired.dev.clone(), k.desired.addr.addr());
            // An add still waiting for its verdict reports itself; one that
            // only sends further NAs is as good as adopted (this matters
            // when the revision moved on meanwhile).
            let in_flight = self.in_flight.get(&key).map(|f| f.active);
            if in_flight == Some(false) {
                continue;
            }
            let Some(m) = meta.get(&key).cloned() else {
                continue;
            };
            match k.state {
                // Still tentative from an earlier run (or an add we lost
                // track of): wait for its verdict rather than restart DAD.
                AddrState::Tentative if in_flight.is_none() => {
                    self.spawn_add(key, k.desired.addr, &m)
                }
                AddrState::Tentative => {}
                // Already right: adopt it as is (no DAD, so no dad_ms).
                _ => {
                    if self.report(
                        m.floating_ip_id,
                        m.revision,
                        ReportedState::Active,
                        Obs::default(),
                        Send::IfChanged,
                    ) {
                        tracing::info!(addr = %key.1, dev = %key.0, revision = m.revision, adopted = true, "active");
                    }
                }
            }
        }
        for b in &p.blocked {
            let key = (b.desired.dev.clone(), b.desired.addr.addr());
            let Some(m) = meta.get(&key).cloned() else {
                continue;
            };
            let detail = match b.reason {
                BlockReason::Foreign => format!(
                    "{} is on {} of this host but not managed by fip-agent (no IFA_PROTO 0xf1 mark); not touching it",
                    key.1, key.0
                ),
                BlockReason::ConflictingDesired => {
                    "the desired state lists this address twice with different settings".into()
                }
            };
            self.report(
                m.floating_ip_id,
                m.revision,
                ReportedState::Error,
                Obs {
                    detail: Some(detail),
                    ..Obs::default()
                },
                Send::IfChanged,
            );
        }
        true
    }

    /// Starts one add: reports `tentative` (DAD is about to start), then
    /// adds, waits for the verdict and announces in a task of its own.
    fn spawn_add(&mut self, key: Key, addr: FloatingAddr, d: &DesiredAddress) {
        let dad = self.settings.dad.unwrap_or(match d.dad {
            fip_types::DadMode::Strict => DadMode::Strict,
            fip_types::DadMode::Optimistic => DadMode::Optimistic,
            fip_types::DadMode::Off => DadMode::Off,
        });
        let na = NaOptions {
            count: self.settings.na_count.unwrap_or(d.na_count),
            interval: Duration::from_millis(
                self.settings.na_interval_ms.unwrap_or(d.na_interval_ms),
            ),
        };
        let opts = AddOptions {
            dad,
            timeout: self.settings.dad_timeout,
            lifetime_s: self.lifetime_s(),
        };
        let (id, revision) = (d.floating_ip_id, d.revision);
        self.report(
            id,
            revision,
            ReportedState::Tentative,
            Obs::default(),
            Send::Always,
        );
        self.next_generation += 1;
        let generation = self.next_generation;
        let mgr = self.mgr.clone();
        let tx = self.task_tx.clone();
        let k = key.clone();
        tracing::info!(%addr, dev = %key.0, ?dad, "adding");
        let slots = self.add_slots.clone();
        let handle = tokio::spawn(async move {
            // Held until the verdict; the rest of the NA train needs no slot.
            // Cancel-safe: aborting the task while queued drops nothing else.
            let mut slot = slots.acquire_owned().await.ok();
            let mut verdict_sent = false;
            let res = mgr
                .add_and_announce(&k.0, addr, &opts, &na, |o, n| {
                    // The optimistic line is not a verdict; `tentative`
                    // was reported already.
                    if o.outcome == Outcome::Optimistic {
                        return;
                    }
                    slot.take();
                    verdict_sent = true;
                    let _ = tx.send(TaskEvent::Verdict {
                        generation,
                        key: k.clone(),
                        id,
                        revision,
                        result: Ok((o.clone(), n)),
                    });
                })
                .await;
            match res {
                Err(e) if !verdict_sent => {
                    let _ = tx.send(TaskEvent::Verdict {
                        generation,
                        key: k.clone(),
                        id,
                        revision,
                        result: Err(chain(&e)),
                    });
                }
                // The verdict went out; a later NA failed (the address was
                // removed meanwhile, e.g. by a move away).
                Err(e) => tracing::debug!(%addr, "NA train ended early: {}", chain(&e)),
                Ok(_) => {}
            }
            let _ = tx.send(TaskEvent::Finished { generation, key: k });
        });
        self.in_flight.insert(
            key,
            InFlight {
                generation,
                handle,
                active: false,
            },
        );
    }
}

/// Kernel time a lifetime refresh may take per address held, as a bound
/// for the lifetime: each refresh makes the kernel walk every address of
/// the host (about 1.4 ms each with 10,000 held), so refreshing all of them
/// on every renewal grows with the square of their number and, past a few
/// thousand, takes longer than the lease. A longer lifetime is refreshed
/// less often: 40 ms per address keeps refreshing under ~4 % of the time.
const LIFETIME_PER_ADDRESS_MS: u64 = 40;

/// The lease's lifetime, raised to `held` × [`LIFETIME_PER_ADDRESS_MS`]. The
/// cost: an agent that dies without fencing leaves its addresses in the
/// kernel that long (the next host's DAD then fails and is retried).
fn lifetime_for(lease_s: u32, held: usize) -> u32 {
    let scaled = (held as u64)
        .saturating_mul(LIFETIME_PER_ADDRESS_MS)
        .div_ceil(1000);
    lease_s.max(scaled.min(u64::from(u32::MAX - 1)) as u32)
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::lifetime_for;

    #[test]
    fn few_addresses_live_as_long_as_the_lease() {
        assert_eq!(lifetime_for(10, 0), 10);
        assert_eq!(lifetime_for(10, 1), 10);
        assert_eq!(lifetime_for(10, 250), 10);
    }

    #[test]
    fn many_addresses_get_a_lifetime_that_grows_with_their_number() {
        assert_eq!(lifetime_for(10, 251), 11);
        assert_eq!(lifetime_for(10, 10_000), 400);
        assert_eq!(lifetime_for(1, usize::MAX), u32::MAX - 1);
    }
}
