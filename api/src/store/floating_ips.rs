//! SQL for floating IPs and their per-host bindings.

use sqlx::FromRow;

use super::{classify, Conn, Store, StoreResult};

#[derive(Debug, Clone, FromRow)]
pub struct FloatingIpRow {
    pub id: String,
    pub network_id: String,
    pub pool_id: String,
    pub address: String,
    pub address_key: String,
    pub project_id: String,
    pub description: String,
    pub instance_id: Option<String>,
    /// The associated instance's host (joined, not stored on the row).
    pub host: Option<String>,
    pub status: String,
    pub status_detail: Option<String>,
    pub revision: i64,
    /// JSON list of instance IDs to fail over to, in order.
    pub standby_instance_ids: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewFloatingIp {
    pub id: String,
    pub network_id: String,
    pub pool_id: String,
    pub address: String,
    pub address_key: String,
    pub project_id: String,
    pub description: String,
    pub instance_id: Option<String>,
    pub status: String,
    pub now: i64,
}

/// Filters of `GET /v1/floating-ips`; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct FloatingIpFilter {
    pub network_id: Option<String>,
    pub pool_id: Option<String>,
    pub project_id: Option<String>,
    pub instance_id: Option<String>,
    pub status: Option<String>,
    pub address_key: Option<String>,
}

const SELECT: &str = "SELECT f.id, f.network_id, f.pool_id, f.address, f.address_key, \
     f.project_id, f.description, f.instance_id, i.host AS host, f.status, f.status_detail, \
     f.revision, f.standby_instance_ids, f.created_at, f.updated_at \
     FROM floating_ips f LEFT JOIN instances i ON i.id = f.instance_id";

/// Inserts an allocation; `Err(Unique)` when the address is taken on the
/// network (live, or deleted and not yet past quarantine).
pub async fn insert(conn: &mut Conn, new: &NewFloatingIp) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO floating_ips (id, network_id, pool_id, address, address_key, project_id, \
         description, instance_id, status, status_detail, revision, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, 1, $10, $10)",
    )
    .bind(&new.id)
    .bind(&new.network_id)
    .bind(&new.pool_id)
    .bind(&new.address)
    .bind(&new.address_key)
    .bind(&new.project_id)
    .bind(&new.description)
    .bind(&new.instance_id)
    .bind(&new.status)
    .bind(new.now)
    .execute(conn)
    .await
    .map_err(classify)?;
    Ok(())
}

