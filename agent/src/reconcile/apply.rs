//! Applies a plan: removals first, then additions, carrying on past failures and returning a status per address.

use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use tokio::time::Instant;

use crate::error::AgentError;
use crate::manager::{AddOptions, AddressManager, DadMode, NaOptions, Outcome, RemoveOutcome};
use crate::reconcile::plan::{BlockReason, DesiredAddr, Plan};
use crate::reconcile::status::{AddrState, AddressStatus};

/// Adds in flight at once. Each holds a netlink subscription and an
/// AF_PACKET socket that sees all IPv6 traffic of its interface, so a large
/// desired state is worked through in batches rather than all at once.
const MAX_CONCURRENT_ADDS: usize = 16;

/// How additions are carried out.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    pub dad: DadMode,
    pub dad_timeout: Duration,
    pub na: NaOptions,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            dad: DadMode::Strict,
            dad_timeout: Duration::from_secs(10),
            na: NaOptions::default(),
        }
    }
}

fn ms(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

fn error_status(d: &DesiredAddr, started: Instant, e: &AgentError) -> AddressStatus {
    AddressStatus {
        dev: d.dev.clone(),
        address: d.addr.addr(),
        prefix_len: d.addr.prefix_len(),
        state: AddrState::Error,
        dad_ms: None,
        elapsed_ms: ms(started),
        defender_mac: None,
        na_sent: 0,
        detail: Some(error_chain(e)),
    }
}

/// The message with its sources, for a status the controller shows an operator.
fn error_chain(e: &AgentError) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

/// Carries out `plan` and reports one status per address it touched or
/// could not touch.
///
/// Removals run first and one by one, so an address that moves away from
/// this host is gone before anything else happens (design §4 step 2), and a
/// dadfailed copy is gone before its retry. Additions then run concurrently
/// (each DAD takes a second or two with default sysctls, and they are
/// independent; at most `MAX_CONCURRENT_ADDS` at a time), each announcing
/// itself once DAD passed. A failure on one address never stops the
/// others: it becomes an `error` status.
pub async fn apply(mgr: &AddressManager, plan: &Plan, opts: &ApplyOptions) -> Vec<AddressStatus> {
    let mut out = Vec::new();
    let mut failed_removals = Vec::new();

    for o in &plan.to_remove {
        let started = Instant::now();
        let mut st = AddressStatus {
            dev: o.dev.clone(),
            address: o.addr,
            prefix_len: o.prefix_len,
            state: AddrState::Absent,
            dad_ms: None,
            elapsed_ms: 0,
            defender_mac: None,
            na_sent: 0,
            detail: None,
        };
        // `force` is false on purpose: the plan only removes managed
        // addresses, and if the mark vanished in between we leave it alone.
        match mgr.remove(&o.dev, o.addr, false).await {
            Ok(RemoveOutcome::Removed | RemoveOutcome::Absent) => {}
            Err(e) => {
                st.state = AddrState::Error;
                st.detail = Some(error_chain(&e));
                failed_removals.push((o.dev.clone(), o.addr));
            }
        }
        st.elapsed_ms = ms(started);
        // A removal that is followed by a re-add reports through the add.
        let readded = plan
            .to_add
            .iter()
            .any(|d| d.dev == o.dev && d.addr.addr() == o.addr);
        if !readded || st.state == AddrState::Error {
            out.push(st);
        }
    }

    let adds = plan.to_add.iter().map(|d| async {
        let started = Instant::now();
        if failed_removals.contains(&(d.dev.clone(), d.addr.addr())) {
            // The old copy is still there; adding would fail with EEXIST.
            return None;
        }
        let add_opts = AddOptions {
            dad: opts.dad,
            timeout: opts.dad_timeout,
            lifetime_s: d.lifetime_s,
        };
        Some(
            match mgr
                .add_and_announce(&d.dev, d.addr, &add_opts, &opts.na, |_, _| {})
                .await
            {
                Ok((o, na_sent)) => AddressStatus {
                    dev: d.dev.clone(),
                    address: d.addr.addr(),
                    prefix_len: d.addr.prefix_len(),
                    state: match o.outcome {
                        Outcome::Active => AddrState::Active,
                        Outcome::DadFailed => AddrState::DadFailed,
                        Outcome::Optimistic => AddrState::Tentative,
                    },
                    dad_ms: o.dad_ms,
                    elapsed_ms: ms(started),
                    defender_mac: o.defender_mac,
                    na_sent,
                    detail: o.defender_mac.map(|m| format!("address defended by {m}")),
                },
                Err(e) => error_status(d, started, &e),
            },
        )
    });
    let mut added: Vec<AddressStatus> = stream::iter(adds)
        .buffer_unordered(MAX_CONCURRENT_ADDS)
        .filter_map(|s| async move { s })
        .collect()
        .await;
    added.sort_by(|a, b| (&a.dev, a.address).cmp(&(&b.dev, b.address)));
    out.extend(added);

    for k in &plan.unchanged {
        let started = Instant::now();
        let d = &k.desired;
        let mut st = AddressStatus {
            dev: d.dev.clone(),
            address: d.addr.addr(),
            prefix_len: d.addr.prefix_len(),
            state: k.state,
            dad_ms: None,
            elapsed_ms: 0,
            defender_mac: None,
            na_sent: 0,
            detail: None,
        };
        if let (true, Some(l)) = (k.refresh_lifetime, d.lifetime_s) {
            if let Err(e) = mgr.refresh_lifetime(&d.dev, d.addr, l).await {
                st = error_status(d, started, &e);
            }
        }
        st.elapsed_ms = ms(started);
        out.push(st);
    }

    for b in &plan.blocked {
        let d = &b.desired;
        out.push(AddressStatus {
            dev: d.dev.clone(),
            address: d.addr.addr(),
            prefix_len: d.addr.prefix_len(),
            state: AddrState::Error,
            dad_ms: None,
            elapsed_ms: 0,
            defender_mac: None,
            na_sent: 0,
            detail: Some(match b.reason {
                BlockReason::Foreign => format!(
                    "{} is on {} but not managed by fip-agent; not touching it",
                    d.addr.addr(),
                    d.dev
                ),
                BlockReason::ConflictingDesired => {
                    "the desired state lists this address twice with different settings".into()
                }
            }),
        });
    }
    out
}
