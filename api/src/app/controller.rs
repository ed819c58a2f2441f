//! The controller: orders every move (design brief §4), derives each
//! floating IP's status from its agents' reports, and acts on expired
//! leases: marks hosts lost, fails over to standbys, fences, releases.
//!
//! The ordering itself is data: `store::bindings` only hands a floating IP
//! to its new host once every previous holder has confirmed removal or has
//! been fenced. Everything here keeps bindings, status and the event log
//! consistent in one transaction per step.

use serde_json::json;

use super::changes::Touched;
use super::floating_ips::{log, standby_list};
use super::{App, AppResult, DadMode};
use crate::domain::FloatingIpStatus;
use crate::store::events::{self, NewEvent};
use crate::store::{bindings, floating_ips, hosts, instances, now_ms, Conn, StoreError};

impl App {
    /// Points a floating IP at `host` (or nowhere) at `revision` and logs
    /// the removals this asks of other hosts.
    pub(crate) async fn place(
        &self,
        conn: &mut Conn,
        fip_id: &str,
        host: Option<&str>,
        revision: i64,
        now: i64,
    ) -> AppResult<()> {
        for old in bindings::set(conn, fip_id, host, revision, now).await? {
            log(
                conn,
                fip_id,
                "removal_requested",
                Some(&old),
                revision,
                json!({}),
            )
            .await?;
        }
        Ok(())
    }

    /// Recomputes a floating IP's status from the report of its intended
    /// host. Status is observed state: it never bumps the revision.
    pub(crate) async fn refresh_status(
        &self,
        conn: &mut Conn,
        fip_id: &str,
        now: i64,
    ) -> AppResult<()> {
        // Callers may not hold the floating IP's lock yet; take it first.
        if floating_ips::lock_any(conn, &self.store, fip_id)
            .await?
            .is_none()
        {
            return Ok(());
        }
        self.refresh_statuses(conn, &[fip_id.to_owned()], now).await
    }

    /// [`App::refresh_status`] for floating IPs whose locks the caller
    /// already holds, in two statements however many there are.
    pub(crate) async fn refresh_statuses(
        &self,
        conn: &mut Conn,
        fip_ids: &[String],
        now: i64,
    ) -> AppResult<()> {
        let statuses: Vec<floating_ips::NewStatus> =
            floating_ips::status_inputs(conn, &self.store, fip_ids)
                .await?
                .iter()
                .map(|inputs| {
                    let (status, detail) = status_of(inputs);
                    floating_ips::NewStatus {
                        id: inputs.id.clone(),
                        status: status.as_str(),
                        detail,
                    }
                })
                .collect();
        floating_ips::set_statuses(conn, &self.store, &statuses, now).await?;
        Ok(())
    }

    /// Releases deleted floating IPs (all, or only `only`) that no host
    /// holds any more.
    pub(crate) async fn release_unheld(
        &self,
        conn: &mut Conn,
        now: i64,
        only: Option<&str>,
    ) -> AppResult<usize> {
        let released = bindings::release_unheld(conn, now, only).await?;
        for id in &released {
            log(
                conn,
                id,
                "released",
                None,
                0,
                json!({ "quarantine_ms": self.config.quarantine_ms }),
            )
            .await?;
        }
        Ok(released.len())
    }

