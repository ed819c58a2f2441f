//! SQL for pools.

use sqlx::FromRow;

use super::{classify, Store, StoreResult};

#[derive(Debug, Clone, FromRow)]
pub struct PoolRow {
    pub id: String,
    pub network_id: String,
    pub cidr: String,
    pub first_key: String,
    pub last_key: String,
    /// JSON `[["first", "last"], ...]`.
    pub ranges: String,
    /// JSON `["addr", ...]`.
    pub reserved: String,
    pub description: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str =
    "id, network_id, cidr, first_key, last_key, ranges, reserved, description, created_at, updated_at";

/// Counts for `GET /v1/pools/{id}/usage`.
#[derive(Debug, Clone, Copy)]
pub struct PoolCounts {
    /// Live floating IPs.
    pub allocated: i64,
    /// Deleted floating IPs whose address is not reusable yet (a host may
    /// still hold it, or the quarantine has not passed).
    pub held: i64,
}

impl Store {
    /// Inserts a pool; `Err(PoolOverlap)` from the schema trigger when it
    /// overlaps another pool on the same network.
    pub async fn pool_insert(&self, row: &PoolRow) -> StoreResult<()> {
        sqlx::query(&format!(
            "INSERT INTO pools ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(&row.id)
        .bind(&row.network_id)
        .bind(&row.cidr)
        .bind(&row.first_key)
        .bind(&row.last_key)
        .bind(&row.ranges)
        .bind(&row.reserved)
        .bind(&row.description)
        .bind(row.created_at)
        .bind(row.updated_at)
        .execute(self.pool())
        .await
        .map_err(classify)?;
        Ok(())
    }

    pub async fn pool_get(&self, id: &str) -> StoreResult<Option<PoolRow>> {
        Ok(
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM pools WHERE id = $1"))
                .bind(id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    pub async fn pool_list(
        &self,
        after: Option<&str>,
        network_id: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<PoolRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM pools \
             WHERE ($1 IS NULL OR id > $1) AND ($2 IS NULL OR network_id = $2) \
             ORDER BY id LIMIT $3"
        ))
        .bind(after)
        .bind(network_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// The pools of a network whose prefix contains `key`, or all of them
    /// in creation order when `key` is `None`.
    pub async fn pools_of_network(
        &self,
        network_id: &str,
        key: Option<&str>,
    ) -> StoreResult<Vec<PoolRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM pools WHERE network_id = $1 \
             AND ($2 IS NULL OR (first_key <= $2 AND last_key >= $2)) ORDER BY id"
        ))
        .bind(network_id)
        .bind(key)
        .fetch_all(self.pool())
        .await?)
    }

    pub async fn pool_counts(
        &self,
        id: &str,
        now: i64,
        quarantine_ms: i64,
    ) -> StoreResult<PoolCounts> {
        let (allocated, held): (i64, i64) = sqlx::query_as(
            "SELECT \
               COUNT(CASE WHEN deleted_at IS NULL THEN 1 END), \
               COUNT(CASE WHEN deleted_at IS NOT NULL \
                      AND (released_at IS NULL OR released_at > $2) THEN 1 END) \
             FROM floating_ips WHERE pool_id = $1",
        )
        .bind(id)
        .bind(now - quarantine_ms)
        .fetch_one(self.pool())
        .await?;
        Ok(PoolCounts { allocated, held })
    }

    /// Deletes a pool with no live or held addresses: rows whose quarantine
    /// has passed are purged first; anything left makes the foreign key
    /// refuse the delete (`Err(ForeignKey)`).
    pub async fn pool_delete(&self, id: &str, now: i64, quarantine_ms: i64) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        super::floating_ips::purge_released(&mut tx, Some(id), now - quarantine_ms).await?;
        let done = sqlx::query("DELETE FROM pools WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }
}

/// Locks a pool row for the rest of the transaction (PostgreSQL), so dense
/// allocations in one pool queue up instead of racing for the same gap.
pub async fn lock(conn: &mut super::Conn, store: &Store, id: &str) -> StoreResult<bool> {
    let found: Option<String> = sqlx::query_scalar(&format!(
        "SELECT id FROM pools WHERE id = $1{}",
        store.for_update()
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(found.is_some())
}

impl Store {
    /// Live allocations per pool, for the metrics endpoint.
    pub async fn allocated_per_pool(&self) -> StoreResult<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT pool_id, COUNT(*) FROM floating_ips WHERE deleted_at IS NULL GROUP BY pool_id",
        )
        .fetch_all(self.pool())
        .await?)
    }
}
