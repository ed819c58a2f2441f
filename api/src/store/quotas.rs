//! SQL for per-project quotas and the usage they limit.

use sqlx::FromRow;

use super::{Conn, Store, StoreResult};

/// A project's own limits; `None` uses fipd's defaults.
#[derive(Debug, Clone, Default, FromRow)]
pub struct QuotaRow {
    pub project_id: String,
    pub floating_ips: Option<i64>,
    pub instances: Option<i64>,
}

/// Locks the project's quota row (creating an empty one first), so that
/// concurrent creates in one project count one after the other; returns
/// the project's own limits.
pub async fn lock(
    conn: &mut Conn,
    store: &Store,
    project: &str,
    now: i64,
) -> StoreResult<QuotaRow> {
    sqlx::query(
        "INSERT INTO project_quotas (project_id, updated_at) VALUES ($1, $2) \
         ON CONFLICT (project_id) DO NOTHING",
    )
    .bind(project)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(sqlx::query_as(&format!(
        "SELECT project_id, floating_ips, instances FROM project_quotas WHERE project_id = $1{}",
        store.for_update()
    ))
    .bind(project)
    .fetch_one(conn)
    .await?)
}

/// Live floating IPs of a project (deleted ones no longer count, even
/// while their address is held back).
pub async fn floating_ips_used(conn: &mut Conn, project: &str) -> StoreResult<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM floating_ips WHERE project_id = $1 AND deleted_at IS NULL",
    )
    .bind(project)
    .fetch_one(conn)
    .await?)
}

pub async fn instances_used(conn: &mut Conn, project: &str) -> StoreResult<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM instances WHERE project_id = $1")
            .bind(project)
            .fetch_one(conn)
            .await?,
    )
}

/// Sets a project's own limits (`None`: back to the defaults).
pub async fn set(conn: &mut Conn, row: &QuotaRow, now: i64) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO project_quotas (project_id, floating_ips, instances, updated_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (project_id) DO UPDATE \
         SET floating_ips = $2, instances = $3, updated_at = $4",
    )
    .bind(&row.project_id)
    .bind(row.floating_ips)
    .bind(row.instances)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

impl Store {
    /// Projects with limits of their own, in project order.
    pub async fn quota_list(&self, after: Option<&str>, limit: i64) -> StoreResult<Vec<QuotaRow>> {
        Ok(sqlx::query_as(
            "SELECT project_id, floating_ips, instances FROM project_quotas \
             WHERE ($1 IS NULL OR project_id > $1) \
             AND (floating_ips IS NOT NULL OR instances IS NOT NULL) \
             ORDER BY project_id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }
}
