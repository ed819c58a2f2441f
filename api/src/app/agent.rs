//! The agent protocol (design brief §5–§6): lease renewal, the long-polled
//! desired state of a host, and reports of what the host observed.

use std::collections::{HashMap, HashSet};
use std::net::Ipv6Addr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use fip_types::{
    DesiredAddress, DesiredState, LeaseRequest, LeaseResponse, RemovalRequest, Report,
    ReportResult, ReportedState,
};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::changes::Touched;
use super::floating_ips::log;
use super::{App, AppError, AppResult, DadMode, Principal};
use crate::domain::Ipv6Prefix;
use crate::store::events::{self, NewEvent};
use crate::store::{bindings, floating_ips, hosts, now_ms, BindingRow, StoreError};

/// Longest long poll we hold open.
pub const MAX_WAIT_MS: u64 = 60_000;
/// How late the kernel may remove an address after its valid lifetime ran
/// out: lifetimes count in whole seconds and the expiry timer is rounded
/// up to the next second.
pub const KERNEL_EXPIRY_SLACK_MS: i64 = 2_000;

fn superseded() -> AppError {
    AppError::conflict(
        "poll_superseded",
        "a newer desired-state poll of this host started; this one ended",
    )
}
/// Most reports in one batch.
pub const MAX_REPORTS: usize = 10_000;

/// The host an agent token belongs to.
fn agent_host(who: &Principal) -> AppResult<(&str, &str)> {
    match who {
        Principal::Agent { host_id, host_name } => Ok((host_id, host_name)),
        _ => Err(AppError::Forbidden(
            "agent endpoints need an agent token".into(),
        )),
    }
}

/// The OpenAPI document gives the agent's unsigned fields the `format`
/// of their signed width (`int64`, `int32`), so what exceeds it is refused
/// as out of range.
fn check_at_most(field: &str, value: Option<u64>, max: u64) -> AppResult<()> {
    match value {
        Some(v) if v > max => Err(AppError::invalid(field, format!("at most {max}"))),
        _ => Ok(()),
    }
}

fn check_len(field: &str, value: &str, max: usize) -> AppResult<()> {
    if value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(AppError::invalid(
            field,
            format!("at most {max} printable characters"),
        ));
    }
    Ok(())
}

