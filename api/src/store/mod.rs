//! The allocation store: every SQL statement fipd runs, for PostgreSQL and
//! SQLite alike.
//!
//! One portable layer over `sqlx::Any` instead of one module per backend: the
//! schema uses only TEXT and BIGINT columns (see `migrations/`), so the same
//! statements run on both and the conformance suite proves they behave the
//! same. The few real differences (row locks, migrations, LISTEN/NOTIFY) are
//! switched on [`Backend`] here, not in the application layer.

pub(crate) mod bindings;
mod clock;
pub(crate) mod events;
pub(crate) mod floating_ips;
pub(crate) mod hosts;
mod idempotency;
pub(crate) mod instances;
mod networks;
pub(crate) mod pools;
pub(crate) mod quotas;
mod tokens;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, AnyPool};

pub use bindings::BindingRow;
pub use events::EventRow;
pub use floating_ips::{FloatingIpFilter, FloatingIpRow, NewFloatingIp};
pub use hosts::HostRow;
pub use idempotency::IdempotencyRecord;
pub use instances::InstanceRow;
pub use networks::NetworkRow;
pub use pools::PoolRow;
pub use tokens::TokenRow;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database URL {0:?} is neither postgres:// nor sqlite:")]
    UnsupportedUrl(String),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored row is corrupt: {0}")]
    Corrupt(String),
    #[error("unique constraint violated")]
    Unique,
    #[error("pool overlaps another pool on the network")]
    PoolOverlap,
    #[error("row is still referenced")]
    ForeignKey,
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Turns constraint violations into variants the application layer can
/// match on; everything else stays an opaque database error.
pub(crate) fn classify(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        let msg = db.message();
        if msg.contains("pool_overlap") {
            return StoreError::PoolOverlap;
        }
        if db.is_unique_violation() {
            return StoreError::Unique;
        }
        if db.is_foreign_key_violation() {
            return StoreError::ForeignKey;
        }
    }
    StoreError::Database(e)
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    /// Lease renewals and the controller: on PostgreSQL a pool of their
    /// own, so API traffic and long polls can never take the connections a
    /// renewal needs (a starved renewal loses a lease and fails everything
    /// over). SQLite has one connection for everything.
    lease_pool: AnyPool,
    backend: Backend,
    url: std::sync::Arc<str>,
}

/// Connections of the main PostgreSQL pool (API requests and long polls).
pub const PG_POOL_SIZE: u32 = 16;
/// Connections reserved for lease renewals and the controller.
pub const PG_LEASE_POOL_SIZE: u32 = 4;

