//! SQL for instances.

use sqlx::FromRow;

use super::{classify, Conn, Store, StoreResult};

#[derive(Debug, Clone, FromRow)]
pub struct InstanceRow {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub host: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, name, project_id, host, created_at, updated_at";

/// An instance, locked for the rest of the transaction on PostgreSQL (to
/// change it, never to delete it: floating IPs being created reference it).
pub async fn get_for_update(
    conn: &mut Conn,
    store: &Store,
    id: &str,
) -> StoreResult<Option<InstanceRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM instances WHERE id = $1{}",
        store.for_no_key_update()
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// An instance, read without a lock (for the controller, which already
/// holds the floating IP's lock and must not take the instance's after it).
pub async fn get(conn: &mut Conn, id: &str) -> StoreResult<Option<InstanceRow>> {
    Ok(
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM instances WHERE id = $1"))
            .bind(id)
            .fetch_optional(conn)
            .await?,
    )
}

pub async fn update(conn: &mut Conn, row: &InstanceRow) -> StoreResult<()> {
    sqlx::query("UPDATE instances SET name = $2, host = $3, updated_at = $4 WHERE id = $1")
        .bind(&row.id)
        .bind(&row.name)
        .bind(&row.host)
        .bind(row.updated_at)
        .execute(conn)
        .await?;
    Ok(())
}

/// `Err(Unique)` when the id is taken.
pub async fn insert(conn: &mut Conn, row: &InstanceRow) -> StoreResult<()> {
    sqlx::query(&format!(
        "INSERT INTO instances ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
    ))
    .bind(&row.id)
    .bind(&row.name)
    .bind(&row.project_id)
    .bind(&row.host)
    .bind(row.created_at)
    .bind(row.updated_at)
    .execute(conn)
    .await
    .map_err(classify)?;
    Ok(())
}

impl Store {
    pub async fn instance_get(&self, id: &str) -> StoreResult<Option<InstanceRow>> {
        Ok(
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM instances WHERE id = $1"))
                .bind(id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    pub async fn instance_list(
        &self,
        after: Option<&str>,
        project_id: Option<&str>,
        host: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<InstanceRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM instances WHERE ($1 IS NULL OR id > $1) \
             AND ($2 IS NULL OR project_id = $2) AND ($3 IS NULL OR host = $3) \
             ORDER BY id LIMIT $4"
        ))
        .bind(after)
        .bind(project_id)
        .bind(host)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// Deletes an instance; `Err(ForeignKey)` while floating IPs are
    /// associated with it (the foreign key decides, race-free).
    pub async fn instance_delete(&self, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM instances WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await
            .map_err(classify)?;
        Ok(done.rows_affected() == 1)
    }
}
