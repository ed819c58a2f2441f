//! Floating IPs: allocation, association with instances, release.
//!
//! Every change bumps the floating IP's revision, points its per-host
//! bindings at the new placement and appends to its event log, all in one
//! transaction, so the log never disagrees with the state it describes.

use std::net::Ipv6Addr;

use serde_json::json;

use super::allocator::Tx;
use super::changes::Touched;
use super::pools::Pool;
use super::quotas::Resource;
use super::{new_id, paginate, App, AppError, AppResult, PageRequest, Principal};
use crate::domain::{addr_key, Description, FloatingIpStatus, ProjectId};
use crate::store::bindings;
use crate::store::floating_ips::{self, FloatingIpFilter, FloatingIpRow, NewFloatingIp};
use crate::store::{events, instances, now_ms, Conn, EventRow, InstanceRow, StoreError};

/// Validated input of `POST /v1/floating-ips`.
pub struct NewFip {
    pub network_id: Option<String>,
    pub pool_id: Option<String>,
    pub address: Option<Ipv6Addr>,
    pub project_id: Option<ProjectId>,
    pub description: Description,
    pub instance_id: Option<String>,
}

/// Validated input of `PATCH /v1/floating-ips/{id}`; `None` leaves a field
/// unchanged, `Some(None)` disassociates.
pub struct FipPatch {
    pub instance_id: Option<Option<String>>,
    pub description: Option<Description>,
    /// Instances to fail over to, in order, when the active host is lost.
    pub standby_instance_ids: Option<Vec<String>>,
}

/// A precondition from `If-Match`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    Any,
    /// Matches when one of these is the current revision; empty (only weak
    /// tags were sent) never matches.
    Revisions(Vec<i64>),
}

fn check_if_match(if_match: Option<&IfMatch>, current: i64) -> AppResult<()> {
    match if_match {
        Some(IfMatch::Revisions(rs)) if !rs.contains(&current) => {
            Err(AppError::RevisionMismatch { current })
        }
        _ => Ok(()),
    }
}

/// Most standby instances a floating IP may name.
pub const MAX_STANDBYS: usize = 16;

/// The standby instance IDs of a row, parsed.
pub fn standby_list(row: &FloatingIpRow) -> Vec<String> {
    serde_json::from_str(&row.standby_instance_ids).unwrap_or_default()
}

fn no_such_instance() -> AppError {
    AppError::no_such(
        "instance_id",
        "no such instance in the floating IP's project",
    )
}

/// Appends an event with a JSON detail object.
pub(crate) async fn log(
    conn: &mut Conn,
    fip: &str,
    kind: &str,
    host: Option<&str>,
    revision: i64,
    detail: serde_json::Value,
) -> AppResult<()> {
    events::append(
        conn,
        fip,
        now_ms(),
        kind,
        host,
        revision,
        &detail.to_string(),
    )
    .await?;
    Ok(())
}