impl Store {
    /// Connects to `url` (`postgres://…` or `sqlite:…`), creating an SQLite
    /// file if it does not exist yet.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        let (pool, lease_pool) = match backend {
            Backend::Postgres => {
                let opts = AnyConnectOptions::from_str(url)?;
                let pool = AnyPoolOptions::new()
                    .max_connections(PG_POOL_SIZE)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(opts.clone())
                    .await?;
                let lease_pool = AnyPoolOptions::new()
                    .max_connections(PG_LEASE_POOL_SIZE)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect_with(opts)
                    .await?;
                (pool, lease_pool)
            }
            Backend::Sqlite => {
                // One connection: SQLite allows one writer at a time, and a
                // single connection turns every would-be SQLITE_BUSY into a
                // queue in the pool. WAL keeps readers of other processes
                // (backups, sqlite3 shell) out of our way.
                let url = with_sqlite_params(url);
                let opts = AnyConnectOptions::from_str(&url)?;
                let pool = AnyPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(30))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            for pragma in [
                                "PRAGMA foreign_keys = ON",
                                "PRAGMA journal_mode = WAL",
                                "PRAGMA synchronous = NORMAL",
                                "PRAGMA busy_timeout = 5000",
                            ] {
                                sqlx::query(pragma).execute(&mut *conn).await?;
                            }
                            Ok(())
                        })
                    })
                    .connect_with(opts)
                    .await?;
                (pool.clone(), pool)
            }
        };
        Ok(Self {
            pool,
            lease_pool,
            backend,
            url: url.into(),
        })
    }

    /// The default database: an SQLite file inside the data directory.
    pub fn sqlite_url_for(data_dir: &Path) -> String {
        format!("sqlite://{}", data_dir.join("fipd.db").display())
    }

    pub async fn migrate(&self) -> StoreResult<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// The URL this store was opened with (for PostgreSQL LISTEN).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Tells other fipd replicas which hosts' desired state changed
    /// (PostgreSQL NOTIFY with `payload`); a no-op on SQLite, which has one
    /// process.
    pub async fn notify_peers(&self, payload: &str) -> StoreResult<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify('fipd_changes', $1)")
                .bind(payload)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Takes the controller lock for the rest of `conn`'s transaction, so
    /// one replica at a time acts on expired leases; `false` when another
    /// replica holds it. SQLite has one process, so it always succeeds.
    pub async fn try_controller_lock(&self, conn: &mut Conn) -> StoreResult<bool> {
        match self.backend {
            Backend::Postgres => Ok(sqlx::query_scalar(
                "SELECT pg_try_advisory_xact_lock(7243518)",
            )
            .fetch_one(conn)
            .await?),
            Backend::Sqlite => Ok(true),
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn lease_pool(&self) -> &AnyPool {
        &self.lease_pool
    }

    pub async fn begin(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Any>> {
        begin_detached(&self.pool).await
    }

    /// A transaction on the connections reserved for leases and the
    /// controller (see [`Store::lease_pool`]).
    pub async fn lease_begin(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Any>> {
        begin_detached(&self.lease_pool).await
    }

    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// `FOR UPDATE` on PostgreSQL; SQLite has no row locks and needs none,
    /// because its single connection already serialises transactions.
    pub(crate) fn for_update(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        }
    }

    /// `FOR NO KEY UPDATE` on PostgreSQL: a lock for changing a row's
    /// other columns, which does not wait for the key-share locks that
    /// inserts referencing the row hold (foreign keys). Locking a row that
    /// concurrent inserts reference with `FOR UPDATE` deadlocks against
    /// them; rows about to be deleted still take `FOR UPDATE`.
    pub(crate) fn for_no_key_update(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => " FOR NO KEY UPDATE",
            Backend::Sqlite => "",
        }
    }

    /// A subquery listing the strings of the JSON array bound as
    /// parameter `param`: one statement for any number of rows on both
    /// backends (`sqlx::Any` binds no arrays).
    pub(crate) fn json_list(&self, param: usize) -> String {
        match self.backend {
            Backend::Postgres => format!("SELECT jsonb_array_elements_text(${param}::jsonb)"),
            Backend::Sqlite => format!("SELECT value FROM json_each(${param})"),
        }
    }

    /// `WITH x AS MATERIALIZED (…)`: a table `x` read from the JSON array
    /// of objects bound as parameter `param`, with the given columns (name,
    /// PostgreSQL type), to put before the statement that reads it. Keys
    /// missing from an object read as NULL. Materialised, because SQLite
    /// would otherwise flatten it into the join and parse the JSON again
    /// for every row of the other table.
    pub(crate) fn json_rows(&self, param: usize, columns: &[(&str, &str)]) -> String {
        let body = match self.backend {
            Backend::Postgres => {
                let defs: Vec<String> = columns.iter().map(|(n, t)| format!("{n} {t}")).collect();
                format!(
                    "SELECT * FROM jsonb_to_recordset(${param}::jsonb) AS r({})",
                    defs.join(", ")
                )
            }
            Backend::Sqlite => {
                let cols: Vec<String> = columns
                    .iter()
                    .map(|(n, _)| format!("value ->> '{n}' AS {n}"))
                    .collect();
                format!("SELECT {} FROM json_each(${param})", cols.join(", "))
            }
        };
        format!("WITH x AS MATERIALIZED ({body}) ")
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.lease_pool.close().await;
    }
}

/// `pool.begin()` in a task of its own. On PostgreSQL, sqlx's `begin` is
/// not cancel-safe: a future dropped after `BEGIN` went out but before its
/// answer leaves the connection inside a transaction nothing rolls back,
/// and the pool hands it to the next request, whose statements then run in
/// (and are committed or discarded with) that stale transaction (sqlx
/// issues 4385 and 4393). A spawned `begin` always completes; if our
/// caller is gone by then, the finished `Transaction` is dropped in the
/// task, which queues its `ROLLBACK` as usual.
async fn begin_detached(pool: &AnyPool) -> StoreResult<sqlx::Transaction<'static, sqlx::Any>> {
    let pool = pool.clone();
    match tokio::spawn(async move { pool.begin().await }).await {
        Ok(tx) => Ok(tx?),
        // Only a panic inside sqlx or a runtime shutting down ends up here.
        Err(_) => Err(StoreError::Database(sqlx::Error::WorkerCrashed)),
    }
}

/// Adds `mode=rwc` so a fresh data directory gets its database created.
fn with_sqlite_params(url: &str) -> String {
    if url.contains('?') || url == "sqlite::memory:" {
        url.to_owned()
    } else {
        format!("{url}?mode=rwc")
    }
}

/// Milliseconds since the Unix epoch: the stored form of every instant.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The connection type every multi-statement operation passes around, so
/// the caller decides the transaction boundary.
pub type Conn = AnyConnection;
