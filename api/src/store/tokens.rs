//! SQL for project tokens.

use sqlx::FromRow;

use super::{classify, Store, StoreResult};

#[derive(Debug, Clone, FromRow)]
pub struct TokenRow {
    pub id: String,
    pub project_id: String,
    pub description: String,
    pub token_hash: String,
    pub created_at: i64,
}

const COLUMNS: &str = "id, project_id, description, token_hash, created_at";

impl Store {
    pub async fn token_insert(&self, row: &TokenRow) -> StoreResult<()> {
        sqlx::query(&format!(
            "INSERT INTO tokens ({COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
        ))
        .bind(&row.id)
        .bind(&row.project_id)
        .bind(&row.description)
        .bind(&row.token_hash)
        .bind(row.created_at)
        .execute(self.pool())
        .await
        .map_err(classify)?;
        Ok(())
    }

    pub async fn token_by_hash(&self, hash: &str) -> StoreResult<Option<TokenRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM tokens WHERE token_hash = $1"
        ))
        .bind(hash)
        .fetch_optional(self.pool())
        .await?)
    }

    pub async fn token_get(&self, id: &str) -> StoreResult<Option<TokenRow>> {
        Ok(
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM tokens WHERE id = $1"))
                .bind(id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    pub async fn token_list(&self, after: Option<&str>, limit: i64) -> StoreResult<Vec<TokenRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM tokens WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2"
        ))
        .bind(after)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// Revokes a token by deleting it: its hash no longer authenticates.
    pub async fn token_delete(&self, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM tokens WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
