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

/// One event for [`append_many`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct NewEvent {
    pub floating_ip_id: String,
    pub at: i64,
    pub kind: &'static str,
    pub host: Option<String>,
    pub revision: i64,
    pub detail: String,
}

/// Appends events in order: runs of ordinary events in one statement each,
/// retry steps one by one through [`append`] (they may fold into a loop).
pub async fn append_many(conn: &mut Conn, store: &Store, events: &[NewEvent]) -> StoreResult<()> {
    let mut run: Vec<&NewEvent> = Vec::new();
    for e in events {
        if RETRY_STEPS.contains(&e.kind) {
            insert_run(conn, store, &mut run).await?;
            append(
                conn,
                &e.floating_ip_id,
                e.at,
                e.kind,
                e.host.as_deref(),
                e.revision,
                &e.detail,
            )
            .await?;
        } else {
            run.push(e);
        }
    }
    insert_run(conn, store, &mut run).await
}

/// Inserts (and empties) a run of ordinary events, keeping their order in
/// the ids they get.
async fn insert_run(conn: &mut Conn, store: &Store, run: &mut Vec<&NewEvent>) -> StoreResult<()> {
    if run.is_empty() {
        return Ok(());
    }
    #[derive(serde::Serialize)]
    struct Row<'a> {
        seq: usize,
        #[serde(flatten)]
        event: &'a NewEvent,
    }
    let rows: Vec<Row> = run
        .iter()
        .enumerate()
        .map(|(seq, event)| Row { seq, event })
        .collect();
    let x = store.json_rows(
        1,
        &[
            ("seq", "bigint"),
            ("floating_ip_id", "text"),
            ("at", "bigint"),
            ("kind", "text"),
            ("host", "text"),
            ("revision", "bigint"),
            ("detail", "text"),
        ],
    );
    sqlx::query(&format!(
        "{x}INSERT INTO events (floating_ip_id, at, kind, host, revision, detail) \
         SELECT x.floating_ip_id, x.at, x.kind, x.host, x.revision, x.detail \
         FROM x ORDER BY x.seq"
    ))
    .bind(serde_json::to_string(&rows).expect("serialisable"))
    .execute(&mut *conn)
    .await?;
    run.clear();
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
