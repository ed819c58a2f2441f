//! SQL for the per-floating-IP event log.

use sqlx::FromRow;

use super::{Conn, Store, StoreResult};

#[derive(Debug, Clone, FromRow)]
pub struct EventRow {
    pub id: i64,
    pub floating_ip_id: String,
    pub at: i64,
    pub kind: String,
    pub host: Option<String>,
    pub revision: i64,
    pub detail: String,
}

/// Appends one event; part of the caller's transaction so the log never
/// disagrees with the state it describes.
pub async fn append(
    conn: &mut Conn,
    fip_id: &str,
    at: i64,
    kind: &str,
    host: Option<&str>,
    revision: i64,
    detail: &str,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO events (floating_ip_id, at, kind, host, revision, detail) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(fip_id)
    .bind(at)
    .bind(kind)
    .bind(host)
    .bind(revision)
    .bind(detail)
    .execute(conn)
    .await?;
    Ok(())
}

impl Store {
    pub async fn events_list(
        &self,
        fip_id: &str,
        after: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<EventRow>> {
        Ok(sqlx::query_as(
            "SELECT id, floating_ip_id, at, kind, host, revision, detail FROM events \
             WHERE floating_ip_id = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3",
        )
        .bind(fip_id)
        .bind(after)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }
}