impl App {
    pub async fn fip_create(&self, who: &Principal, new: NewFip) -> AppResult<FloatingIpRow> {
        let project = who.owning_project(new.project_id)?;
        let pools = self
            .candidate_pools(&new.network_id, &new.pool_id, new.address)
            .await?;
        let instance = match &new.instance_id {
            Some(id) => {
                let inst = self
                    .store
                    .instance_get(id)
                    .await?
                    .ok_or_else(no_such_instance)?;
                if inst.project_id != project.as_str() {
                    return Err(no_such_instance());
                }
                Some(inst)
            }
            None => None,
        };
        let now = now_ms();
        let status = if instance.is_some() {
            FloatingIpStatus::Pending
        } else {
            FloatingIpStatus::Down
        };
        let template = NewFloatingIp {
            id: new_id(),
            network_id: String::new(),
            pool_id: String::new(),
            address: String::new(),
            address_key: String::new(),
            project_id: project.to_string(),
            description: new.description.as_str().to_owned(),
            instance_id: instance.as_ref().map(|i| i.id.clone()),
            status: status.as_str().to_owned(),
            now,
        };
        let (mut tx, addr) = match new.address {
            Some(addr) => self.claim_address(&pools[0], &template, addr).await?,
            None => self.allocate_anywhere(&pools, &template).await?,
        };
        self.enforce_quota(&mut tx, project.as_str(), Resource::FloatingIps)
            .await?;
        log(
            &mut tx,
            &template.id,
            "allocated",
            None,
            1,
            json!({ "address": Ipv6Addr::from(addr).to_string() }),
        )
        .await?;
        let mut touched = Touched::default();
        if let Some(seen) = &instance {
            // The instance's host is read again under its lock: a migration
            // committed since the check above must not leave the new
            // floating IP on the host the instance just left.
            let inst = instances::get_for_update(&mut tx, &self.store, &seen.id)
                .await?
                .filter(|i| i.project_id == project.as_str())
                .ok_or_else(no_such_instance)?;
            self.place(&mut tx, &template.id, Some(&inst.host), 1, now)
                .await?;
            touched.host(inst.host.clone());
            log(
                &mut tx,
                &template.id,
                "associated",
                Some(&inst.host),
                1,
                json!({ "instance_id": inst.id }),
            )
            .await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        metrics::counter!("fipd_allocations_total").increment(1);
        self.publish(touched).await;
        self.store
            .fip_get(&template.id)
            .await?
            .ok_or(AppError::NotFound("floating IP"))
    }

    /// The pools a new floating IP may come from, in the order to try them.
    async fn candidate_pools(
        &self,
        network_id: &Option<String>,
        pool_id: &Option<String>,
        address: Option<Ipv6Addr>,
    ) -> AppResult<Vec<Pool>> {
        let pools = match (network_id, pool_id) {
            (_, Some(pid)) => {
                let row = self
                    .store
                    .pool_get(pid)
                    .await?
                    .ok_or_else(|| AppError::no_such("pool_id", "no such pool"))?;
                if network_id.as_ref().is_some_and(|n| n != &row.network_id) {
                    return Err(AppError::no_such("pool_id", "no such pool on network_id"));
                }
                vec![Pool::from_row(row)?]
            }
            (Some(nid), None) => {
                if self.store.network_get(nid).await?.is_none() {
                    return Err(AppError::no_such("network_id", "no such network"));
                }
                let key = address.map(|a| addr_key(a.into()));
                self.store
                    .pools_of_network(nid, key.as_deref())
                    .await?
                    .into_iter()
                    .map(Pool::from_row)
                    .collect::<Result<Vec<_>, _>>()?
            }
            (None, None) => {
                return Err(AppError::invalid(
                    "network_id",
                    "network_id or pool_id is required",
                ))
            }
        };
        if let Some(addr) = address {
            let inside = pools.iter().any(|p| p.space.prefix().contains(addr.into()));
            if !inside {
                return Err(AppError::conflict(
                    "address_unavailable",
                    format!("address: {addr} is not inside any pool of the network"),
                ));
            }
        } else if pools.is_empty() {
            return Err(AppError::conflict(
                "pool_exhausted",
                "the network has no pools",
            ));
        }
        Ok(pools)
    }

    async fn allocate_anywhere(
        &self,
        pools: &[Pool],
        template: &NewFloatingIp,
    ) -> AppResult<(Tx, u128)> {
        for pool in pools {
            let t = NewFloatingIp {
                network_id: pool.row.network_id.clone(),
                pool_id: pool.row.id.clone(),
                ..template.clone()
            };
            if let Some(found) = self.allocate_in(pool, &t).await? {
                return Ok(found);
            }
        }
        Err(AppError::conflict(
            "pool_exhausted",
            "no free address is left in the pool(s)",
        ))
    }

    async fn claim_address(
        &self,
        pool: &Pool,
        template: &NewFloatingIp,
        addr: Ipv6Addr,
    ) -> AppResult<(Tx, u128)> {
        let a = u128::from(addr);
        if let Some(why) = pool.space.refusal(a) {
            return Err(AppError::conflict(
                "address_unavailable",
                format!("address: {addr} is {why}"),
            ));
        }
        let key = addr_key(a);
        let new = NewFloatingIp {
            network_id: pool.row.network_id.clone(),
            pool_id: pool.row.id.clone(),
            address: addr.to_string(),
            address_key: key.clone(),
            ..template.clone()
        };
        let mut tx = self.store.begin().await?;
        let cutoff = now_ms() - self.config.quarantine_ms;
        floating_ips::purge_address(&mut tx, &new.network_id, &key, cutoff).await?;
        match floating_ips::insert(&mut tx, &new).await {
            Ok(()) => Ok((tx, a)),
            Err(StoreError::Unique) => {
                drop(tx);
                let mut conn = self
                    .store
                    .pool()
                    .acquire()
                    .await
                    .map_err(StoreError::from)?;
                let detail = match floating_ips::holder_of(&mut conn, &new.network_id, &key).await?
                {
                    Some(false) => format!(
                        "{addr} was released recently and is still held by a host or in quarantine"
                    ),
                    _ => format!("{addr} is allocated to another floating IP"),
                };
                Err(AppError::conflict("address_in_use", detail))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A floating IP the caller may see.
    pub async fn fip_get(&self, who: &Principal, id: &str) -> AppResult<FloatingIpRow> {
        match self.store.fip_get(id).await? {
            Some(row) if who.sees(&row.project_id) => Ok(row),
            _ => Err(AppError::NotFound("floating IP")),
        }
    }

    pub async fn fip_list(
        &self,
        who: &Principal,
        mut filter: FloatingIpFilter,
        page: &PageRequest,
    ) -> AppResult<(Vec<FloatingIpRow>, Option<String>)> {
        if let Some(own) = who.project() {
            if filter
                .project_id
                .as_deref()
                .is_some_and(|p| p != own.as_str())
            {
                return Ok((Vec::new(), None));
            }
            filter.project_id = Some(own.to_string());
        }
        let rows = self
            .store
            .fip_list(&filter, page.after.as_deref(), page.limit + 1)
            .await?;
        Ok(paginate(rows, page.limit, |r| r.id.clone()))
    }

    pub async fn fip_update(
        &self,
        who: &Principal,
        id: &str,
        if_match: Option<IfMatch>,
        patch: FipPatch,
    ) -> AppResult<FloatingIpRow> {
        let mut tx = self.store.begin().await?;
        // Lock order: instance, then floating IP (as in instance_update), so
        // two transactions never wait on each other in opposite order.
        let target: Option<InstanceRow> = match &patch.instance_id {
            Some(Some(iid)) => Some(
                instances::get_for_update(&mut tx, &self.store, iid)
                    .await?
                    .ok_or_else(no_such_instance)?,
            ),
            _ => None,
        };
        let mut row = floating_ips::get_for_update(&mut tx, &self.store, id)
            .await?
            .filter(|r| who.sees(&r.project_id))
            .ok_or(AppError::NotFound("floating IP"))?;
        check_if_match(if_match.as_ref(), row.revision)?;
        if let Some(inst) = &target {
            if inst.project_id != row.project_id {
                return Err(no_such_instance());
            }
        }
        let mut changed = false;
        if let Some(d) = &patch.description {
            if row.description != d.as_str() {
                row.description = d.as_str().to_owned();
                changed = true;
            }
        }
        if let Some(standbys) = &patch.standby_instance_ids {
            if standbys.len() > MAX_STANDBYS {
                return Err(AppError::invalid(
                    "standby_instance_ids",
                    format!("at most {MAX_STANDBYS} instances"),
                ));
            }
            for (i, sid) in standbys.iter().enumerate() {
                if standbys[..i].contains(sid) {
                    return Err(AppError::invalid(
                        format!("standby_instance_ids[{i}]"),
                        "names an instance twice",
                    ));
                }
                // Read, not locked: the floating IP's lock is held already
                // and instances come first in the lock order; failover
                // checks the standby again under its lock.
                let ok = instances::get(&mut tx, sid)
                    .await?
                    .is_some_and(|inst| inst.project_id == row.project_id);
                if !ok {
                    return Err(AppError::no_such(
                        format!("standby_instance_ids[{i}]"),
                        "no such instance in the floating IP's project",
                    ));
                }
            }
            let json = serde_json::to_string(standbys).expect("strings serialise");
            if row.standby_instance_ids != json {
                row.standby_instance_ids = json;
                changed = true;
            }
        }
        let now = now_ms();
        let mut placement: Option<(&'static str, Option<String>, serde_json::Value)> = None;
        if let Some(wanted) = &patch.instance_id {
            if wanted != &row.instance_id {
                let host = target.as_ref().map(|i| i.host.clone());
                let (kind, detail) = match (&row.instance_id, wanted) {
                    (None, Some(i)) => ("associated", json!({ "instance_id": i })),
                    (Some(old), Some(i)) => (
                        "reassociated",
                        json!({ "instance_id": i, "previous_instance_id": old, "previous_host": row.host }),
                    ),
                    (Some(old), None) => (
                        "disassociated",
                        json!({ "previous_instance_id": old, "previous_host": row.host }),
                    ),
                    (None, None) => unreachable!("unchanged"),
                };
                row.instance_id = wanted.clone();
                row.host = host.clone();
                row.status = if wanted.is_some() {
                    FloatingIpStatus::Pending
                } else {
                    FloatingIpStatus::Down
                }
                .as_str()
                .to_owned();
                row.status_detail = None;
                placement = Some((kind, host, detail));
                changed = true;
            }
        }
        if !changed {
            return Ok(row);
        }
        row.revision += 1;
        row.updated_at = now;
        floating_ips::update(&mut tx, &row).await?;
        match placement {
            Some((kind, host, detail)) => {
                log(&mut tx, id, kind, host.as_deref(), row.revision, detail).await?;
                self.place(&mut tx, id, host.as_deref(), row.revision, now)
                    .await?;
            }
            None => {
                let detail = json!({
                    "description": row.description,
                    "standby_instance_ids": standby_list(&row),
                });
                log(&mut tx, id, "updated", None, row.revision, detail).await?;
            }
        }
        // Any change reaches the holder: its desired state echoes the
        // floating IP's revision.
        let touched = Touched::Hosts(bindings::hosts_of(&mut tx, id).await?.into_iter().collect());
        tx.commit().await.map_err(StoreError::from)?;
        self.publish(touched).await;
        Ok(row)
    }

    /// Deletes a floating IP. Its address stays out of the pool until every
    /// host that may hold it has confirmed removal, plus the quarantine.
    pub async fn fip_delete(
        &self,
        who: &Principal,
        id: &str,
        if_match: Option<IfMatch>,
    ) -> AppResult<()> {
        let mut tx = self.store.begin().await?;
        let row = floating_ips::get_for_update(&mut tx, &self.store, id)
            .await?
            .filter(|r| who.sees(&r.project_id))
            .ok_or(AppError::NotFound("floating IP"))?;
        check_if_match(if_match.as_ref(), row.revision)?;
        let now = now_ms();
        let revision = row.revision + 1;
        log(
            &mut tx,
            id,
            "deleted",
            None,
            revision,
            json!({ "address": row.address }),
        )
        .await?;
        self.place(&mut tx, id, None, revision, now).await?;
        let touched = Touched::Hosts(bindings::hosts_of(&mut tx, id).await?.into_iter().collect());
        let holders = bindings::holders(&mut tx, id).await?;
        let released = holders.is_empty().then_some(now);
        floating_ips::mark_deleted(&mut tx, id, revision, now, released).await?;
        if released.is_some() {
            log(
                &mut tx,
                id,
                "released",
                None,
                revision,
                json!({ "quarantine_ms": self.config.quarantine_ms }),
            )
            .await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        self.publish(touched).await;
        Ok(())
    }

    pub async fn fip_events(
        &self,
        who: &Principal,
        id: &str,
        after: Option<i64>,
        limit: i64,
    ) -> AppResult<(Vec<EventRow>, Option<String>)> {
        self.fip_get(who, id).await?;
        let rows = self.store.events_list(id, after, limit + 1).await?;
        Ok(paginate(rows, limit, |e| e.id.to_string()))
    }
}
