//! Instances: workloads placed on hosts. Changing an instance's host is a
//! migration and moves its floating IPs with it.

use serde_json::json;

use super::changes::Touched;
use super::floating_ips::log;
use super::quotas::Resource;
use super::{new_id, paginate, App, AppError, AppResult, PageRequest, Principal};
use crate::domain::{FloatingIpStatus, HostName, Name, ProjectId};
use crate::store::{bindings, floating_ips};
use crate::store::{instances, now_ms, InstanceRow, StoreError};

pub struct NewInstance {
    pub id: Option<uuid::Uuid>,
    pub name: Name,
    pub project_id: Option<ProjectId>,
    pub host: HostName,
}

pub struct InstancePatch {
    pub name: Option<Name>,
    pub host: Option<HostName>,
}

impl App {
    pub async fn instance_create(
        &self,
        who: &Principal,
        new: NewInstance,
    ) -> AppResult<InstanceRow> {
        let project = who.owning_project(new.project_id)?;
        self.require_host(&new.host).await?;
        let now = now_ms();
        let row = InstanceRow {
            id: new.id.map_or_else(new_id, |u| u.to_string()),
            name: new.name.to_string(),
            project_id: project.to_string(),
            host: new.host.to_string(),
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.store.begin().await?;
        match instances::insert(&mut tx, &row).await {
            Ok(()) => {}
            Err(StoreError::Unique) => {
                return Err(AppError::conflict(
                    "instance_exists",
                    format!("an instance with id {} already exists", row.id),
                ))
            }
            Err(e) => return Err(e.into()),
        }
        self.enforce_quota(&mut tx, &row.project_id, Resource::Instances)
            .await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(row)
    }

    pub async fn instance_get(&self, who: &Principal, id: &str) -> AppResult<InstanceRow> {
        match self.store.instance_get(id).await? {
            Some(row) if who.sees(&row.project_id) => Ok(row),
            _ => Err(AppError::NotFound("instance")),
        }
    }

    pub async fn instance_list(
        &self,
        who: &Principal,
        project_id: Option<&ProjectId>,
        host: Option<&HostName>,
        page: &PageRequest,
    ) -> AppResult<(Vec<InstanceRow>, Option<String>)> {
        let project = match (who.project(), project_id) {
            (Some(own), Some(p)) if own != p => return Ok((Vec::new(), None)),
            (Some(own), _) => Some(own.as_str()),
            (None, p) => p.map(ProjectId::as_str),
        };
        let rows = self
            .store
            .instance_list(
                page.after.as_deref(),
                project,
                host.map(HostName::as_str),
                page.limit + 1,
            )
            .await?;
        Ok(paginate(rows, page.limit, |r| r.id.clone()))
    }

    pub async fn instance_update(
        &self,
        who: &Principal,
        id: &str,
        patch: InstancePatch,
    ) -> AppResult<InstanceRow> {
        if let Some(host) = &patch.host {
            self.require_host(host).await?;
        }
        let mut tx = self.store.begin().await?;
        let mut row = instances::get_for_update(&mut tx, &self.store, id)
            .await?
            .filter(|r| who.sees(&r.project_id))
            .ok_or(AppError::NotFound("instance"))?;
        let mut changed = false;
        if let Some(name) = &patch.name {
            changed |= row.name != name.as_str();
            row.name = name.to_string();
        }
        let now = now_ms();
        let mut touched = Touched::default();
        if let Some(host) = patch.host.as_ref().filter(|h| h.as_str() != row.host) {
            // A migration: every floating IP of the instance follows it.
            // They are locked after the instance (the one lock order) and
            // read again under their locks, so a concurrent failover,
            // disassociation or PATCH is never overwritten with a stale copy.
            let previous = std::mem::replace(&mut row.host, host.to_string());
            changed = true;
            for fip_id in floating_ips::lock_of_instance(&mut tx, &self.store, id).await? {
                let Some(mut fip) =
                    floating_ips::get_for_update(&mut tx, &self.store, &fip_id).await?
                else {
                    continue;
                };
                if fip.instance_id.as_deref() != Some(id) {
                    continue;
                }
                fip.revision += 1;
                fip.updated_at = now;
                fip.status = FloatingIpStatus::Pending.as_str().to_owned();
                fip.status_detail = None;
                floating_ips::update(&mut tx, &fip).await?;
                log(
                    &mut tx,
                    &fip.id,
                    "host_changed",
                    Some(host.as_str()),
                    fip.revision,
                    json!({ "instance_id": id, "previous_host": previous }),
                )
                .await?;
                self.place(&mut tx, &fip.id, Some(host.as_str()), fip.revision, now)
                    .await?;
                touched.hosts(bindings::hosts_of(&mut tx, &fip.id).await?);
            }
        }
        if changed {
            row.updated_at = now;
            instances::update(&mut tx, &row).await?;
            tx.commit().await.map_err(StoreError::from)?;
            self.publish(touched).await;
        }
        Ok(row)
    }

    pub async fn instance_delete(&self, who: &Principal, id: &str) -> AppResult<()> {
        self.instance_get(who, id).await?;
        match self.store.instance_delete(id).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(AppError::NotFound("instance")),
            Err(StoreError::ForeignKey) => Err(AppError::conflict(
                "instance_in_use",
                "floating IPs are still associated with this instance; disassociate them first",
            )),
            Err(e) => Err(e.into()),
        }
    }
}
