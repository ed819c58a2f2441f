//! SQL for hosts and their leases.

use sqlx::FromRow;

use super::{classify, Conn, Store, StoreError, StoreResult};

#[derive(Debug, Clone, FromRow)]
pub struct HostRow {
    pub id: String,
    pub name: String,
    pub token_hash: String,
    pub agent_version: Option<String>,
    pub networks: String,
    pub findings: String,
    pub lease_expires_at: Option<i64>,
    pub last_seen_at: Option<i64>,
    pub lost_at: Option<i64>,
    pub fenced_at: Option<i64>,
    pub desired_revision: i64,
    pub desired_digest: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// Until when a kernel lifetime set by the agent can keep an address
    /// alive (None: the agent never said).
    pub backstop_at: Option<i64>,
    /// The agent's local DAD override.
    pub dad_override: Option<String>,
    /// Until when the agent's self-fence may still be removing addresses
    /// after its lease ran out (None: the agent never said).
    pub fence_done_at: Option<i64>,
}

const COLUMNS: &str = "id, name, token_hash, agent_version, networks, findings, lease_expires_at, \
     last_seen_at, lost_at, fenced_at, desired_revision, desired_digest, created_at, updated_at, \
     backstop_at, dad_override, fence_done_at";

/// What a lease renewal records.
pub struct Renewal<'a> {
    pub host_id: &'a str,
    pub now: i64,
    pub expires_at: i64,
    /// The new kernel-lifetime backstop; never moves an earlier one back.
    /// None when the agent did not report its lifetimes.
    pub backstop_at: Option<i64>,
    /// Lease end + how long the agent's self-fence may take; never moves
    /// an earlier one back. None when the agent did not say.
    pub fence_done_at: Option<i64>,
    pub dad_override: Option<&'a str>,
    pub agent_version: &'a str,
    pub networks: &'a str,
    pub findings: &'a str,
}

/// A host, locked for the rest of the transaction on PostgreSQL.
pub async fn get_for_update(
    conn: &mut Conn,
    store: &Store,
    id: &str,
) -> StoreResult<Option<HostRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM hosts WHERE id = $1{}",
        store.for_update()
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// Renews the lease of a host the caller has locked.
pub async fn renew(conn: &mut Conn, r: &Renewal<'_>) -> StoreResult<()> {
    // A renewal never moves an expiry or a backstop back: a slow renewal
    // that commits after a newer one must not shorten the lease the agent
    // already counts on (its own expiry is never later than ours).
    sqlx::query(
        "UPDATE hosts SET \
         lease_expires_at = CASE WHEN lease_expires_at IS NOT NULL AND lease_expires_at > $2 \
                                 THEN lease_expires_at ELSE $2 END, \
         backstop_at = CASE WHEN $7 IS NULL THEN NULL \
                            WHEN backstop_at IS NOT NULL AND backstop_at > $7 THEN backstop_at \
                            ELSE $7 END, \
         fence_done_at = CASE WHEN $9 IS NULL THEN NULL \
                              WHEN fence_done_at IS NOT NULL AND fence_done_at > $9 THEN fence_done_at \
                              ELSE $9 END, \
         dad_override = $8, last_seen_at = $3, agent_version = $4, \
         networks = $5, findings = $6, lost_at = NULL, fenced_at = NULL, updated_at = $3 \
         WHERE id = $1",
    )
    .bind(r.host_id)
    .bind(r.expires_at)
    .bind(r.now)
    .bind(r.agent_version)
    .bind(r.networks)
    .bind(r.findings)
    .bind(r.backstop_at)
    .bind(r.dad_override)
    .bind(r.fence_done_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Locks a host row for the rest of the transaction (PostgreSQL).
pub async fn lock(conn: &mut Conn, store: &Store, id: &str) -> StoreResult<()> {
    sqlx::query(&format!(
        "SELECT id FROM hosts WHERE id = $1{}",
        store.for_update()
    ))
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks hosts whose lease ran out as lost; returns their names.
pub async fn mark_lost(conn: &mut Conn, now: i64) -> StoreResult<Vec<String>> {
    Ok(sqlx::query_scalar(
        "UPDATE hosts SET lost_at = $1, updated_at = $1 \
         WHERE lease_expires_at IS NOT NULL AND lease_expires_at <= $1 AND lost_at IS NULL \
         RETURNING name",
    )
    .bind(now)
    .fetch_all(conn)
    .await?)
}

/// Marks lost hosts as fenced once their addresses count as gone (the
/// safety argument is in docs/protocol.md): their agent has fenced itself,
/// which it does when the lease runs out by its own clock and finishes
/// within `grace_ms` or, when it said it needs longer, by `fence_done_at`;
/// and, unless DAD on the next holder will catch a
/// copy left behind (`dad_protects`), every kernel lifetime the agent set
/// has run out too (`backstop_at`; never, while unknown). Returns their
/// names.
pub async fn mark_fenced(
    conn: &mut Conn,
    now: i64,
    grace_ms: i64,
    dad_protects: bool,
) -> StoreResult<Vec<String>> {
    Ok(sqlx::query_scalar(
        "UPDATE hosts SET fenced_at = $1, updated_at = $1 \
         WHERE lost_at IS NOT NULL AND fenced_at IS NULL AND lease_expires_at + $2 <= $1 \
         AND (fence_done_at IS NULL OR fence_done_at <= $1) \
         AND ($3 OR (backstop_at IS NOT NULL AND backstop_at <= $1)) \
         RETURNING name",
    )
    .bind(now)
    .bind(grace_ms)
    .bind(dad_protects)
    .fetch_all(conn)
    .await?)
}

/// Whether some host's agent overrides fipd's DAD mode with `off`: then a
/// move onto that host is not protected by DAD (see [`mark_fenced`]).
pub async fn any_dad_off_override(conn: &mut Conn) -> StoreResult<bool> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM hosts WHERE dad_override = 'off'")
        .fetch_one(conn)
        .await?;
    Ok(n > 0)
}

/// Bumps the host's desired-state revision if the content digest changed;
/// returns the current revision.
pub async fn desired_revision(conn: &mut Conn, host_id: &str, digest: &str) -> StoreResult<i64> {
    sqlx::query(
        "UPDATE hosts SET desired_revision = desired_revision + 1, desired_digest = $2 \
         WHERE id = $1 AND desired_digest <> $2",
    )
    .bind(host_id)
    .bind(digest)
    .execute(&mut *conn)
    .await?;
    Ok(
        sqlx::query_scalar("SELECT desired_revision FROM hosts WHERE id = $1")
            .bind(host_id)
            .fetch_one(conn)
            .await?,
    )
}

/// Whether the named host holds a valid lease at `now`.
pub async fn is_alive(conn: &mut Conn, name: &str, now: i64) -> StoreResult<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM hosts WHERE name = $1 AND lost_at IS NULL \
         AND lease_expires_at IS NOT NULL AND lease_expires_at > $2",
    )
    .bind(name)
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok(n > 0)
}

