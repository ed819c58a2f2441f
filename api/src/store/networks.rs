//! SQL for networks.

use sqlx::FromRow;

use super::{classify, Store, StoreResult};

#[derive(Debug, Clone, FromRow)]
pub struct NetworkRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, name, description, created_at, updated_at";

impl Store {
    pub async fn network_insert(&self, row: &NetworkRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO networks (id, name, description, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&row.id)
        .bind(&row.name)
        .bind(&row.description)
        .bind(row.created_at)
        .bind(row.updated_at)
        .execute(self.pool())
        .await
        .map_err(classify)?;
        Ok(())
    }

    pub async fn network_get(&self, id: &str) -> StoreResult<Option<NetworkRow>> {
        Ok(
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM networks WHERE id = $1"))
                .bind(id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// Keyset page ordered by id (UUIDv7, so creation order).
    pub async fn network_list(
        &self,
        after: Option<&str>,
        name: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<NetworkRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM networks \
             WHERE ($1 IS NULL OR id > $1) AND ($2 IS NULL OR name = $2) \
             ORDER BY id LIMIT $3"
        ))
        .bind(after)
        .bind(name)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    pub async fn network_update(&self, row: &NetworkRow) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE networks SET name = $2, description = $3, updated_at = $4 WHERE id = $1",
        )
        .bind(&row.id)
        .bind(&row.name)
        .bind(&row.description)
        .bind(row.updated_at)
        .execute(self.pool())
        .await
        .map_err(classify)?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes a network; `Err(ForeignKey)` while pools still reference it
    /// (the foreign key decides, so a concurrent pool insert cannot slip in).
    pub async fn network_delete(&self, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM networks WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await
            .map_err(classify)?;
        Ok(done.rows_affected() == 1)
    }

    /// A host whose agent serves the network `name` (by its last lease),
    /// if any: agents find networks by name.
    pub async fn network_served_by(&self, name: &str) -> StoreResult<Option<String>> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT name, networks FROM hosts ORDER BY name")
                .fetch_all(self.pool())
                .await?;
        for (host, networks) in rows {
            let served: Vec<fip_types::ServedNetwork> = serde_json::from_str(&networks)
                .map_err(|e| super::StoreError::Corrupt(format!("host {host} networks: {e}")))?;
            if served.iter().any(|n| n.network == name) {
                return Ok(Some(host));
            }
        }
        Ok(None)
    }

    /// Whether any floating IP of the network is placed on (or not yet
    /// confirmed removed from) some host.
    pub async fn network_has_bindings(&self, id: &str) -> StoreResult<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM bindings b JOIN floating_ips f ON f.id = b.floating_ip_id \
             WHERE f.network_id = $1",
        )
        .bind(id)
        .fetch_one(self.pool())
        .await?;
        Ok(n > 0)
    }
}
