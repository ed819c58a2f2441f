//! The daemon's level-triggered reconcile loop: it executes what
//! [`crate::reconcile::decide`] decides. A pass stops the adds that are no
//! longer wanted (and waits for them to end), reads the kernel, decides,
//! removes, reports, then starts adds (each DAD in a task of its own).
//! Lifetimes are refreshed when the lease is renewed. Self-fencing runs in
//! a task of its own ([`super::fence`]); this loop only learns about it.
//!
//! Triggers (a new desired state, an address event, the resync timer, a
//! retry timer, a finished add, a fence) only mark the loop dirty; every
//! pass reads the whole desired state and the whole observed state again,
//! so a missed or duplicated trigger costs at most one extra pass, never
//! correctness.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use fip_types::{Report, ReportedState};
use futures_util::stream::{self, StreamExt};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

use super::backoff::{self, Jitter};
use super::client::chain;
use super::config::Settings;
use super::lease::{Gate, Lease, Standing};
use super::{Fetched, Shared};
use crate::addr::{FloatingAddr, Mac};
use crate::error::AgentError;
use crate::manager::{AddOptions, AddOutcome, AddressManager, NaOptions, Outcome};
use crate::reconcile::decide::{
    decide, wanted_keys, AddJob, AddTrack, DevView, Inputs, Key, Observation, Say,
};

/// A pass that could not read the kernel is retried this soon.
const PASS_RETRY: Duration = Duration::from_secs(1);

/// Passes for address events and finished adds are at least this far apart
/// (see `Reconciler::run`); changes to what is wanted do not wait.
const MIN_PASS_GAP: Duration = Duration::from_millis(50);

/// Adds waiting for a DAD verdict at once (see `Reconciler::add_slots`).
const MAX_PENDING_DAD: usize = 4096;

/// Removals in flight at once.
const PARALLEL_REMOVALS: usize = 32;

/// Passes in a row that could not read a served interface before the agent
/// stops renewing its lease: a host whose kernel cannot be read cannot
/// confirm any move away from it, so it should fence rather than stay
/// alive (docs/agent-daemon.md).
const UNREADABLE_PASSES: u32 = 3;

/// What an add task tells the loop.
enum TaskEvent {
    /// The verdict, sent as soon as it is known: for `active` that is when
    /// the first NA is out (the rest follow in the same task).
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
#[derive(Clone, Copy, PartialEq, Eq)]
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
    announced: bool,
}

/// Retry state of one floating IP after a DAD failure or an error.
struct Retry {
    failures: u32,
    next_at: Instant,
}

pub struct Reconciler {
    mgr: AddressManager,
    settings: Settings,
    gate: Arc<Gate>,
    shared: Arc<Shared>,
    lease_rx: watch::Receiver<Option<Lease>>,
    desired_rx: watch::Receiver<Option<Fetched>>,
    fence_rx: watch::Receiver<u64>,
    reports: mpsc::UnboundedSender<Report>,
    wake: Arc<Notify>,
    task_tx: mpsc::UnboundedSender<TaskEvent>,
    task_rx: mpsc::UnboundedReceiver<TaskEvent>,

    desired: Option<Fetched>,
    lease: Option<Lease>,
    in_flight: HashMap<Key, InFlight>,
    /// The read number current when the last add of a key ended; see
    /// [`crate::reconcile::decide::AddTrack::ended_at`].
    ended_at: HashMap<Key, u64>,
    /// The number of the newest kernel read.
    seq: u64,
    next_generation: u64,
    retries: HashMap<Uuid, Retry>,
    jitter: Jitter,
    /// The last (state, revision) reported per floating IP, so unchanged
    /// state is not re-sent on every pass.
    last_reported: HashMap<Uuid, (ReportedState, i64)>,
    next_resync: Instant,
    unreadable_passes: u32,
    /// Whether the last pass could add (to log when that comes back).
    could_add: bool,
    /// Bounds adds waiting for a DAD verdict at once, so a desired state of
    /// tens of thousands of addresses does not hold that many tasks, kernel
    /// timers and reports in flight. Waiting costs little (events and
    /// captures are shared), and DAD time is spent in the kernel's timers,
    /// so the bound is wide: it must not serialise the DAD runs.
    add_slots: Arc<tokio::sync::Semaphore>,
}