impl Store {
    /// `Err(Unique)` when the name is taken.
    pub async fn host_insert(&self, row: &HostRow) -> StoreResult<()> {
        sqlx::query(&format!(
            "INSERT INTO hosts ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
        ))
        .bind(&row.id)
        .bind(&row.name)
        .bind(&row.token_hash)
        .bind(&row.agent_version)
        .bind(&row.networks)
        .bind(&row.findings)
        .bind(row.lease_expires_at)
        .bind(row.last_seen_at)
        .bind(row.lost_at)
        .bind(row.fenced_at)
        .bind(row.desired_revision)
        .bind(&row.desired_digest)
        .bind(row.created_at)
        .bind(row.updated_at)
        .bind(row.backstop_at)
        .bind(&row.dad_override)
        .bind(row.fence_done_at)
        .execute(self.pool())
        .await
        .map_err(classify)?;
        Ok(())
    }

    pub async fn host_get(&self, id: &str) -> StoreResult<Option<HostRow>> {
        Ok(
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM hosts WHERE id = $1"))
                .bind(id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    pub async fn host_by_name(&self, name: &str) -> StoreResult<Option<HostRow>> {
        Ok(
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM hosts WHERE name = $1"))
                .bind(name)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    pub async fn host_by_token_hash(&self, hash: &str) -> StoreResult<Option<HostRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM hosts WHERE token_hash = $1"
        ))
        .bind(hash)
        .fetch_optional(self.pool())
        .await?)
    }

    pub async fn host_list(&self, after: Option<&str>, limit: i64) -> StoreResult<Vec<HostRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM hosts WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2"
        ))
        .bind(after)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// Deletes a host that no binding names; `Err(ForeignKey)` otherwise.
    pub async fn host_delete(&self, id: &str) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let Some(name): Option<String> = sqlx::query_scalar(&format!(
            "SELECT name FROM hosts WHERE id = $1{}",
            self.for_update()
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(false);
        };
        let bound: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM bindings WHERE host = $1")
            .bind(&name)
            .fetch_one(&mut *tx)
            .await?;
        if bound > 0 {
            return Err(StoreError::ForeignKey);
        }
        sqlx::query("DELETE FROM hosts WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}
