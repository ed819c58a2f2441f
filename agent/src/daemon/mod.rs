//! `fip-agent run`: the daemon that holds a lease with fipd, long-polls the
//! host's desired state, reconciles the kernel against it and reports back.
//!
//! Tasks (all on the one-threaded runtime of `main`, so every socket lives
//! in the namespace the process started in; nothing here calls `setns`):
//! - `lease_loop`: renews the lease; publishes each success on a watch.
//! - `desired_loop`: long-polls the desired state; publishes each new one.
//! - `reporter_loop`: delivers reports in order, retrying while fipd is away.
//! - the manager's address monitor: routes each address event to the add
//!   waiting on it, and wakes the reconciler for the others.
//! - [`reconciler::Reconciler`]: the level-triggered loop; it alone touches
//!   the kernel, and it fences the host when the lease runs out.

pub mod backoff;
pub mod client;
pub mod config;
pub mod reconciler;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use fip_types::{DesiredState, LeaseRequest, Report, ReportBatch, ServedNetwork};
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;

use crate::error::EXIT_BAD_INPUT;
use crate::manager::{self, AddressManager};
use crate::net::netlink::Netlink;
use client::{chain, Api};
use config::{RunArgs, Settings};

/// How long one desired-state poll may be held by fipd (it allows 60 s).
pub const POLL_WAIT: Duration = Duration::from_millis(25_000);
/// Reports per request: far below fipd's 8 MiB body limit.
const REPORT_CHUNK: usize = 1000;

/// A lease fipd granted. Its clock starts when the request was *sent*: the
/// server cannot have granted it earlier, so the agent's idea of expiry is
/// never later than fipd's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub sent_at: Instant,
    pub ttl: Duration,
}

impl Lease {
    pub fn expires_at(&self) -> Instant {
        self.sent_at + self.ttl
    }

    /// Kernel lifetime for managed addresses: the TTL rounded up to whole
    /// seconds (the kernel's unit), at least 1.
    pub fn lifetime_s(&self) -> u32 {
        let ms = self.ttl.as_millis().max(1);
        ms.div_ceil(1000).min(u128::from(u32::MAX - 1)) as u32
    }
}

/// Runs the daemon until SIGTERM/SIGINT; returns the exit code.
pub async fn run(args: RunArgs) -> i32 {
    let settings = match Settings::load(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fip-agent: error: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    let mgr = match AddressManager::new() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("fip-agent: error: {}", chain(&e));
            return e.exit_code();
        }
    };
    // Served interfaces must exist and take IPv6 now: a typo in the config
    // should stop the daemon at once rather than surface as address errors.
    let mut served_index = HashSet::new();
    for (net, dev) in &settings.networks {
        match mgr.check(dev).await {
            Ok(c) if c.ipv6.disable_ipv6 => {
                eprintln!(
                    "fip-agent: error: network {net}: IPv6 is disabled on {dev} (net.ipv6.conf.{dev}.disable_ipv6=1)"
                );
                return EXIT_BAD_INPUT;
            }
            Ok(c) => {
                served_index.insert(c.ifindex);
            }
            Err(e) => {
                eprintln!("fip-agent: error: network {net}: {}", chain(&e));
                return e.exit_code();
            }
        }
    }
    let api = match Api::new(&settings.api_url, &settings.token) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fip-agent: error: {}", chain(&e));
            return 1;
        }
    };
    tracing::info!(
        api = %settings.api_url,
        networks = ?settings.networks,
        "fip-agent {} starting",
        env!("CARGO_PKG_VERSION")
    );

    // The lease renewal reads the interfaces on a netlink socket of its
    // own, so it never waits behind thousands of queued address changes.
    let lease_nl = match Netlink::new() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("fip-agent: error: {}", chain(&e));
            return e.exit_code();
        }
    };
    let (lease_tx, lease_rx) = watch::channel(None);
    let (desired_tx, desired_rx) = watch::channel(None);
    let (report_tx, report_rx) = mpsc::unbounded_channel();
    let wake = Arc::new(Notify::new());
    // Address events of served links that no add in flight claims (someone
    // removed our address, a lifetime ran out) wake the reconciler.
    mgr.monitor().set_listener(served_index, wake.clone());
    wake.notify_one();
    let tasks = [
        tokio::spawn(lease_loop(
            api.clone(),
            lease_nl,
            settings.networks.clone(),
            lease_tx,
        )),
        tokio::spawn(desired_loop(api.clone(), desired_tx)),
        tokio::spawn(reporter_loop(api, report_rx)),
    ];
    let code = reconciler::Reconciler::new(mgr, settings, lease_rx, desired_rx, report_tx, wake)
        .run()
        .await;
    for t in tasks {
        t.abort();
    }
    code
}

/// The lease request: version, served networks with MACs, `check` findings.
async fn lease_request(nl: &Netlink, networks: &[(String, String)]) -> LeaseRequest {
    let mut served = Vec::new();
    let mut findings = Vec::new();
    for (net, dev) in networks {
        match manager::check(nl, dev).await {
            Ok(c) => {
                served.push(ServedNetwork {
                    network: net.clone(),
                    interface: dev.clone(),
                    mac: c.mac.map(|m| m.to_string()),
                });
                findings.extend(c.warnings);
            }
            Err(e) => {
                served.push(ServedNetwork {
                    network: net.clone(),
                    interface: dev.clone(),
                    mac: None,
                });
                findings.push(format!("{dev}: {}", chain(&e)));
            }
        }
    }
    findings.truncate(100);
    for f in &mut findings {
        if f.len() > 1000 {
            let mut cut = 1000;
            while !f.is_char_boundary(cut) {
                cut -= 1;
            }
            f.truncate(cut);
        }
    }
    LeaseRequest {
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        networks: served,
        findings,
        kernel_lifetime_max_ms: None,
        dad_override: None,
    }
}