/// The channels the daemon wires a reconciler to.
pub struct Wiring {
    pub lease_rx: watch::Receiver<Option<Lease>>,
    pub desired_rx: watch::Receiver<Option<Fetched>>,
    pub fence_rx: watch::Receiver<u64>,
    pub reports: mpsc::UnboundedSender<Report>,
    pub wake: Arc<Notify>,
}

impl Reconciler {
    pub fn new(
        mgr: AddressManager,
        settings: Settings,
        gate: Arc<Gate>,
        shared: Arc<Shared>,
        w: Wiring,
    ) -> Self {
        let (task_tx, task_rx) = mpsc::unbounded_channel();
        let next_resync = Instant::now() + settings.resync;
        Self {
            mgr,
            settings,
            gate,
            shared,
            lease_rx: w.lease_rx,
            desired_rx: w.desired_rx,
            fence_rx: w.fence_rx,
            reports: w.reports,
            wake: w.wake,
            task_tx,
            task_rx,
            desired: None,
            lease: None,
            in_flight: HashMap::new(),
            ended_at: HashMap::new(),
            seq: 0,
            next_generation: 0,
            retries: HashMap::new(),
            jitter: Jitter::new(),
            last_reported: HashMap::new(),
            next_resync,
            unreadable_passes: 0,
            could_add: false,
            add_slots: Arc::new(tokio::sync::Semaphore::new(MAX_PENDING_DAD)),
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
                // Cancel-safe: as above. The fence ran: every address is
                // gone, so adds still running are moot.
                r = self.fence_rx.changed() => {
                    if r.is_err() { return 1; }
                    self.fence_rx.borrow_and_update();
                    self.stop_adds(None).await;
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

    /// The kernel lifetime new and refreshed addresses get (see
    /// [`Shared::lifetime_s`]).
    fn lifetime_s(&self) -> Option<u32> {
        self.lease.map(|l| self.shared.lifetime_s(l))
    }

    /// A renewal succeeded: push the kernel lifetimes of the addresses we
    /// hold forward. Every refresh passes the lease gate, like an add.
    async fn on_lease(&mut self, lease: Option<Lease>) {
        self.lease = lease;
        let Some(l) = lease else { return };
        if !matches!(self.gate.standing(), Standing::Serving { .. }) {
            return;
        }
        let lifetime = self.shared.lifetime_s(l);
        // Only addresses that would run out before the lease just granted
        // need a refresh; with the lease's own lifetime that is all of them.
        let due = l.lifetime_s();
        let wanted = self
            .desired
            .as_ref()
            .map(|d| wanted_keys(&d.state, &self.settings.networks))
            .unwrap_or_default();
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
                match self
                    .mgr
                    .refresh_lifetime_seen(&link, addr, o.flags, lifetime)
                    .await
                {
                    Ok(()) => {}
                    Err(AgentError::LeaseExpired) => return,
                    Err(e) => {
                        tracing::warn!(%addr, %dev, "lifetime refresh failed: {}", chain(&e))
                    }
                }
            }
        }
    }

    /// Stops the adds of the keys not in `keep` (all of them with `None`)
    /// and waits until each task has really ended, stamping the end with
    /// the current read number: a read that starts after this sees
    /// whatever they did (their socket is the one reads use, and it keeps
    /// the order of requests).
    async fn stop_adds(&mut self, keep: Option<&HashSet<Key>>) {
        let stop: Vec<Key> = self
            .in_flight
            .keys()
            .filter(|k| keep.is_none_or(|keep| !keep.contains(*k)))
            .cloned()
            .collect();
        for key in stop {
            if let Some(f) = self.in_flight.remove(&key) {
                f.handle.abort();
                let _ = f.handle.await;
                self.ended_at.insert(key, self.seq);
            }
        }
    }

    /// Reads every served interface (and, when a removal names a network
    /// this agent does not serve, every other interface too).
    async fn observe(&mut self, fetched: &Fetched) -> Observation {
        self.seq += 1;
        let mut obs = Observation {
            seq: self.seq,
            devs: BTreeMap::new(),
            unserved: None,
        };
        for (_, dev) in self.settings.networks.clone() {
            let view = match self.mgr.observed(Some(&dev)).await {
                Ok(v) => DevView::Read(v),
                Err(AgentError::NoSuchInterface(_)) => DevView::Vanished,
                Err(e) => DevView::Unreadable(chain(&e)),
            };
            obs.devs.insert(dev, view);
        }
        let unserved = fetched
            .state
            .removals
            .iter()
            .any(|r| self.dev_of(&r.network).is_none());
        if unserved {
            let served: HashSet<&str> = self
                .settings
                .networks
                .iter()
                .map(|(_, d)| d.as_str())
                .collect();
            if let Ok(all) = self.mgr.observed(None).await {
                obs.unserved = Some(
                    all.into_iter()
                        .filter(|o| !served.contains(o.dev.as_str()))
                        .collect(),
                );
            }
        }
        obs
    }

    /// One reconcile pass. Returns false when the kernel could not be read
    /// (the caller retries soon).
    async fn pass(&mut self) -> bool {
        // Nothing to act on before the first desired state; nothing before
        // the first lease either: without one we may not hold addresses,
        // and what we hold from a previous run is adopted once we have it
        // (kernel lifetimes cover the gap).
        let Some(fetched) = self.desired.clone() else {
            return true;
        };
        let standing = self.gate.standing();
        // Adds need a lease that is valid now, and a desired state fetched
        // after this streak of renewals began: after a fence (or at start)
        // an older one may name addresses fipd has moved away meanwhile.
        let may_add = match standing {
            Standing::Unleased => return true,
            // The fence is deleting everything, and a pass follows when it
            // is done. A read now would only slow it: each one walks every
            // address under the lock the deletions need.
            Standing::Fencing { .. } => return true,
            Standing::Serving { lease, since } => {
                super::lease::BootInstant::now() < lease.expires_at() && fetched.sent_at >= since
            }
            Standing::Fenced => false,
        };
        if may_add && !self.could_add {
            tracing::info!("holding a desired state fetched under the current lease: applying it");
        }
        self.could_add = may_add;
        let desired = &fetched.state;
        self.shared.set_held(desired.addresses.len());
        // Adds wait for the renewal that announces the lifetime they need
        // (more addresses, a longer one); that renewal starts a pass.
        let may_add = may_add && self.lease.is_some_and(|l| self.shared.announced(l));

        // 1. Stop adds no longer wanted, and let them end, before reading:
        // a removal is confirmed only from a read after every add of that
        // address ended (reconcile::decide).
        let wanted = wanted_keys(desired, &self.settings.networks);
        self.stop_adds(Some(&wanted)).await;

        // 2. Read the kernel.
        let obs = self.observe(&fetched).await;
        self.shared.observe_lifetimes(&obs);

        // 3. Decide.
        let now = Instant::now();
        let wanted_ids: HashSet<Uuid> =
            desired.addresses.iter().map(|d| d.floating_ip_id).collect();
        self.retries.retain(|id, _| wanted_ids.contains(id));
        let removal_ids: HashSet<Uuid> =
            desired.removals.iter().map(|r| r.floating_ip_id).collect();
        self.last_reported
            .retain(|id, _| wanted_ids.contains(id) || removal_ids.contains(id));
        let backing_off: HashSet<Uuid> = self
            .retries
            .iter()
            .filter(|(_, r)| r.next_at > now)
            .map(|(id, _)| *id)
            .collect();
        let mut adds: HashMap<Key, AddTrack> = HashMap::new();
        for (k, f) in &self.in_flight {
            adds.insert(
                k.clone(),
                AddTrack {
                    in_flight: true,
                    announced: f.announced,
                    ended_at: None,
                },
            );
        }
        for (k, e) in &self.ended_at {
            adds.entry(k.clone()).or_default().ended_at = Some(*e);
        }
        let lifetime = self.lifetime_s();
        let d = decide(&Inputs {
            desired,
            networks: &self.settings.networks,
            may_add,
            obs: &obs,
            adds: &adds,
            backing_off: &backing_off,
            lifetime_s: lifetime,
        });
        // Ends older than this read are settled for good.
        self.ended_at.retain(|_, e| *e >= obs.seq);

        // A host whose kernel cannot be read stops renewing (and so fences)
        // rather than stay alive while no move away from it can finish.
        if d.unreadable.is_empty() {
            self.unreadable_passes = 0;
            self.shared.set_kernel_ok(true);
        } else {
            self.unreadable_passes += 1;
            for (dev, e) in &d.unreadable {
                tracing::warn!(%dev, "cannot read addresses: {e}");
            }
            if self.unreadable_passes >= UNREADABLE_PASSES {
                self.shared.set_kernel_ok(false);
            }
        }

        // 4. Removals first (design §4 step 2), pipelined; each confirms
        // its removals once the kernel no longer holds the address.
        let mgr = self.mgr.clone();
        let results: Vec<_> = stream::iter(d.remove.clone())
            .map(|r| {
                let mgr = mgr.clone();
                async move {
                    let res = mgr.remove(&r.addr.dev, r.addr.addr, false).await;
                    (r, res)
                }
            })
            .buffer_unordered(PARALLEL_REMOVALS)
            .collect()
            .await;
        for (r, res) in results {
            match res {
                Ok(_) => {
                    tracing::info!(addr = %r.addr.addr, dev = %r.addr.dev, "removed");
                    for (id, rev) in &r.confirms {
                        self.report(
                            *id,
                            *rev,
                            ReportedState::Absent,
                            Obs::default(),
                            Send::IfChanged,
                        );
                    }
                }
                Err(e) => {
                    let e = chain(&e);
                    tracing::warn!(addr = %r.addr.addr, dev = %r.addr.dev, "removal failed: {e}");
                    for (id, rev) in &r.confirms {
                        self.report(
                            *id,
                            *rev,
                            ReportedState::Error,
                            Obs {
                                detail: Some(format!("removal failed: {e}")),
                                ..Obs::default()
                            },
                            Send::IfChanged,
                        );
                    }
                }
            }
        }

        // 5. What the read showed.
        for Say {
            id,
            revision,
            state,
            detail,
        } in d.say
        {
            let adopted = state == ReportedState::Active;
            let sent = self.report(
                id,
                revision,
                state,
                Obs {
                    detail,
                    ..Obs::default()
                },
                Send::IfChanged,
            );
            if sent && adopted {
                tracing::info!(%id, revision, adopted = true, "active");
            }
        }

        // 6. Additions, each in its own task so DAD runs concurrently and
        // the loop stays responsive (a move away must not wait for a DAD).
        for job in d.add {
            self.spawn_add(job);
        }
        d.unreadable.is_empty()
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
        if when == Send::IfChanged && self.last_reported.get(&id) == Some(&(state, revision)) {
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
            .state
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
                // been stopped), so the verdict holds for the floating IP's
                // current revision even if it moved on during DAD.
                let revision = self.current_revision(id).unwrap_or(revision);
                match result {
                    Ok((o, na_sent)) if o.outcome == Outcome::Active => {
                        if let Some(f) = self.in_flight.get_mut(&key) {
                            f.announced = true;
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
                    self.ended_at.insert(key, self.seq);
                }
                true
            }
        }
    }

    /// Starts one add: reports `tentative` (DAD is about to start), then
    /// adds, waits for the verdict and announces in a task of its own.
    fn spawn_add(&mut self, job: AddJob) {
        let d = &job.desired;
        let dad = self.settings.dad.unwrap_or(d.dad);
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
        if !job.adopt_tentative {
            self.report(
                id,
                revision,
                ReportedState::Tentative,
                Obs::default(),
                Send::Always,
            );
        }
        self.next_generation += 1;
        let generation = self.next_generation;
        let mgr = self.mgr.clone();
        let tx = self.task_tx.clone();
        let key = job.key.clone();
        let addr = job.addr;
        tracing::info!(%addr, dev = %key.0, ?dad, "adding");
        let slots = self.add_slots.clone();
        let k = key.clone();
        let handle = tokio::spawn(async move {
            // Held until the verdict; the rest of the NA train needs no slot.
            // Cancel-safe: aborting the task while queued drops nothing else.
            let mut slot = slots.acquire_owned().await.ok();
            // Boxed, so a queued add (thousands of them when a host takes
            // up its addresses) holds only this small future, not the
            // add's whole state machine (bench/results.md, figure 6).
            Box::pin(async move {
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
                    // The lease ran out under it: the fence handles the rest,
                    // and there is nothing to tell fipd.
                    Err(AgentError::LeaseExpired) if !verdict_sent => {}
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
                    // removed meanwhile, e.g. by a move away or the fence).
                    Err(e) => tracing::debug!(%addr, "NA train ended early: {}", chain(&e)),
                    Ok(_) => {}
                }
                let _ = tx.send(TaskEvent::Finished { generation, key: k });
            })
            .await
        });
        self.in_flight.insert(
            key,
            InFlight {
                generation,
                handle,
                announced: false,
            },
        );
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
