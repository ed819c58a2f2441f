//! SQL for Idempotency-Key records.

use sqlx::FromRow;

use super::{Store, StoreResult};

#[derive(Debug, Clone, FromRow)]
pub struct IdempotencyRecord {
    pub request_hash: String,
    /// `None` while the first request is still being handled.
    pub status: Option<i64>,
    pub response: Option<String>,
    pub created_at: i64,
}

impl Store {
    /// Claims `key` for a request; `false` when a live record exists already.
    /// Records older than `expired_before`, and claims whose request never
    /// finished made before `abandoned_before`, are replaced.
    pub async fn idempotency_claim(
        &self,
        scope: &str,
        key: &str,
        request_hash: &str,
        now: i64,
        expired_before: i64,
        abandoned_before: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 \
             AND (created_at < $3 OR (status IS NULL AND created_at < $4))",
        )
        .bind(scope)
        .bind(key)
        .bind(expired_before)
        .bind(abandoned_before)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query(
            "INSERT INTO idempotency_keys (scope, key, request_hash, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (scope, key) DO NOTHING",
        )
        .bind(scope)
        .bind(key)
        .bind(request_hash)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn idempotency_get(
        &self,
        scope: &str,
        key: &str,
    ) -> StoreResult<Option<IdempotencyRecord>> {
        Ok(sqlx::query_as(
            "SELECT request_hash, status, response, created_at FROM idempotency_keys \
             WHERE scope = $1 AND key = $2",
        )
        .bind(scope)
        .bind(key)
        .fetch_optional(self.pool())
        .await?)
    }

    pub async fn idempotency_complete(
        &self,
        scope: &str,
        key: &str,
        status: i64,
        response: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE idempotency_keys SET status = $3, response = $4 WHERE scope = $1 AND key = $2",
        )
        .bind(scope)
        .bind(key)
        .bind(status)
        .bind(response)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Forgets a claim whose request failed, so the client may retry it.
    pub async fn idempotency_release(&self, scope: &str, key: &str) -> StoreResult<()> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND status IS NULL",
        )
        .bind(scope)
        .bind(key)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn idempotency_purge(&self, expired_before: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(expired_before)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}
