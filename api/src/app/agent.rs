//! The agent protocol (design brief §5–§6): lease renewal, the long-polled
//! desired state of a host, and reports of what the host observed.

use std::net::Ipv6Addr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use fip_types::{
    DesiredAddress, DesiredState, LeaseRequest, LeaseResponse, RemovalRequest, Report,
    ReportResult, ReportedState,
};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::floating_ips::log;
use super::{App, AppError, AppResult, Principal};
use crate::domain::Ipv6Prefix;
use crate::store::{bindings, floating_ips, hosts, now_ms, StoreError};

/// Longest long poll we hold open.
pub const MAX_WAIT_MS: u64 = 60_000;
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
        let now = now_ms();
        let ttl = self.config.lease_ttl_ms;
        let expires_at = now + ttl;
        let networks = serde_json::to_string(&req.networks).expect("serialisable");
        let findings = serde_json::to_string(&req.findings).expect("serialisable");
        let mut tx = self.store.begin().await?;
        let renewal = hosts::Renewal {
            host_id,
            now,
            expires_at,
            agent_version: &req.agent_version,
            networks: &networks,
            findings: &findings,
        };
        let before = hosts::renew(&mut tx, &self.store, &renewal)
            .await?
            .ok_or(AppError::NotFound("host"))?;
        let recovered = before.lost_at.is_some();
        let mut back = Vec::new();
        if recovered {
            // Removals pending on a fenced host were done by its agent's
            // self-fencing or the kernel lifetimes: keep them confirmed.
            bindings::confirm_fenced(&mut tx, host_name, now).await?;
            back = bindings::present_on(&mut tx, host_name).await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        // Status is recomputed per floating IP in its own transaction, which
        // takes the floating IP's lock before any binding's.
        for fip in &back {
            let mut tx = self.store.begin().await?;
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
            tx.commit().await.map_err(StoreError::from)?;
        }
        if recovered {
            tracing::info!(host = %host_name, "host recovered: its agent renewed the lease");
            self.publish().await;
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
    /// `wait` has passed, or at shutdown.
    pub async fn agent_desired_state(
        &self,
        who: &Principal,
        after: i64,
        wait: Duration,
    ) -> AppResult<DesiredState> {
        let (host_id, host_name) = agent_host(who)?;
        let deadline = tokio::time::Instant::now() + wait;
        let mut changes = self.changes.subscribe();
        let mut shutdown = self.changes.shutdown_signal();
        loop {
            // Mark the current change as seen before reading, so a change
            // committed while we read wakes the wait below.
            changes.borrow_and_update();
            let state = self.desired_state_now(host_id, host_name).await?;
            if state.revision > after || *shutdown.borrow() {
                return Ok(state);
            }
            tokio::select! {
                // Each arm only waits; none holds state a cancelled arm loses.
                r = changes.changed() => if r.is_err() { return Ok(state) },
                _ = tokio::time::sleep_until(deadline) => return Ok(state),
                _ = shutdown.changed() => return Ok(state),
            }
        }
    }

    /// Reads (and marks delivered) the host's desired state in one
    /// transaction, bumping its revision when the content changed.
    async fn desired_state_now(&self, host_id: &str, host_name: &str) -> AppResult<DesiredState> {
        let mut tx = self.store.begin().await?;
        // Lock order: host, then bindings (as the controller does).
        hosts::lock(&mut tx, &self.store, host_id).await?;
        for (fip, rev) in bindings::mark_delivered(&mut tx, host_name).await? {
            log(
                &mut tx,
                &fip,
                "add_requested",
                Some(host_name),
                rev,
                json!({}),
            )
            .await?;
        }
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
        }
        let (mut accepted, mut ignored) = (0, 0);
        for r in reports {
            if self.apply_report(host, &r).await? {
                accepted += 1;
            } else {
                ignored += 1;
            }
        }
        if accepted > 0 {
            self.publish().await;
        }
        Ok(ReportResult { accepted, ignored })
    }

    async fn apply_report(&self, host: &str, r: &Report) -> AppResult<bool> {
        let now = now_ms();
        let fip = r.floating_ip_id.to_string();
        let mut tx = self.store.begin().await?;
        // Lock order: floating IP, then bindings (as every writer does).
        if !floating_ips::lock_any(&mut tx, &self.store, &fip).await? {
            return Ok(false);
        }
        let Some(mut b) = bindings::get_for_update(&mut tx, &self.store, &fip, host).await? else {
            return Ok(false);
        };
        if b.reported_revision.is_some_and(|prev| r.revision < prev) {
            return Ok(false);
        }
        let state = r.state.as_str();
        let changed =
            b.reported_state.as_deref() != Some(state) || b.reported_revision != Some(r.revision);
        b.reported_state = Some(state.to_owned());
        b.reported_revision = Some(r.revision);
        // Keep the last DAD time when a report (e.g. an adoption) carries none.
        b.dad_ms = r.dad_ms.map(|d| d as i64).or(b.dad_ms);
        b.defender_mac = r.defender_mac.clone();
        b.na_sent = r.na_sent.map(i64::from);
        b.detail = r.detail.clone();
        b.reported_at = Some(now);
        bindings::record_report(&mut tx, &b).await?;
        if changed {
            let observed = r.observed_at.to_rfc3339();
            let ev = |kind: &'static str, detail: serde_json::Value| (kind, detail);
            let events = match r.state {
                ReportedState::Applying => {
                    vec![ev("add_started", json!({ "observed_at": observed }))]
                }
                ReportedState::Tentative => {
                    vec![ev("dad_started", json!({ "observed_at": observed }))]
                }
                ReportedState::Active => {
                    let mut v = Vec::new();
                    if let Some(ms) = r.dad_ms {
                        v.push(ev("dad_passed", json!({ "dad_ms": ms })));
                    }
                    if let Some(n) = r.na_sent.filter(|&n| n > 0) {
                        v.push(ev("announced", json!({ "na_sent": n })));
                    }
                    v.push(ev(
                        "active",
                        json!({ "observed_at": observed, "dad_ms": r.dad_ms }),
                    ));
                    v
                }
                ReportedState::DadFailed => vec![ev(
                    "dad_failed",
                    json!({ "defender_mac": r.defender_mac, "dad_ms": r.dad_ms, "observed_at": observed }),
                )],
                ReportedState::Absent
                    if b.desired == "absent" && r.revision >= b.desired_revision =>
                {
                    vec![ev("removal_confirmed", json!({ "observed_at": observed }))]
                }
                ReportedState::Absent => vec![ev("absent", json!({ "observed_at": observed }))],
                ReportedState::Error => vec![ev("agent_error", json!({ "detail": r.detail }))],
            };
            for (kind, detail) in events {
                log(&mut tx, &fip, kind, Some(host), r.revision, detail).await?;
            }
        }
        if r.state == ReportedState::Absent {
            self.release_unheld(&mut tx, now, Some(&fip)).await?;
        }
        self.refresh_status(&mut tx, &fip, now).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(true)
    }
}