impl App {
    /// Renews the host's lease and records what its agent reports about
    /// itself. A host that was lost comes back: its floating IPs' status is
    /// recomputed.
    pub async fn agent_lease(
        &self,
        who: &Principal,
        req: LeaseRequest,
    ) -> AppResult<LeaseResponse> {
        let (host_id, host_name) = agent_host(who)?;
        check_len("agent_version", &req.agent_version, 64)?;
        if req.networks.len() > 64 {
            return Err(AppError::invalid("networks", "at most 64 entries"));
        }
        for (i, n) in req.networks.iter().enumerate() {
            check_len(&format!("networks[{i}].network"), &n.network, 255)?;
            check_len(&format!("networks[{i}].interface"), &n.interface, 15)?;
            if let Some(mac) = &n.mac {
                check_len(&format!("networks[{i}].mac"), mac, 17)?;
            }
        }
        if req.findings.len() > 100 {
            return Err(AppError::invalid("findings", "at most 100 entries"));
        }
        for (i, f) in req.findings.iter().enumerate() {
            check_len(&format!("findings[{i}]"), f, 1024)?;
        }
        let int64 = i64::MAX as u64;
        check_at_most("kernel_lifetime_max_ms", req.kernel_lifetime_max_ms, int64)?;
        check_at_most("fence_max_ms", req.fence_max_ms, int64)?;
        let ttl = self.config.lease_ttl_ms;
        let networks = serde_json::to_string(&req.networks).expect("serialisable");
        let findings = serde_json::to_string(&req.findings).expect("serialisable");
        let mut tx = self.store.lease_begin().await?;
        let before = hosts::get_for_update(&mut tx, &self.store, host_id)
            .await?
            .ok_or(AppError::NotFound("host"))?;
        // The lease runs on the one clock (the database's), read after the
        // host's lock: the agent sent its request before this instant, so
        // the expiry it computes on its own clock is never later than ours.
        let now = self.store.now(&mut tx).await?;
        let expires_at = now + ttl;
        // Durations the agent reports, as instants after our expiry (an
        // absurd value saturates rather than wraps).
        let after_expiry =
            |ms: u64| expires_at.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX / 4));
        let renewal = hosts::Renewal {
            host_id,
            now,
            expires_at,
            // Every lifetime the agent sets is set while its lease is valid,
            // so no copy outlives this lease's end by more than the longest
            // lifetime, plus the kernel's expiry granularity.
            backstop_at: req
                .kernel_lifetime_max_ms
                .map(|l| after_expiry(l).saturating_add(KERNEL_EXPIRY_SLACK_MS)),
            // The agent's self-fence runs from its lease's end, which is
            // no later than ours.
            fence_done_at: req.fence_max_ms.map(after_expiry),
            dad_override: req.dad_override.map(DadMode::as_str),
            agent_version: &req.agent_version,
            networks: &networks,
            findings: &findings,
        };
        hosts::renew(&mut tx, &renewal).await?;
        let recovered = before.lost_at.is_some();
        let mut back = Vec::new();
        if recovered {
            // Only a fenced host's removals may be assumed: its agent has
            // fenced itself and its kernel lifetimes ran out. A host that
            // comes back before its fence still confirms its removals by
            // reporting them, like any other.
            if before.fenced_at.is_some() {
                bindings::confirm_fenced(&mut tx, host_name, now).await?;
            }
            back = bindings::present_on(&mut tx, host_name).await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        // Status is recomputed per floating IP in its own transaction, which
        // takes the floating IP's lock before any binding's.
        let mut touched = Touched::default();
        for fip in &back {
            let mut tx = self.store.lease_begin().await?;
            log(
                &mut tx,
                fip,
                "host_recovered",
                Some(host_name),
                0,
                json!({}),
            )
            .await?;
            self.refresh_status(&mut tx, fip, now).await?;
            touched.hosts(bindings::hosts_of(&mut tx, fip).await?);
            tx.commit().await.map_err(StoreError::from)?;
        }
        if recovered {
            tracing::info!(host = %host_name, "host recovered: its agent renewed the lease");
            touched.host(host_name);
            self.publish(touched).await;
        }
        Ok(LeaseResponse {
            host: host_name.to_owned(),
            lease_ttl_ms: ttl as u64,
            renew_after_ms: (ttl / 3) as u64,
            lease_expires_at: DateTime::<Utc>::from_timestamp_millis(expires_at)
                .unwrap_or_default(),
        })
    }

    /// The host's desired state once it is newer than `after`, or when
    /// `wait` has passed, or at shutdown. A newer long poll of the same
    /// host ends this one with `poll_superseded`.
    pub async fn agent_desired_state(
        &self,
        who: &Principal,
        after: i64,
        wait: Duration,
    ) -> AppResult<DesiredState> {
        let (host_id, host_name) = agent_host(who)?;
        let deadline = tokio::time::Instant::now() + wait;
        let mut sub = self.changes.subscribe(host_name);
        let mut shutdown = self.changes.shutdown_signal();
        loop {
            if sub.superseded.is_set() {
                return Err(superseded());
            }
            // Mark the current change as seen before reading, so a change
            // committed while we read wakes the wait below.
            sub.changed.borrow_and_update();
            let state = {
                // Long polls read with a bounded share of the connections,
                // so a burst of them never starves API requests.
                let _permit = self
                    .poll_permits
                    .acquire()
                    .await
                    .map_err(|_| superseded())?;
                self.desired_state_now(host_id, host_name).await?
            };
            if state.revision > after || *shutdown.borrow() {
                return Ok(state);
            }
            tokio::select! {
                // Each arm only waits on a watch or a timer; none holds
                // state that a cancelled arm loses.
                r = sub.changed.changed() => if r.is_err() { return Ok(state) },
                _ = tokio::time::sleep_until(deadline) => return Ok(state),
                _ = shutdown.changed() => return Ok(state),
                _ = sub.superseded.wait() => return Err(superseded()),
            }
        }
    }

    /// Reads (and marks delivered) the host's desired state in one
    /// transaction, bumping its revision when the content changed.
    async fn desired_state_now(&self, host_id: &str, host_name: &str) -> AppResult<DesiredState> {
        let mut tx = self.store.begin().await?;
        // Lock order: host, then bindings (as the controller does).
        hosts::lock(&mut tx, &self.store, host_id).await?;
        let now = now_ms();
        let delivered: Vec<NewEvent> = bindings::mark_delivered(&mut tx, &self.store, host_name)
            .await?
            .into_iter()
            .map(|(fip, rev)| NewEvent {
                floating_ip_id: fip,
                at: now,
                kind: "add_requested",
                host: Some(host_name.to_owned()),
                revision: rev,
                detail: "{}".into(),
            })
            .collect();
        events::append_many(&mut tx, &self.store, &delivered).await?;
        let mut addresses = Vec::new();
        for row in bindings::desired(&mut tx, host_name).await? {
            let corrupt = |what: &str| {
                StoreError::Corrupt(format!("floating IP {}: {what}", row.floating_ip_id))
            };
            let prefix: Ipv6Prefix = row.cidr.parse().map_err(|_| corrupt("pool cidr"))?;
            addresses.push(DesiredAddress {
                floating_ip_id: row.floating_ip_id.parse().map_err(|_| corrupt("id"))?,
                address: row
                    .address
                    .parse::<Ipv6Addr>()
                    .map_err(|_| corrupt("address"))?,
                network: row.network,
                prefix_len: prefix.prefix_len(),
                dad: self.config.dad,
                na_count: self.config.na_count,
                na_interval_ms: self.config.na_interval_ms,
                revision: row.revision,
            });
        }
        let mut removals = Vec::new();
        for row in bindings::removals(&mut tx, host_name).await? {
            let corrupt = |what: &str| {
                StoreError::Corrupt(format!("floating IP {}: {what}", row.floating_ip_id))
            };
            removals.push(RemovalRequest {
                floating_ip_id: row.floating_ip_id.parse().map_err(|_| corrupt("id"))?,
                address: row
                    .address
                    .parse::<Ipv6Addr>()
                    .map_err(|_| corrupt("address"))?,
                network: row.network,
                revision: row.revision,
            });
        }
        let content = serde_json::to_vec(&(&addresses, &removals)).expect("serialisable");
        let digest: String = Sha256::digest(&content)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let revision = hosts::desired_revision(&mut tx, host_id, &digest).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(DesiredState {
            host: host_name.to_owned(),
            revision,
            addresses,
            removals,
        })
    }

    /// Applies a batch of observations. A report for an older revision than
    /// the last one stored for that binding changes nothing.
    pub async fn agent_reports(
        &self,
        who: &Principal,
        reports: Vec<Report>,
    ) -> AppResult<ReportResult> {
        let (_, host) = agent_host(who)?;
        if reports.len() > MAX_REPORTS {
            return Err(AppError::invalid(
                "reports",
                format!("at most {MAX_REPORTS} per batch"),
            ));
        }
        for (i, r) in reports.iter().enumerate() {
            if let Some(mac) = &r.defender_mac {
                check_len(&format!("reports[{i}].defender_mac"), mac, 17)?;
            }
            if let Some(d) = &r.detail {
                check_len(&format!("reports[{i}].detail"), d, 1024)?;
            }
            check_at_most(&format!("reports[{i}].dad_ms"), r.dad_ms, i64::MAX as u64)?;
            let na_sent = r.na_sent.map(u64::from);
            check_at_most(&format!("reports[{i}].na_sent"), na_sent, i32::MAX as u64)?;
        }
        let mut accepted = 0;
        let mut touched = Touched::default();
        for chunk in chunks(&reports) {
            accepted += self.apply_chunk(host, &chunk, &mut touched).await?;
        }
        if accepted > 0 {
            self.publish(touched).await;
        }
        Ok(ReportResult {
            accepted,
            ignored: reports.len() - accepted,
        })
    }

    /// Applies reports about distinct floating IPs in one transaction, in
    /// a fixed number of statements however many there are: their floating
    /// IPs and then their bindings are locked in id order (the one lock
    /// order), each report is checked against what it finds, and what the
    /// accepted ones change is written set-wise. Returns how many were
    /// accepted.
    async fn apply_chunk(
        &self,
        host: &str,
        chunk: &[&Report],
        touched: &mut Touched,
    ) -> AppResult<usize> {
        let now = now_ms();
        let ids: Vec<String> = chunk.iter().map(|r| r.floating_ip_id.to_string()).collect();
        let mut tx = self.store.begin().await?;
        let current: HashMap<String, i64> = floating_ips::lock_many(&mut tx, &self.store, &ids)
            .await?
            .into_iter()
            .collect();
        let mut held: HashMap<String, BindingRow> =
            bindings::lock_many(&mut tx, &self.store, host, &ids)
                .await?
                .into_iter()
                .map(|b| (b.floating_ip_id.clone(), b))
                .collect();
        let mut recorded = Vec::new();
        let mut events = Vec::new();
        let mut absent = Vec::new();
        let mut removals = Vec::new();
        for (r, fip) in chunk.iter().zip(ids) {
            let Some(&current) = current.get(&fip) else {
                continue;
            };
            // A report cannot describe a revision that does not exist yet:
            // one that did would confirm removals before they were asked for.
            if r.revision > current {
                metrics::counter!("fipd_agent_reports_refused_total", "reason" => "future_revision")
                    .increment(1);
                tracing::warn!(%host, floating_ip = %fip, reported = r.revision, current,
                    "refused a report for a revision newer than the floating IP's");
                continue;
            }
            let Some(mut b) = held.remove(&fip) else {
                continue;
            };
            if b.reported_revision.is_some_and(|prev| r.revision < prev) {
                continue;
            }
            let state = r.state.as_str();
            let changed = b.reported_state.as_deref() != Some(state)
                || b.reported_revision != Some(r.revision);
            if changed {
                for (kind, detail) in report_events(r, &b) {
                    events.push(NewEvent {
                        floating_ip_id: fip.clone(),
                        at: now,
                        kind,
                        host: Some(host.to_owned()),
                        revision: r.revision,
                        detail: detail.to_string(),
                    });
                }
            }
            b.reported_state = Some(state.to_owned());
            b.reported_revision = Some(r.revision);
            // Keep the last DAD time when a report (e.g. an adoption) carries none.
            b.dad_ms = r.dad_ms.map(|d| d as i64).or(b.dad_ms);
            b.defender_mac = r.defender_mac.clone();
            b.na_sent = r.na_sent.map(i64::from);
            b.detail = r.detail.clone();
            b.reported_at = Some(now);
            if b.desired == "absent" {
                removals.push(fip.clone());
            }
            recorded.push(b);
            if r.state == ReportedState::Absent {
                absent.push(fip);
            }
        }
        if recorded.is_empty() {
            return Ok(0);
        }
        bindings::record_reports(&mut tx, &self.store, host, &recorded).await?;
        events::append_many(&mut tx, &self.store, &events).await?;
        for fip in &absent {
            self.release_unheld(&mut tx, now, Some(fip)).await?;
        }
        let accepted: Vec<String> = recorded.into_iter().map(|b| b.floating_ip_id).collect();
        self.refresh_statuses(&mut tx, &accepted, now).await?;
        // Desired states are made of present bindings whose gate is open
        // and of unconfirmed removals; a report can only change whether a
        // removal is confirmed, so only reports on removals wake anyone (the
        // reporter, whose removals shrink, and the hosts waiting on it).
        if !removals.is_empty() {
            touched.hosts(bindings::hosts_of_many(&mut tx, &self.store, &removals).await?);
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(accepted.len())
    }
}

