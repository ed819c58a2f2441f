//! Self-fencing (design §5): the moment the lease runs out by the agent's
//! own boot clock, remove every managed address on the served interfaces,
//! all at once. A task of its own, so it never waits for a reconcile pass
//! or a lease renewal in progress; it closes the lease gate first, so no
//! add can slip in behind it (docs/agent-daemon.md).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use tokio::sync::{watch, Notify};

use super::client::chain;
use super::lease::{sleep_until_boot, BootInstant, Gate, Standing};
use crate::manager::FIP_ADDR_PROTO;
use crate::net::netlink::Netlink;

/// How often the fence looks at the boot clock while it waits (tokio's
/// timers stop during suspend; the boot clock does not).
const CLOCK_STEP: Duration = Duration::from_millis(100);
/// Deletions in flight at once on the fence's socket.
const PARALLEL_DELETES: usize = 64;
/// Rounds of "dump, delete everything" before giving up until next time.
const ROUNDS: usize = 5;

/// What one fence did, for logs and the benchmark.
#[derive(Debug, Clone, Copy, Default)]
pub struct FenceReport {
    pub removed: usize,
    pub left: usize,
    pub took: Duration,
}

/// Runs forever: fences whenever the lease runs out. `main` is the socket
/// adds use (a barrier on it proves their queued writes are done); `nl`
/// is the fence's own. Each finished fence bumps `done`; `restart` asks
/// for a fresh desired state when a renewal that arrived during the fence
/// starts a new lease at once.
pub async fn fence_loop(
    gate: Arc<Gate>,
    main: Netlink,
    nl: Netlink,
    interfaces: Vec<String>,
    done: watch::Sender<u64>,
    restart: Arc<Notify>,
) {
    let mut changes = gate.subscribe();
    loop {
        match gate.standing() {
            Standing::Serving { lease, .. } => {
                tokio::select! {
                    // Cancel-safe: recomputed from the gate every iteration.
                    _ = sleep_until_boot(lease.expires_at(), CLOCK_STEP) => {}
                    // Cancel-safe: a watch keeps its newest value.
                    r = changes.changed() => {
                        if r.is_err() { return; }
                        continue;
                    }
                }
            }
            Standing::Fencing { .. } => {}
            Standing::Unleased | Standing::Fenced => {
                if changes.changed().await.is_err() {
                    return;
                }
                continue;
            }
        }
        let lapsed = gate.deadline();
        if !gate.close_if_expired().await {
            continue;
        }
        let late = lapsed.map(|d| BootInstant::now().saturating_duration_since(d));
        tracing::warn!(
            "lease expired without a successful renewal: removing every managed address (self-fencing)"
        );
        // Every write queued on the adds' socket before the gate closed
        // has reached the kernel once this answers.
        if let Err(e) = main.barrier().await {
            tracing::warn!("netlink barrier failed: {}", chain(&e));
        }
        let report = remove_all(&nl, &interfaces).await;
        tracing::warn!(
            removed = report.removed,
            left = report.left,
            took_ms = report.took.as_millis() as u64,
            late_ms = late.map(|l| l.as_millis() as u64),
            "fenced: removed {} managed addresses in {} ms",
            report.removed,
            report.took.as_millis()
        );
        let serving_again = gate.fenced();
        done.send_modify(|v| *v = v.wrapping_add(1));
        if serving_again {
            restart.notify_one();
        }
    }
}

/// Dumps the managed addresses of `interfaces` and deletes them all,
/// pipelined on one socket, until a dump shows none (or `ROUNDS` ran).
pub async fn remove_all(nl: &Netlink, interfaces: &[String]) -> FenceReport {
    let started = Instant::now();
    let mut report = FenceReport::default();
    for round in 0..=ROUNDS {
        let mut todo = Vec::new();
        for dev in interfaces {
            let link = match nl.link(dev).await {
                Ok(l) => l,
                // Gone with its addresses, or unreadable: nothing to do
                // here that the kernel lifetimes will not do.
                Err(e) => {
                    tracing::debug!(%dev, "fence skips the interface: {}", chain(&e));
                    continue;
                }
            };
            match nl.addresses(Some(link.index)).await {
                Ok(addrs) => todo.extend(
                    addrs
                        .into_iter()
                        .filter(|a| a.proto == FIP_ADDR_PROTO)
                        .map(|a| (link.clone(), a.addr, a.prefix_len)),
                ),
                Err(e) => tracing::error!(%dev, "cannot list addresses to fence: {}", chain(&e)),
            }
        }
        report.left = todo.len();
        if todo.is_empty() || round == ROUNDS {
            break;
        }
        let removed: usize = stream::iter(todo)
            .map(|(link, addr, len)| async move {
                match nl.del(&link, addr, len).await {
                    Ok(()) => 1,
                    Err(e) => {
                        tracing::debug!(%addr, "fence delete: {}", chain(&e));
                        0
                    }
                }
            })
            .buffer_unordered(PARALLEL_DELETES)
            .fold(0, |n, r| async move { n + r })
            .await;
        report.removed += removed;
    }
    report.took = started.elapsed();
    report
}
