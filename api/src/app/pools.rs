//! Pools: an IPv6 prefix on a network, with allocation ranges and reserved
//! addresses.

use std::net::Ipv6Addr;

use super::{new_id, paginate, App, AppError, AppResult, PageRequest, Principal};
use crate::domain::{addr_key, Description, Ipv6Prefix, PoolSpace};
use crate::store::{now_ms, PoolRow, StoreError};

/// A stored pool with its parsed address space.
#[derive(Debug, Clone)]
pub struct Pool {
    pub row: PoolRow,
    pub space: PoolSpace,
}

impl Pool {
    /// Parses a stored row. Rows are written only after validation, so a
    /// failure here means the database was edited by hand.
    pub fn from_row(row: PoolRow) -> Result<Self, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("pool {}: {what}", row.id));
        let prefix: Ipv6Prefix = row.cidr.parse().map_err(|_| corrupt("cidr"))?;
        let ranges: Vec<(Ipv6Addr, Ipv6Addr)> =
            serde_json::from_str(&row.ranges).map_err(|_| corrupt("ranges"))?;
        let reserved: Vec<Ipv6Addr> =
            serde_json::from_str(&row.reserved).map_err(|_| corrupt("reserved"))?;
        let space =
            PoolSpace::new(prefix, Some(&ranges), &reserved).map_err(|_| corrupt("space"))?;
        Ok(Self { row, space })
    }
}

/// Validated input of `POST /v1/pools`.
pub struct NewPool {
    pub network_id: String,
    pub cidr: Ipv6Prefix,
    pub ranges: Option<Vec<(Ipv6Addr, Ipv6Addr)>>,
    pub reserved: Vec<Ipv6Addr>,
    pub description: Description,
}

/// Allocation figures of one pool. `capacity` can exceed `u64`.
pub struct PoolUsage {
    pub allocated: i64,
    pub held: i64,
    pub capacity: u128,
}

impl App {
    pub async fn pool_create(&self, who: &Principal, new: NewPool) -> AppResult<Pool> {
        who.require_admin()?;
        let space = PoolSpace::new(new.cidr, new.ranges.as_deref(), &new.reserved)
            .map_err(|e| AppError::invalid(e.field(), &e))?;
        if self.store.network_get(&new.network_id).await?.is_none() {
            return Err(AppError::no_such("network_id", "no such network"));
        }
        let ranges: Vec<(Ipv6Addr, Ipv6Addr)> = space
            .ranges()
            .iter()
            .map(|r| (Ipv6Addr::from(r.first), Ipv6Addr::from(r.last)))
            .collect();
        let reserved: Vec<Ipv6Addr> = space.reserved().map(Ipv6Addr::from).collect();
        let now = now_ms();
        let row = PoolRow {
            id: new_id(),
            network_id: new.network_id,
            cidr: new.cidr.to_string(),
            first_key: addr_key(new.cidr.network()),
            last_key: addr_key(new.cidr.last()),
            ranges: serde_json::to_string(&ranges).expect("addresses serialise"),
            reserved: serde_json::to_string(&reserved).expect("addresses serialise"),
            description: new.description.as_str().to_owned(),
            created_at: now,
            updated_at: now,
        };
        match self.store.pool_insert(&row).await {
            Ok(()) => Ok(Pool { row, space }),
            Err(StoreError::PoolOverlap) => Err(AppError::conflict(
                "pool_overlap",
                format!("{} overlaps another pool on this network", new.cidr),
            )),
            Err(StoreError::ForeignKey) => Err(AppError::no_such("network_id", "no such network")),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn pool_get(&self, id: &str) -> AppResult<Pool> {
        let row = self
            .store
            .pool_get(id)
            .await?
            .ok_or(AppError::NotFound("pool"))?;
        Ok(Pool::from_row(row)?)
    }

    pub async fn pool_list(
        &self,
        network_id: Option<&str>,
        page: &PageRequest,
    ) -> AppResult<(Vec<Pool>, Option<String>)> {
        let rows = self
            .store
            .pool_list(page.after.as_deref(), network_id, page.limit + 1)
            .await?;
        let (rows, next) = paginate(rows, page.limit, |r| r.id.clone());
        let pools = rows
            .into_iter()
            .map(Pool::from_row)
            .collect::<Result<_, _>>()?;
        Ok((pools, next))
    }

    pub async fn pool_usage(&self, id: &str) -> AppResult<PoolUsage> {
        let pool = self.pool_get(id).await?;
        let counts = self
            .store
            .pool_counts(id, now_ms(), self.config.quarantine_ms)
            .await?;
        Ok(PoolUsage {
            allocated: counts.allocated,
            held: counts.held,
            capacity: pool.space.capacity(),
        })
    }

    pub async fn pool_delete(&self, who: &Principal, id: &str) -> AppResult<()> {
        who.require_admin()?;
        match self
            .store
            .pool_delete(id, now_ms(), self.config.quarantine_ms)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(AppError::NotFound("pool")),
            Err(StoreError::ForeignKey) => Err(AppError::conflict(
                "pool_in_use",
                "addresses are still allocated from this pool (or held by a host, or in quarantine)",
            )),
            Err(e) => Err(e.into()),
        }
    }
}

/// One pool's figures for `/metrics`.
#[derive(Debug, Clone)]
pub struct PoolStat {
    pub pool_id: String,
    pub allocated: i64,
    pub capacity: u128,
}

impl App {
    /// Recomputes every pool's usage in two queries; pools deleted since
    /// the last refresh drop out of the figures.
    pub async fn refresh_pool_stats(&self) -> AppResult<()> {
        let allocated: std::collections::HashMap<String, i64> =
            self.store.allocated_per_pool().await?.into_iter().collect();
        let mut stats = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let rows = self.store.pool_list(after.as_deref(), None, 1000).await?;
            let Some(last) = rows.last().map(|r| r.id.clone()) else {
                break;
            };
            for row in rows {
                let pool = Pool::from_row(row)?;
                stats.push(PoolStat {
                    allocated: allocated.get(&pool.row.id).copied().unwrap_or(0),
                    capacity: pool.space.capacity(),
                    pool_id: pool.row.id,
                });
            }
            after = Some(last);
        }
        *self.pool_stats.write().unwrap_or_else(|p| p.into_inner()) = stats;
        Ok(())
    }
}