/// Renews the lease every `renew_after_ms` (a third of the TTL); after a
/// failure it retries after a tenth of the TTL, so several attempts fit
/// before the lease runs out. Each success is published with the instant
/// its request was sent.
async fn lease_loop(
    api: Api,
    nl: Netlink,
    networks: Vec<(String, String)>,
    tx: watch::Sender<Option<Lease>>,
) {
    // Until fipd tells us the TTL, assume its default (10 s).
    let mut ttl = Duration::from_secs(10);
    let mut failing = false;
    loop {
        let req = lease_request(&nl, &networks).await;
        let sent_at = Instant::now();
        // A renewal that takes longer than a third of the lease is as good
        // as failed: give up on it and retry.
        let timeout = (ttl / 3).max(Duration::from_millis(200));
        match api.lease(&req, timeout).await {
            Ok(resp) => {
                ttl = Duration::from_millis(resp.lease_ttl_ms.max(1));
                if failing {
                    tracing::info!(host = %resp.host, "lease renewed again");
                    failing = false;
                }
                tracing::debug!(host = %resp.host, ttl_ms = resp.lease_ttl_ms, "lease renewed");
                tx.send_replace(Some(Lease { sent_at, ttl }));
                let renew =
                    Duration::from_millis(resp.renew_after_ms.clamp(1, resp.lease_ttl_ms.max(1)));
                tokio::time::sleep_until(sent_at + renew).await;
            }
            Err(e) => {
                if !failing || e.is_client_error() {
                    tracing::warn!("lease renewal failed: {}", chain(&e));
                }
                failing = true;
                let retry = (ttl / 10).clamp(Duration::from_millis(50), Duration::from_secs(2));
                tokio::time::sleep_until(sent_at + retry).await;
            }
        }
    }
}

/// Long-polls the desired state and publishes every state that differs
/// from the last one (revision or content; a fipd with a fresh database
/// may count revisions again from the start).
async fn desired_loop(api: Api, tx: watch::Sender<Option<DesiredState>>) {
    let mut after = 0;
    let mut delay = Duration::from_millis(100);
    loop {
        match api.desired_state(after, POLL_WAIT).await {
            Ok(state) => {
                delay = Duration::from_millis(100);
                after = state.revision;
                tx.send_if_modified(|cur| {
                    if cur.as_ref() == Some(&state) {
                        false
                    } else {
                        tracing::debug!(revision = state.revision, "new desired state");
                        *cur = Some(state);
                        true
                    }
                });
            }
            Err(e) => {
                tracing::warn!("desired-state poll failed: {}", chain(&e));
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Delivers reports in the order they were made, in batches; while fipd is
/// unreachable they queue and are retried (reports carry revisions, so a
/// late one cannot undo a newer one). A 4xx answer drops the batch: sending
/// it again would fail the same way.
async fn reporter_loop(api: Api, mut rx: mpsc::UnboundedReceiver<Report>) {
    let mut pending: Vec<Report> = Vec::new();
    let mut delay = Duration::from_millis(100);
    loop {
        if pending.is_empty() {
            match rx.recv().await {
                Some(r) => pending.push(r),
                None => return,
            }
        }
        while let Ok(r) = rx.try_recv() {
            pending.push(r);
        }
        let n = pending.len().min(REPORT_CHUNK);
        let batch = ReportBatch {
            reports: pending[..n].to_vec(),
        };
        match api.reports(&batch).await {
            Ok(res) => {
                tracing::debug!(
                    accepted = res.accepted,
                    ignored = res.ignored,
                    "reports delivered"
                );
                pending.drain(..n);
                delay = Duration::from_millis(100);
            }
            Err(e) if e.is_client_error() => {
                tracing::warn!("fipd refused {n} report(s), dropping them: {}", chain(&e));
                pending.drain(..n);
            }
            Err(e) => {
                tracing::warn!("report delivery failed, will retry: {}", chain(&e));
                if pending.len() > 10 * REPORT_CHUNK {
                    // A long outage: keep only the newest report per address.
                    let mut seen = HashSet::new();
                    pending.reverse();
                    pending.retain(|r| seen.insert(r.floating_ip_id));
                    pending.reverse();
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(ms: u64) -> Lease {
        Lease {
            sent_at: Instant::now(),
            ttl: Duration::from_millis(ms),
        }
    }

    #[test]
    fn lifetimes_are_the_ttl_rounded_up_to_whole_seconds() {
        assert_eq!(lease(1500).lifetime_s(), 2);
        assert_eq!(lease(10_000).lifetime_s(), 10);
        assert_eq!(lease(10_001).lifetime_s(), 11);
        assert_eq!(lease(1).lifetime_s(), 1);
    }

    #[test]
    fn the_lease_runs_from_when_the_renewal_was_sent() {
        let l = lease(3000);
        assert_eq!(l.expires_at() - l.sent_at, Duration::from_millis(3000));
    }
}