/// A live floating IP, locked for the rest of the transaction on PostgreSQL.
pub async fn get_for_update(
    conn: &mut Conn,
    store: &Store,
    id: &str,
) -> StoreResult<Option<FloatingIpRow>> {
    // Lock the floating IP row itself (FOR UPDATE cannot apply to the
    // nullable side of the outer join), then read the joined view.
    let locked: Option<String> = sqlx::query_scalar(&format!(
        "SELECT id FROM floating_ips WHERE id = $1 AND deleted_at IS NULL{}",
        store.for_update()
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    if locked.is_none() {
        return Ok(None);
    }
    Ok(sqlx::query_as(&format!("{SELECT} WHERE f.id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?)
}

/// A live floating IP, read without a lock (the caller locks what it
/// decides to change, in the one lock order, and re-checks it).
pub async fn get(conn: &mut Conn, id: &str) -> StoreResult<Option<FloatingIpRow>> {
    Ok(sqlx::query_as(&format!(
        "{SELECT} WHERE f.id = $1 AND f.deleted_at IS NULL"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// Locks a floating IP row, deleted or not (agents still report on deleted
/// ones until their removal is confirmed), and returns its revision. Lock
/// order everywhere: instance, floating IP, bindings, so concurrent
/// transactions never deadlock.
pub async fn lock_any(conn: &mut Conn, store: &Store, id: &str) -> StoreResult<Option<i64>> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT revision FROM floating_ips WHERE id = $1{}",
        store.for_update()
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// Floating IPs (live or deleted) locked in id order, with their revision.
pub async fn lock_many(
    conn: &mut Conn,
    store: &Store,
    ids: &[String],
) -> StoreResult<Vec<(String, i64)>> {
    revisions_of(conn, store, ids, store.for_update()).await
}

/// Floating IPs (live or deleted) with their revision, not locked.
pub async fn revisions(
    conn: &mut Conn,
    store: &Store,
    ids: &[String],
) -> StoreResult<Vec<(String, i64)>> {
    revisions_of(conn, store, ids, "").await
}

async fn revisions_of(
    conn: &mut Conn,
    store: &Store,
    ids: &[String],
    lock: &str,
) -> StoreResult<Vec<(String, i64)>> {
    let list = serde_json::to_string(ids).expect("strings serialise");
    Ok(sqlx::query_as(&format!(
        "SELECT id, revision FROM floating_ips WHERE id IN ({}) ORDER BY id{lock}",
        store.json_list(1),
    ))
    .bind(list)
    .fetch_all(conn)
    .await?)
}

/// What a live floating IP's status is computed from: its host (through
/// its instance), whether that host is lost, and that host's binding.
#[derive(Debug, Clone, FromRow)]
pub struct StatusInputs {
    pub id: String,
    pub address: String,
    pub host: Option<String>,
    pub lost_at: Option<i64>,
    /// The binding's fields; `desired_revision` is NULL when there is none.
    pub desired_revision: Option<i64>,
    pub reported_state: Option<String>,
    pub reported_revision: Option<i64>,
    pub defender_mac: Option<String>,
    pub dad_ms: Option<i64>,
    pub detail: Option<String>,
}

/// The status inputs of the live floating IPs among `ids`, in one read.
/// The caller holds their locks, which every writer of a binding's report
/// takes first, so the bindings read here cannot change under it.
pub async fn status_inputs(
    conn: &mut Conn,
    store: &Store,
    ids: &[String],
) -> StoreResult<Vec<StatusInputs>> {
    let list = serde_json::to_string(ids).expect("strings serialise");
    Ok(sqlx::query_as(&format!(
        "SELECT f.id, f.address, i.host AS host, h.lost_at, b.desired_revision, \
           b.reported_state, b.reported_revision, b.defender_mac, b.dad_ms, b.detail \
         FROM floating_ips f LEFT JOIN instances i ON i.id = f.instance_id \
         LEFT JOIN hosts h ON h.name = i.host \
         LEFT JOIN bindings b ON b.floating_ip_id = f.id AND b.host = i.host \
         WHERE f.id IN ({}) AND f.deleted_at IS NULL ORDER BY f.id",
        store.json_list(1)
    ))
    .bind(list)
    .fetch_all(conn)
    .await?)
}

/// One floating IP's status for [`set_statuses`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct NewStatus {
    pub id: String,
    pub status: &'static str,
    pub detail: Option<String>,
}

/// Writes statuses in one statement; rows whose status and detail are
/// unchanged keep their `updated_at`. Status is observed state, so the
/// revision (the generation of what is wanted) does not change.
pub async fn set_statuses(
    conn: &mut Conn,
    store: &Store,
    statuses: &[NewStatus],
    now: i64,
) -> StoreResult<()> {
    if statuses.is_empty() {
        return Ok(());
    }
    let x = store.json_rows(2, &[("id", "text"), ("status", "text"), ("detail", "text")]);
    sqlx::query(&format!(
        "{x}UPDATE floating_ips SET status = x.status, status_detail = x.detail, updated_at = $1 \
         FROM x WHERE floating_ips.id = x.id \
           AND (floating_ips.status <> x.status \
                OR COALESCE(floating_ips.status_detail, '') <> COALESCE(x.detail, ''))"
    ))
    .bind(now)
    .bind(serde_json::to_string(statuses).expect("serialisable"))
    .execute(conn)
    .await?;
    Ok(())
}

/// Live floating IPs associated with an instance, locked (in id order) for
/// the rest of the transaction. On PostgreSQL a row that a concurrent
/// transaction moved off the instance is re-checked after its lock is
/// granted and left out, so a migration never writes back a stale copy.
pub async fn lock_of_instance(
    conn: &mut Conn,
    store: &Store,
    instance_id: &str,
) -> StoreResult<Vec<String>> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT id FROM floating_ips WHERE instance_id = $1 AND deleted_at IS NULL ORDER BY id{}",
        store.for_update()
    ))
    .bind(instance_id)
    .fetch_all(conn)
    .await?)
}

/// Writes the mutable fields of a floating IP.
pub async fn update(conn: &mut Conn, row: &FloatingIpRow) -> StoreResult<()> {
    sqlx::query(
        "UPDATE floating_ips SET description = $2, instance_id = $3, status = $4, \
         status_detail = $5, revision = $6, updated_at = $7, standby_instance_ids = $8 \
         WHERE id = $1",
    )
    .bind(&row.id)
    .bind(&row.description)
    .bind(&row.instance_id)
    .bind(&row.status)
    .bind(&row.status_detail)
    .bind(row.revision)
    .bind(row.updated_at)
    .bind(&row.standby_instance_ids)
    .execute(conn)
    .await
    .map_err(classify)?;
    Ok(())
}

/// Turns a floating IP into a tombstone that keeps its address out of the
/// pool; `released_at` is set when no host holds the address any more.
pub async fn mark_deleted(
    conn: &mut Conn,
    id: &str,
    revision: i64,
    now: i64,
    released_at: Option<i64>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE floating_ips SET deleted_at = $2, released_at = $3, instance_id = NULL, \
         status = 'DOWN', status_detail = NULL, revision = $4, updated_at = $2 WHERE id = $1",
    )
    .bind(id)
    .bind(now)
    .bind(released_at)
    .bind(revision)
    .execute(conn)
    .await?;
    Ok(())
}

/// Removes tombstones whose quarantine ended before `cutoff` (optionally in
/// one pool only), with their event logs, so the addresses can be reused.
pub async fn purge_released(
    conn: &mut Conn,
    pool_id: Option<&str>,
    cutoff: i64,
) -> StoreResult<u64> {
    const WHICH: &str = "deleted_at IS NOT NULL AND released_at IS NOT NULL \
                         AND released_at <= $1 AND ($2 IS NULL OR pool_id = $2)";
    sqlx::query(&format!(
        "DELETE FROM events WHERE floating_ip_id IN (SELECT id FROM floating_ips WHERE {WHICH})"
    ))
    .bind(cutoff)
    .bind(pool_id)
    .execute(&mut *conn)
    .await?;
    let done = sqlx::query(&format!("DELETE FROM floating_ips WHERE {WHICH}"))
        .bind(cutoff)
        .bind(pool_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// Removes the tombstone holding one address, if its quarantine has ended;
/// used before allocating that address explicitly.
pub async fn purge_address(
    conn: &mut Conn,
    network_id: &str,
    address_key: &str,
    cutoff: i64,
) -> StoreResult<()> {
    const WHICH: &str = "network_id = $1 AND address_key = $2 AND deleted_at IS NOT NULL \
                         AND released_at IS NOT NULL AND released_at <= $3";
    sqlx::query(&format!(
        "DELETE FROM events WHERE floating_ip_id IN (SELECT id FROM floating_ips WHERE {WHICH})"
    ))
    .bind(network_id)
    .bind(address_key)
    .bind(cutoff)
    .execute(&mut *conn)
    .await?;
    sqlx::query(&format!("DELETE FROM floating_ips WHERE {WHICH}"))
        .bind(network_id)
        .bind(address_key)
        .bind(cutoff)
        .execute(conn)
        .await?;
    Ok(())
}

/// Taken address keys of a network in `[from, to]`, ascending, at most
/// `limit`: the dense-pool allocator walks these to find gaps.
pub async fn taken_keys(
    conn: &mut Conn,
    network_id: &str,
    from: &str,
    to: &str,
    limit: i64,
) -> StoreResult<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT address_key FROM floating_ips \
         WHERE network_id = $1 AND address_key >= $2 AND address_key <= $3 \
         ORDER BY address_key LIMIT $4",
    )
    .bind(network_id)
    .bind(from)
    .bind(to)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Who holds `key` on a network, for a clear "address in use" answer:
/// `Some(true)` live, `Some(false)` deleted but held or in quarantine.
pub async fn holder_of(conn: &mut Conn, network_id: &str, key: &str) -> StoreResult<Option<bool>> {
    let deleted: Option<Option<i64>> = sqlx::query_scalar(
        "SELECT deleted_at FROM floating_ips WHERE network_id = $1 AND address_key = $2",
    )
    .bind(network_id)
    .bind(key)
    .fetch_optional(conn)
    .await?;
    Ok(deleted.map(|d| d.is_none()))
}

impl Store {
    pub async fn fip_get(&self, id: &str) -> StoreResult<Option<FloatingIpRow>> {
        Ok(sqlx::query_as(&format!(
            "{SELECT} WHERE f.id = $1 AND f.deleted_at IS NULL"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?)
    }

    pub async fn fip_list(
        &self,
        filter: &FloatingIpFilter,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<FloatingIpRow>> {
        Ok(sqlx::query_as(&format!(
            "{SELECT} WHERE f.deleted_at IS NULL \
             AND ($1 IS NULL OR f.id > $1) \
             AND ($2 IS NULL OR f.network_id = $2) \
             AND ($3 IS NULL OR f.pool_id = $3) \
             AND ($4 IS NULL OR f.project_id = $4) \
             AND ($5 IS NULL OR f.instance_id = $5) \
             AND ($6 IS NULL OR f.status = $6) \
             AND ($7 IS NULL OR f.address_key = $7) \
             ORDER BY f.id LIMIT $8"
        ))
        .bind(after)
        .bind(&filter.network_id)
        .bind(&filter.pool_id)
        .bind(&filter.project_id)
        .bind(&filter.instance_id)
        .bind(&filter.status)
        .bind(&filter.address_key)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// Purges every tombstone whose quarantine ended before `cutoff`.
    pub async fn purge_released(&self, cutoff: i64) -> StoreResult<u64> {
        let mut tx = self.begin().await?;
        let n = purge_released(&mut tx, None, cutoff).await?;
        tx.commit().await?;
        Ok(n)
    }
}
