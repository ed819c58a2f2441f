//! The one clock that leases and fences are measured on (docs/protocol.md,
//! "One clock"): the database's on PostgreSQL, shared by every replica, so
//! skew between replicas or a clock step on one of them cannot make a live
//! host look lost; on SQLite (one process) this process's clock, counted
//! from a monotonic anchor so a wall-clock step while fipd runs moves
//! nothing.

use std::sync::OnceLock;
use std::time::Instant;

use super::{Backend, Conn, Store, StoreResult};

/// The database's time in ms since the Unix epoch. `clock_timestamp()`, not
/// `now()`: the latter is frozen at the start of the transaction, which may
/// have waited on a lock for a while.
const PG_NOW: &str = "SELECT CAST(FLOOR(EXTRACT(EPOCH FROM clock_timestamp()) * 1000) AS BIGINT)";

impl Store {
    /// Now, in ms since the epoch, on the clock leases live on. Read it
    /// inside the transaction that uses it, after the locks it needs: an
    /// instant read earlier is only ever older, which delays a loss or a
    /// fence and never hastens one.
    pub async fn now(&self, conn: &mut Conn) -> StoreResult<i64> {
        match self.backend() {
            Backend::Postgres => Ok(sqlx::query_scalar(PG_NOW).fetch_one(conn).await?),
            Backend::Sqlite => Ok(process_now_ms()),
        }
    }
}

/// This process's clock: the wall clock read once at the first call, then
/// advanced by the monotonic clock, so NTP steps after start-up do not move
/// it. It follows the wall clock again after a restart.
pub fn process_now_ms() -> i64 {
    static ANCHOR: OnceLock<(i64, Instant)> = OnceLock::new();
    let (wall, mono) =
        ANCHOR.get_or_init(|| (chrono::Utc::now().timestamp_millis(), Instant::now()));
    wall + i64::try_from(mono.elapsed().as_millis()).unwrap_or(i64::MAX / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_clock_starts_at_the_wall_clock_and_never_goes_back() {
        let a = process_now_ms();
        let wall = chrono::Utc::now().timestamp_millis();
        assert!((wall - a).abs() < 60_000, "anchored at the wall clock");
        let b = process_now_ms();
        assert!(b >= a);
    }
}
