//! Networks: one L2 segment where DAD happens; floating IPs move only within one.

use super::{new_id, paginate, App, AppError, AppResult, PageRequest, Principal};
use crate::domain::{Description, Name};
use crate::store::{now_ms, NetworkRow, StoreError};

pub struct NetworkPatch {
    pub name: Option<Name>,
    pub description: Option<Description>,
}

fn name_taken(name: &Name) -> AppError {
    AppError::conflict(
        "name_taken",
        format!("a network named {name:?} already exists"),
    )
}

impl App {
    pub async fn network_create(
        &self,
        who: &Principal,
        name: Name,
        description: Description,
    ) -> AppResult<NetworkRow> {
        who.require_admin()?;
        let now = now_ms();
        let row = NetworkRow {
            id: new_id(),
            name: name.to_string(),
            description: description.as_str().to_owned(),
            created_at: now,
            updated_at: now,
        };
        match self.store.network_insert(&row).await {
            Err(StoreError::Unique) => Err(name_taken(&name)),
            other => other.map(|()| row).map_err(Into::into),
        }
    }

    pub async fn network_get(&self, id: &str) -> AppResult<NetworkRow> {
        self.store
            .network_get(id)
            .await?
            .ok_or(AppError::NotFound("network"))
    }

    pub async fn network_list(
        &self,
        name: Option<&Name>,
        page: &PageRequest,
    ) -> AppResult<(Vec<NetworkRow>, Option<String>)> {
        let rows = self
            .store
            .network_list(
                page.after.as_deref(),
                name.map(Name::as_str),
                page.limit + 1,
            )
            .await?;
        Ok(paginate(rows, page.limit, |r| r.id.clone()))
    }

    pub async fn network_update(
        &self,
        who: &Principal,
        id: &str,
        patch: NetworkPatch,
    ) -> AppResult<NetworkRow> {
        who.require_admin()?;
        let mut row = self.network_get(id).await?;
        let mut changed = false;
        if let Some(name) = patch.name.as_ref().filter(|n| n.as_str() != row.name) {
            // Agents find a network by its name: renamed under them, it
            // would look unserved and they would drop its addresses.
            if let Some(host) = self.store.network_served_by(&row.name).await? {
                return Err(AppError::conflict(
                    "network_in_use",
                    format!(
                        "host {host} serves network {:?}; agents find networks by name, so rename it in their configuration first",
                        row.name
                    ),
                ));
            }
            if self.store.network_has_bindings(id).await? {
                return Err(AppError::conflict(
                    "network_in_use",
                    format!(
                        "floating IPs of network {:?} are placed on hosts; disassociate them first",
                        row.name
                    ),
                ));
            }
            changed = true;
            row.name = name.to_string();
        }
        if let Some(d) = &patch.description {
            changed |= row.description != d.as_str();
            row.description = d.as_str().to_owned();
        }
        if !changed {
            return Ok(row);
        }
        row.updated_at = now_ms();
        match self.store.network_update(&row).await {
            Ok(true) => Ok(row),
            Ok(false) => Err(AppError::NotFound("network")),
            Err(StoreError::Unique) => Err(name_taken(patch.name.as_ref().expect("name changed"))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn network_delete(&self, who: &Principal, id: &str) -> AppResult<()> {
        who.require_admin()?;
        match self.store.network_delete(id).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(AppError::NotFound("network")),
            Err(StoreError::ForeignKey) => Err(AppError::conflict(
                "network_in_use",
                "the network still has pools; delete them first",
            )),
            Err(e) => Err(e.into()),
        }
    }
}
