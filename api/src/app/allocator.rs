//! Choosing a free address in a pool without enumerating it.
//!
//! Sparse pools (a /64 holds 2^64 addresses) get random draws: each draw is
//! an INSERT that the unique index on (network, address) accepts or refuses,
//! so replicas need no lock and a collision is just another draw. After a
//! few collisions, and always for small pools, we switch to a dense scan:
//! under the pool's row lock, walk the taken keys in address order from a
//! random start and take the first gap. The scan reads only taken rows
//! (never the free space), so it is bounded by the pool's allocations.

use rand::Rng;

use super::pools::Pool;
use super::{App, AppError, AppResult};
use crate::domain::{addr_key, parse_addr_key, PoolSpace};
use crate::store::floating_ips::{self, NewFloatingIp};
use crate::store::{now_ms, pools, Conn, StoreError};

/// Pools up to this many addresses are always scanned: random draws in a
/// small, busy pool collide too often to be worth it.
const DENSE_CAPACITY: u128 = 1 << 16;
/// Random draws before a sparse pool falls back to the scan.
const RANDOM_DRAWS: usize = 16;
/// Scan attempts; a scan only loses to a concurrent random draw in another
/// replica, which needs a sparse pool that is also nearly full.
const SCAN_ATTEMPTS: usize = 8;
/// Taken keys fetched per round trip of the scan.
const SCAN_PAGE: i64 = 256;

pub(super) type Tx = sqlx::Transaction<'static, sqlx::Any>;

impl App {
    /// Inserts a floating IP with a free address of `pool` and returns the
    /// still-open transaction (the caller adds bindings and events to it) and
    /// the address; `None` when the pool is exhausted.
    pub(super) async fn allocate_in(
        &self,
        pool: &Pool,
        template: &NewFloatingIp,
    ) -> AppResult<Option<(Tx, u128)>> {
        let space = &pool.space;
        if space.capacity() == 0 {
            return Ok(None);
        }
        if space.capacity() > DENSE_CAPACITY {
            for _ in 0..RANDOM_DRAWS {
                let draw = rand::thread_rng().gen::<u128>();
                let Some(addr) = space.random_candidate(draw) else {
                    continue;
                };
                let mut tx = self.store.begin().await?;
                match floating_ips::insert(&mut tx, &with_address(template, addr)).await {
                    Ok(()) => return Ok(Some((tx, addr))),
                    Err(StoreError::Unique) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        for _ in 0..SCAN_ATTEMPTS {
            let mut tx = self.store.begin().await?;
            if !pools::lock(&mut tx, &self.store, &pool.row.id).await? {
                return Err(AppError::NotFound("pool"));
            }
            let cutoff = now_ms() - self.config.quarantine_ms;
            floating_ips::purge_released(&mut tx, Some(&pool.row.id), cutoff).await?;
            let start = space.point_at(rand::thread_rng().gen::<u128>());
            let Some(addr) = find_gap(&mut tx, space, &pool.row.network_id, start).await? else {
                return Ok(None);
            };
            match floating_ips::insert(&mut tx, &with_address(template, addr)).await {
                Ok(()) => return Ok(Some((tx, addr))),
                Err(StoreError::Unique) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::conflict(
            "allocation_contention",
            "too many concurrent allocations in this pool; retry",
        ))
    }
}

fn with_address(template: &NewFloatingIp, addr: u128) -> NewFloatingIp {
    NewFloatingIp {
        address: std::net::Ipv6Addr::from(addr).to_string(),
        address_key: addr_key(addr),
        ..template.clone()
    }
}

/// The first allocatable address that no row holds, scanning from `start`
/// and wrapping around the pool's ranges.
async fn find_gap(
    conn: &mut Conn,
    space: &PoolSpace,
    network_id: &str,
    start: u128,
) -> AppResult<Option<u128>> {
    'segments: for seg in space.scan_segments(start) {
        let Some(mut x) = space.next_allowed(seg.first, seg.last) else {
            continue;
        };
        loop {
            let taken = floating_ips::taken_keys(
                conn,
                network_id,
                &addr_key(x),
                &addr_key(seg.last),
                SCAN_PAGE,
            )
            .await?;
            let full_page = taken.len() as i64 == SCAN_PAGE;
            for key in &taken {
                let k = parse_addr_key(key)
                    .ok_or_else(|| StoreError::Corrupt(format!("address key {key:?}")))?;
                if k > x {
                    return Ok(Some(x));
                }
                if k == x {
                    match x
                        .checked_add(1)
                        .and_then(|n| space.next_allowed(n, seg.last))
                    {
                        Some(n) => x = n,
                        None => continue 'segments,
                    }
                }
            }
            if !full_page {
                return Ok(Some(x));
            }
        }
    }
    Ok(None)
}
