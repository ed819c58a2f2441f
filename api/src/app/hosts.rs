//! Hosts: compute nodes, each running one agent that holds a lease.

use super::tokens::generate_secret;
use super::{hash_token, new_id, paginate, App, AppError, AppResult, PageRequest, Principal};
use crate::domain::HostName;
use crate::store::{now_ms, HostRow, StoreError};

/// Prefix of agent tokens.
pub(crate) const AGENT_TOKEN_PREFIX: &str = "fiph_";

/// Where a host's lease stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostState {
    /// No agent has ever renewed a lease for it.
    NeverSeen,
    Alive,
    /// Its lease ran out.
    Lost,
}

impl HostState {
    pub fn of(row: &HostRow, now: i64) -> Self {
        match (row.last_seen_at, row.lease_expires_at) {
            (None, _) | (_, None) => Self::NeverSeen,
            (Some(_), Some(exp)) if exp > now && row.lost_at.is_none() => Self::Alive,
            _ => Self::Lost,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NeverSeen => "never_seen",
            Self::Alive => "alive",
            Self::Lost => "lost",
        }
    }
}

impl App {
    /// Registers a host; the agent token is returned here only.
    pub async fn host_create(
        &self,
        who: &Principal,
        name: HostName,
    ) -> AppResult<(HostRow, String)> {
        who.require_admin()?;
        let secret = generate_secret(AGENT_TOKEN_PREFIX);
        let now = now_ms();
        let row = HostRow {
            id: new_id(),
            name: name.to_string(),
            token_hash: hash_token(&secret),
            agent_version: None,
            networks: "[]".into(),
            findings: "[]".into(),
            lease_expires_at: None,
            last_seen_at: None,
            lost_at: None,
            fenced_at: None,
            desired_revision: 0,
            desired_digest: String::new(),
            created_at: now,
            updated_at: now,
            backstop_at: None,
            dad_override: None,
            fence_done_at: None,
        };
        match self.store.host_insert(&row).await {
            Ok(()) => Ok((row, secret)),
            Err(StoreError::Unique) => Err(AppError::conflict(
                "name_taken",
                format!("a host named {name:?} already exists"),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Now on the clock leases live on (see `Store::now`): a host's state
    /// (`alive`, `lost`) is judged by it, not by this replica's clock.
    pub async fn lease_clock_now(&self) -> AppResult<i64> {
        let mut conn = self
            .store
            .pool()
            .acquire()
            .await
            .map_err(StoreError::from)?;
        Ok(self.store.now(&mut conn).await?)
    }

    pub async fn host_get(&self, who: &Principal, id: &str) -> AppResult<HostRow> {
        who.require_admin()?;
        self.store
            .host_get(id)
            .await?
            .ok_or(AppError::NotFound("host"))
    }

    pub async fn host_list(
        &self,
        who: &Principal,
        page: &PageRequest,
    ) -> AppResult<(Vec<HostRow>, Option<String>)> {
        who.require_admin()?;
        let rows = self
            .store
            .host_list(page.after.as_deref(), page.limit + 1)
            .await?;
        Ok(paginate(rows, page.limit, |r| r.id.clone()))
    }

    pub async fn host_delete(&self, who: &Principal, id: &str) -> AppResult<()> {
        who.require_admin()?;
        match self.store.host_delete(id).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(AppError::NotFound("host")),
            Err(StoreError::ForeignKey) => Err(AppError::conflict(
                "host_in_use",
                "floating IPs are placed on this host or not yet confirmed removed from it",
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Checks that an instance's host is registered.
    pub(crate) async fn require_host(&self, name: &HostName) -> AppResult<()> {
        match self.store.host_by_name(name.as_str()).await? {
            Some(_) => Ok(()),
            None => Err(AppError::no_such(
                "host",
                format!("no host named {name:?}; register it with POST /v1/hosts"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(last_seen: Option<i64>, exp: Option<i64>, lost: Option<i64>) -> HostRow {
        HostRow {
            id: String::new(),
            name: String::new(),
            token_hash: String::new(),
            agent_version: None,
            networks: String::new(),
            findings: String::new(),
            lease_expires_at: exp,
            last_seen_at: last_seen,
            lost_at: lost,
            fenced_at: None,
            desired_revision: 0,
            desired_digest: String::new(),
            created_at: 0,
            updated_at: 0,
            backstop_at: None,
            dad_override: None,
            fence_done_at: None,
        }
    }

    #[test]
    fn host_state_follows_the_lease() {
        assert_eq!(
            HostState::of(&host(None, None, None), 5),
            HostState::NeverSeen
        );
        assert_eq!(
            HostState::of(&host(Some(1), Some(10), None), 5),
            HostState::Alive
        );
        assert_eq!(
            HostState::of(&host(Some(1), Some(10), None), 10),
            HostState::Lost
        );
        assert_eq!(
            HostState::of(&host(Some(1), Some(10), Some(9)), 5),
            HostState::Lost
        );
    }
}
