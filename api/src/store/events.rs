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
    /// How many times this step happened in a row (a retry loop).
    pub repeats: i64,
    /// When it last happened, if more than once.
    pub last_at: Option<i64>,
}

/// Steps an agent repeats while it retries (a DAD conflict, an add that
/// keeps failing): a run of them is kept as one event per kind and host,
/// with a count, so such a floating IP does not grow its log forever.
const RETRY_STEPS: [&str; 3] = ["dad_started", "dad_failed", "agent_error"];

/// How far back a retry loop is looked for: its steps alternate.
const RETRY_WINDOW: i64 = 4;

/// Appends one event; part of the caller's transaction so the log never
/// disagrees with the state it describes. A retry step that repeats one of
/// the last few events (all of them retry steps too) counts there instead.
pub async fn append(
    conn: &mut Conn,
    fip_id: &str,
    at: i64,
    kind: &str,
    host: Option<&str>,
    revision: i64,
    detail: &str,
) -> StoreResult<()> {
    if RETRY_STEPS.contains(&kind) {
        let recent: Vec<(i64, String, Option<String>)> = sqlx::query_as(
            "SELECT id, kind, host FROM events WHERE floating_ip_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(fip_id)
        .bind(RETRY_WINDOW)
        .fetch_all(&mut *conn)
        .await?;
        let in_loop = recent.len() as i64 == RETRY_WINDOW
            && recent
                .iter()
                .all(|(_, k, _)| RETRY_STEPS.contains(&k.as_str()));
        let same = recent
            .iter()
            .find(|(_, k, h)| k == kind && h.as_deref() == host);
        if let (true, Some((id, _, _))) = (in_loop, same) {
            sqlx::query(
                "UPDATE events SET repeats = repeats + 1, last_at = $2, revision = $3, detail = $4 \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(at)
            .bind(revision)
            .bind(detail)
            .execute(conn)
            .await?;
            return Ok(());
        }
    }
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
            "SELECT id, floating_ip_id, at, kind, host, revision, detail, repeats, last_at FROM events \
             WHERE floating_ip_id = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3",
        )
        .bind(fip_id)
        .bind(after)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// Deletes events older than `before`, and, given `keep`, all but the
    /// newest `keep` of each floating IP; returns how many went.
    pub async fn events_prune(&self, before: i64, keep: Option<i64>) -> StoreResult<u64> {
        let by_age = sqlx::query("DELETE FROM events WHERE at < $1")
            .bind(before)
            .execute(self.pool())
            .await?
            .rows_affected();
        let Some(keep) = keep else {
            return Ok(by_age);
        };
        let by_count = sqlx::query(
            "DELETE FROM events WHERE id IN (SELECT id FROM (SELECT id, ROW_NUMBER() OVER \
             (PARTITION BY floating_ip_id ORDER BY id DESC) AS n FROM events) ranked WHERE n > $1)",
        )
        .bind(keep)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(by_age + by_count)
    }
}
