//! Per-project quotas on floating IPs and instances: a project token
//! cannot take every address of a shared pool. Limits default to fipd's
//! settings; the admin sets a project's own through the API. Creates count
//! under the project's quota lock, so concurrent ones cannot overshoot.

use super::{paginate, App, AppError, AppResult, PageRequest, Principal};
use crate::domain::ProjectId;
use crate::store::quotas::{self, QuotaRow};
use crate::store::{now_ms, Conn, StoreError};

/// Limits per resource; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub floating_ips: Option<i64>,
    pub instances: Option<i64>,
}

impl Default for Limits {
    /// Neutron's defaults for floating IPs and ports.
    fn default() -> Self {
        Self {
            floating_ips: Some(50),
            instances: Some(500),
        }
    }
}

/// A resource a quota limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    FloatingIps,
    Instances,
}

impl Resource {
    fn noun(self) -> &'static str {
        match self {
            Self::FloatingIps => "floating IPs",
            Self::Instances => "instances",
        }
    }
}

/// One resource's limit and use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub limit: Option<i64>,
    pub used: i64,
    /// The limit is fipd's default, not one set for the project.
    pub default: bool,
}

/// A project's quota as the API shows it.
#[derive(Debug, Clone)]
pub struct QuotaView {
    pub project_id: ProjectId,
    pub floating_ips: Usage,
    pub instances: Usage,
}

/// What `PUT /v1/quotas/{project}` sets; `None` returns to the default.
/// Each limit is `Some(Some(n))`, `Some(None)` for unlimited.
#[derive(Debug, Clone, Copy, Default)]
pub struct QuotaSet {
    pub floating_ips: Option<Option<i64>>,
    pub instances: Option<Option<i64>>,
}

/// Stored form of a limit: NULL is the default, -1 unlimited, n ≥ 0 itself.
fn stored(v: Option<Option<i64>>) -> Option<i64> {
    v.map(|l| l.unwrap_or(-1))
}

fn effective(own: Option<i64>, default: Option<i64>) -> (Option<i64>, bool) {
    match own {
        None => (default, true),
        Some(n) if n < 0 => (None, false),
        Some(n) => (Some(n), false),
    }
}

impl App {
    /// Refuses a create that would take `project` past its limit for
    /// `what`; call it inside the transaction that creates, after the
    /// insert (so the count includes the new object).
    pub(crate) async fn enforce_quota(
        &self,
        conn: &mut Conn,
        project: &str,
        what: Resource,
    ) -> AppResult<()> {
        let own = quotas::lock(conn, &self.store, project, now_ms()).await?;
        let d = self.config.default_quota;
        let limit = match what {
            Resource::FloatingIps => effective(own.floating_ips, d.floating_ips).0,
            Resource::Instances => effective(own.instances, d.instances).0,
        };
        // Unlimited: nothing to count. (Counting reads every row of the
        // project, under its lock: creates in a large project were
        // quadratic, 52 per second at 36,000 floating IPs.)
        let Some(limit) = limit else {
            return Ok(());
        };
        let used = match what {
            Resource::FloatingIps => quotas::floating_ips_used(conn, project).await?,
            Resource::Instances => quotas::instances_used(conn, project).await?,
        };
        if used > limit {
            return Err(AppError::conflict(
                "quota_exceeded",
                format!(
                    "project {project} may have at most {limit} {}; it has {} already",
                    what.noun(),
                    used - 1
                ),
            ));
        }
        Ok(())
    }

    /// A project's limits and use; project tokens see their own only.
    pub async fn quota_get(&self, who: &Principal, project: &ProjectId) -> AppResult<QuotaView> {
        if !who.sees(project.as_str()) {
            return Err(AppError::NotFound("quota"));
        }
        let mut tx = self.store.begin().await?;
        let own = quotas::lock(&mut tx, &self.store, project.as_str(), now_ms()).await?;
        let view = self.view(&mut tx, project, &own).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(view)
    }

    async fn view(
        &self,
        conn: &mut Conn,
        project: &ProjectId,
        own: &QuotaRow,
    ) -> AppResult<QuotaView> {
        let d = self.config.default_quota;
        let (fl, fd) = effective(own.floating_ips, d.floating_ips);
        let (il, id) = effective(own.instances, d.instances);
        Ok(QuotaView {
            project_id: project.clone(),
            floating_ips: Usage {
                limit: fl,
                used: quotas::floating_ips_used(conn, project.as_str()).await?,
                default: fd,
            },
            instances: Usage {
                limit: il,
                used: quotas::instances_used(conn, project.as_str()).await?,
                default: id,
            },
        })
    }

    /// Sets a project's own limits (admin). A limit below the current use
    /// is allowed: nothing is taken away, new creates are refused.
    pub async fn quota_set(
        &self,
        who: &Principal,
        project: &ProjectId,
        set: QuotaSet,
    ) -> AppResult<QuotaView> {
        who.require_admin()?;
        for (field, v) in [
            ("floating_ips", set.floating_ips),
            ("instances", set.instances),
        ] {
            if let Some(Some(n)) = v {
                if n < 0 {
                    return Err(AppError::invalid(
                        field,
                        "must be 0 or more, or null for unlimited",
                    ));
                }
            }
        }
        let mut tx = self.store.begin().await?;
        let now = now_ms();
        quotas::lock(&mut tx, &self.store, project.as_str(), now).await?;
        let row = QuotaRow {
            project_id: project.to_string(),
            floating_ips: stored(set.floating_ips),
            instances: stored(set.instances),
        };
        quotas::set(&mut tx, &row, now).await?;
        let view = self.view(&mut tx, project, &row).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(view)
    }

    /// Projects with limits of their own (admin).
    pub async fn quota_list(
        &self,
        who: &Principal,
        page: &PageRequest,
    ) -> AppResult<(Vec<QuotaView>, Option<String>)> {
        who.require_admin()?;
        let rows = self
            .store
            .quota_list(page.after.as_deref(), page.limit + 1)
            .await?;
        let (rows, next) = paginate(rows, page.limit, |r| r.project_id.clone());
        let mut out = Vec::with_capacity(rows.len());
        let mut conn = self
            .store
            .pool()
            .acquire()
            .await
            .map_err(StoreError::from)?;
        for r in rows {
            let project = ProjectId::parse(&r.project_id)
                .map_err(|e| StoreError::Corrupt(format!("quota project: {e}")))?;
            out.push(self.view(&mut conn, &project, &r).await?);
        }
        Ok((out, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_limits_distinguish_default_unlimited_and_numbers() {
        assert_eq!(stored(None), None);
        assert_eq!(stored(Some(None)), Some(-1));
        assert_eq!(stored(Some(Some(3))), Some(3));
        assert_eq!(effective(None, Some(50)), (Some(50), true));
        assert_eq!(effective(Some(-1), Some(50)), (None, false));
        assert_eq!(effective(Some(0), Some(50)), (Some(0), false));
    }
}