    /// One pass over leases, run periodically: hosts whose lease ran out
    /// become lost (their floating IPs turn ERROR, then fail over to a
    /// standby where they have one); once their addresses count as gone
    /// (see [`hosts::mark_fenced`]) they are fenced and their pending
    /// removals count as done. Every instant comes from the one clock of
    /// [`crate::store::Store::now`]. Returns whether anything changed.
    pub async fn controller_tick(&self) -> AppResult<bool> {
        let mut touched = Touched::default();
        let mut tx = self.store.lease_begin().await?;
        // One replica at a time marks hosts lost and fenced.
        if !self.store.try_controller_lock(&mut tx).await? {
            return Ok(false);
        }
        let now = self.store.now(&mut tx).await?;
        let lost = hosts::mark_lost(&mut tx, now).await?;
        for host in &lost {
            tracing::warn!(%host, "host lost: its agent's lease expired");
            let fips = bindings::present_on(&mut tx, host).await?;
            let step = HostStep {
                host,
                fips: &fips,
                kind: "host_lost",
                detail: json!({ "reason": "lease expired" }),
                lock: true,
            };
            self.log_host_step(&mut tx, step, &mut touched).await?;
            self.refresh_statuses(&mut tx, &fips, now).await?;
        }
        // DAD on the next holder catches a copy left behind unless DAD is
        // off, in fipd's settings or on some agent (docs/protocol.md).
        let dad_protects =
            self.config.dad != DadMode::Off && !hosts::any_dad_off_override(&mut tx).await?;
        let fenced =
            hosts::mark_fenced(&mut tx, now, self.config.fence_grace_ms, dad_protects).await?;
        for host in &fenced {
            tracing::warn!(%host, "host fenced: its addresses now count as gone");
            let fips = bindings::confirm_fenced(&mut tx, host, now).await?;
            let reason = if dad_protects {
                "lease expired and fence grace passed"
            } else {
                "lease expired, fence grace passed and the agent's kernel lifetimes ran out"
            };
            let detail = json!({ "reason": reason, "fence_grace_ms": self.config.fence_grace_ms });
            // Only logged: confirm_fenced changed bindings, not the
            // floating IPs, so their locks are not needed (and taking them
            // after the bindings' would invert the one lock order).
            let step = HostStep {
                host,
                fips: &fips,
                kind: "removal_assumed",
                detail,
                lock: false,
            };
            self.log_host_step(&mut tx, step, &mut touched).await?;
        }
        let released = self.release_unheld(&mut tx, now, None).await?;
        tx.commit().await.map_err(StoreError::from)?;

        // Failover is level-triggered: every pass retries the floating IPs
        // still placed on a lost host that name standbys, each in its own
        // transaction, so a standby that comes alive later is still used.
        let mut failed_over = 0;
        for fip in bindings::failover_candidates(self.store.lease_pool()).await? {
            match self.failover(&fip, &mut touched).await {
                Ok(true) => failed_over += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(floating_ip = %fip, error = %crate::http::error::error_chain(&e), "failover failed; retrying next pass")
                }
            }
        }
        let changed = !lost.is_empty() || !fenced.is_empty() || released > 0 || failed_over > 0;
        self.publish(touched).await;
        Ok(changed)
    }

    /// Moves a floating IP whose host was lost to its first standby
    /// instance on a live host, by the same ordered protocol as any move.
    /// Takes the instance's lock before the floating IP's (the one lock
    /// order), so a concurrent migration of the standby cannot leave the
    /// binding on the host it just left.
    async fn failover(&self, fip_id: &str, touched: &mut Touched) -> AppResult<bool> {
        let mut tx = self.store.lease_begin().await?;
        let Some(seen) = floating_ips::get(&mut tx, fip_id).await? else {
            return Ok(false);
        };
        let Some(lost_host) = seen.host.clone() else {
            return Ok(false);
        };
        let now = self.store.now(&mut tx).await?;
        if hosts::is_alive(&mut tx, &lost_host, now).await? {
            return Ok(false);
        }
        let mut target = None;
        for sid in standby_list(&seen) {
            if seen.instance_id.as_deref() == Some(sid.as_str()) {
                continue;
            }
            let Some(inst) = instances::get(&mut tx, &sid).await? else {
                continue;
            };
            if inst.project_id == seen.project_id
                && inst.host != lost_host
                && hosts::is_alive(&mut tx, &inst.host, now).await?
            {
                target = Some(inst.id);
                break;
            }
        }
        let Some(target) = target else {
            return Ok(false);
        };
        let Some(inst) = instances::get_for_update(&mut tx, &self.store, &target).await? else {
            return Ok(false);
        };
        let Some(mut f) = floating_ips::get_for_update(&mut tx, &self.store, fip_id).await? else {
            return Ok(false);
        };
        // Re-check under the locks: anything that changed since the
        // unlocked read is left to the next pass.
        if f.host.as_deref() != Some(lost_host.as_str())
            || f.instance_id != seen.instance_id
            || f.standby_instance_ids != seen.standby_instance_ids
            || inst.project_id != f.project_id
            || inst.host == lost_host
            || !hosts::is_alive(&mut tx, &inst.host, now).await?
        {
            return Ok(false);
        }
        let from_instance = f.instance_id.replace(inst.id.clone());
        f.host = Some(inst.host.clone());
        f.revision += 1;
        f.updated_at = now_ms();
        f.status = FloatingIpStatus::Pending.as_str().to_owned();
        f.status_detail = None;
        floating_ips::update(&mut tx, &f).await?;
        log(
            &mut tx,
            fip_id,
            "failover",
            Some(&inst.host),
            f.revision,
            json!({
                "reason": format!("host {lost_host} lost its lease"),
                "from_host": lost_host, "from_instance_id": from_instance,
                "to_instance_id": inst.id,
            }),
        )
        .await?;
        self.place(&mut tx, fip_id, Some(&inst.host), f.revision, f.updated_at)
            .await?;
        touched.hosts(bindings::hosts_of(&mut tx, fip_id).await?);
        tx.commit().await.map_err(StoreError::from)?;
        tracing::warn!(fip = %fip_id, from = %lost_host, to = %inst.host, "failover");
        Ok(true)
    }
}

