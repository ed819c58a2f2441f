//! fip-agent: applies floating IPv6 addresses the DAD-safe way (design §4–§6).
//!
//! - [`manager::AddressManager`]: add with DAD verdict, remove with
//!   confirmation, list, announce, check — all in the current namespace.
//! - [`reconcile`]: the pure [`reconcile::plan::plan`], the
//!   [`reconcile::apply::apply`] step and per-address status.
//! - [`daemon`]: `fip-agent run`, the lease/desired-state/report loop with fipd.
//! - [`net`]: netlink, DAD watch and defender capture, NA encoder/sender, sysctls.

pub mod addr;
pub mod cli;
pub mod daemon;
pub mod error;
pub mod manager;
pub mod net;
pub mod reconcile;

pub use addr::{AddrError, FloatingAddr, Mac};
pub use error::AgentError;
pub use manager::{
    AddOptions, AddOutcome, AddressManager, DadMode, NaOptions, Outcome, RemoveOutcome,
    FIP_ADDR_PROTO,
};
pub use reconcile::apply::{apply, ApplyOptions};
pub use reconcile::plan::{plan, DesiredAddr, ObservedAddr, Plan};
pub use reconcile::status::{AddrState, AddressStatus};