/// Most reports applied in one transaction: enough to make the statements
/// per report negligible, few enough to hold the locks briefly.
const CHUNK: usize = 256;

/// Splits reports into chunks of at most [`CHUNK`] that name each floating
/// IP once, keeping their order (a later report about the same floating
/// IP is applied after the earlier one, in the next chunk).
fn chunks(reports: &[Report]) -> Vec<Vec<&Report>> {
    let mut out = Vec::new();
    let mut chunk: Vec<&Report> = Vec::new();
    let mut seen = HashSet::new();
    for r in reports {
        if chunk.len() == CHUNK || !seen.insert(r.floating_ip_id) {
            out.push(std::mem::take(&mut chunk));
            seen.clear();
            seen.insert(r.floating_ip_id);
        }
        chunk.push(r);
    }
    if !chunk.is_empty() {
        out.push(chunk);
    }
    out
}

/// The events a report that changes its binding's reported state logs.
fn report_events(r: &Report, b: &BindingRow) -> Vec<(&'static str, serde_json::Value)> {
    let observed = r.observed_at.to_rfc3339();
    match r.state {
        ReportedState::Applying => vec![("add_started", json!({ "observed_at": observed }))],
        ReportedState::Tentative => vec![("dad_started", json!({ "observed_at": observed }))],
        ReportedState::Active => {
            let mut v = Vec::new();
            if let Some(ms) = r.dad_ms {
                v.push(("dad_passed", json!({ "dad_ms": ms })));
            }
            if let Some(n) = r.na_sent.filter(|&n| n > 0) {
                v.push(("announced", json!({ "na_sent": n })));
            }
            v.push((
                "active",
                json!({ "observed_at": observed, "dad_ms": r.dad_ms }),
            ));
            v
        }
        ReportedState::DadFailed => vec![(
            "dad_failed",
            json!({ "defender_mac": r.defender_mac, "dad_ms": r.dad_ms, "observed_at": observed }),
        )],
        ReportedState::Absent if b.desired == "absent" && r.revision >= b.desired_revision => {
            vec![("removal_confirmed", json!({ "observed_at": observed }))]
        }
        ReportedState::Absent => vec![("absent", json!({ "observed_at": observed }))],
        ReportedState::Error => vec![("agent_error", json!({ "detail": r.detail }))],
    }
}