/// A step the controller takes for every floating IP of one host.
struct HostStep<'a> {
    host: &'a str,
    fips: &'a [String],
    kind: &'static str,
    detail: serde_json::Value,
    lock: bool,
}

impl App {
    /// Logs a host-wide step on each of the floating IPs it concerns, at
    /// their revision, and marks their hosts touched: a fixed number of
    /// statements per host, so a tick that loses many hosts stays short and
    /// holds their locks briefly. With `lock` the floating IPs are locked
    /// first (in id order, the one lock order) for the caller's changes.
    async fn log_host_step(
        &self,
        conn: &mut Conn,
        step: HostStep<'_>,
        touched: &mut Touched,
    ) -> AppResult<()> {
        let HostStep {
            host,
            fips,
            kind,
            detail,
            lock,
        } = step;
        if fips.is_empty() {
            return Ok(());
        }
        let at = now_ms();
        let detail = detail.to_string();
        let revisions = if lock {
            floating_ips::lock_many(conn, &self.store, fips).await?
        } else {
            floating_ips::revisions(conn, &self.store, fips).await?
        };
        let steps: Vec<NewEvent> = revisions
            .into_iter()
            .map(|(id, revision)| NewEvent {
                floating_ip_id: id,
                at,
                kind,
                host: Some(host.to_owned()),
                revision,
                detail: detail.clone(),
            })
            .collect();
        events::append_many(conn, &self.store, &steps).await?;
        touched.hosts(bindings::hosts_of_many(conn, &self.store, fips).await?);
        Ok(())
    }
}

/// A live floating IP's status and its detail: DOWN without a host, ERROR
/// on a lost host or when its host's agent reports failure at the current
/// revision, ACTIVE once it reports the address active there, else PENDING.
fn status_of(s: &floating_ips::StatusInputs) -> (FloatingIpStatus, Option<String>) {
    let Some(host) = &s.host else {
        return (FloatingIpStatus::Down, None);
    };
    if let Some(lost) = s.lost_at {
        let at = chrono::DateTime::from_timestamp_millis(lost).unwrap_or_default();
        return (
            FloatingIpStatus::Error,
            Some(format!(
                "host {host} is lost: its agent's lease expired at {at}"
            )),
        );
    }
    let Some(desired) = s.desired_revision else {
        return (FloatingIpStatus::Pending, None);
    };
    if s.reported_revision.is_none_or(|r| r < desired) {
        return (FloatingIpStatus::Pending, None);
    }
    match s.reported_state.as_deref() {
        Some("active") => (FloatingIpStatus::Active, None),
        Some("dad_failed") => (
            FloatingIpStatus::Error,
            Some(format!(
                "DAD failed on host {host}: {} is defended by {} (DAD took {} ms); the agent retries",
                s.address,
                s.defender_mac.as_deref().unwrap_or("an unidentified node"),
                s.dad_ms.map_or("?".into(), |d| d.to_string()),
            )),
        ),
        Some("error") => (
            FloatingIpStatus::Error,
            Some(format!(
                "agent on host {host}: {}",
                s.detail.as_deref().unwrap_or("error")
            )),
        ),
        _ => (FloatingIpStatus::Pending, None),
    }
}
