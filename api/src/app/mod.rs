//! The application layer: what fipd does, independent of HTTP and SQL.
//! Handlers call in here with validated domain values and a [`Principal`];
//! this layer decides, and calls the store.

pub mod agent;
mod allocator;
mod auth;
pub mod changes;
pub mod controller;
mod error;
pub mod floating_ips;
pub mod hosts;
pub mod instances;
pub mod networks;
pub mod pools;
pub mod quotas;
pub mod tokens;

use std::sync::Arc;

pub use auth::{hash_token, Principal};
pub use changes::{Changes, Touched};
pub use error::AppError;
pub use fip_types::DadMode;

use crate::store::Store;

/// Tunables of the application layer.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// SHA-256 (hex) of the admin token.
    pub admin_token_hash: String,
    /// How long a released address stays out of the pool.
    pub quarantine_ms: i64,
    /// How long an agent's lease lasts without renewal.
    pub lease_ttl_ms: i64,
    /// Extra time after a lease runs out before the host's addresses count
    /// as gone: covers clock error between fipd and the agent.
    pub fence_grace_ms: i64,
    /// DAD mode and NA settings sent with every desired address.
    pub dad: DadMode,
    pub na_count: u32,
    pub na_interval_ms: u64,
    /// Events kept per floating IP (the oldest go first).
    pub event_retention_count: i64,
    /// Events older than this are deleted.
    pub event_retention_ms: i64,
    /// Quota defaults for projects without their own (`None`: unlimited).
    pub default_quota: quotas::Limits,
}

impl AppConfig {
    /// Defaults for everything but the admin token.
    pub fn new(admin_token_hash: String) -> Self {
        Self {
            admin_token_hash,
            quarantine_ms: 60_000,
            lease_ttl_ms: 10_000,
            fence_grace_ms: 2_000,
            dad: DadMode::Strict,
            na_count: 3,
            na_interval_ms: 1_000,
            event_retention_count: 1_000,
            event_retention_ms: 30 * 24 * 3600 * 1000,
            default_quota: quotas::Limits::default(),
        }
    }
}

/// Shared application state: the store and the settings.
#[derive(Clone)]
pub struct App {
    pub store: Store,
    pub config: Arc<AppConfig>,
    /// Wakes long-polling agents of the hosts a change concerns.
    pub changes: Changes,
    /// Long polls read the database with at most this many connections at
    /// once, so a burst of them leaves room for API requests.
    poll_permits: Arc<tokio::sync::Semaphore>,
    /// Pool usage for `/metrics`, refreshed in the background so a scrape
    /// costs no database work (see [`App::refresh_pool_stats`]).
    pub pool_stats: Arc<std::sync::RwLock<Vec<pools::PoolStat>>>,
}

impl App {
    pub fn new(store: Store, config: AppConfig) -> Self {
        let permits = match store.backend() {
            crate::store::Backend::Postgres => (crate::store::PG_POOL_SIZE / 2) as usize,
            crate::store::Backend::Sqlite => 1,
        };
        Self {
            store,
            config: Arc::new(config),
            changes: Changes::default(),
            poll_permits: Arc::new(tokio::sync::Semaphore::new(permits)),
            pool_stats: Arc::default(),
        }
    }

    /// Announces a committed change to the long polls of the hosts it
    /// touched, here and, through PostgreSQL NOTIFY, on every other replica.
    pub async fn publish(&self, touched: Touched) {
        if touched.is_empty() {
            return;
        }
        self.changes.bump(&touched);
        if let Err(e) = self.store.notify_peers(&touched.payload()).await {
            tracing::warn!(error = %e, "could not notify other replicas");
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;

/// A page request for keyset pagination: rows after `after`, at most `limit`.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub after: Option<String>,
    pub limit: i64,
}

/// Fetch `limit + 1` rows and call this: it trims the extra row and turns
/// its presence into the next page token (the last returned row's key).
pub fn paginate<T>(
    mut rows: Vec<T>,
    limit: i64,
    key: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if rows.len() > limit {
        rows.truncate(limit);
        let next = rows.last().map(key);
        (rows, next)
    } else {
        (rows, None)
    }
}

/// A new resource id: UUIDv7, so id order is creation order and keyset
/// pagination by id is stable and chronological.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paginate_returns_a_token_only_when_more_rows_exist() {
        let (rows, next) = paginate(vec![1, 2, 3], 2, |r| r.to_string());
        assert_eq!(rows, vec![1, 2]);
        assert_eq!(next.as_deref(), Some("2"));
        let (rows, next) = paginate(vec![1, 2], 2, |r| r.to_string());
        assert_eq!(rows, vec![1, 2]);
        assert_eq!(next, None);
    }
}
