//! fip-agent: applies floating IPv6 addresses the DAD-safe way (design §4–§6).
//!
//! - [`manager::AddressManager`]: add with DAD verdict, remove with
//!   confirmation, list, announce, check — all in the current namespace.
//! - [`reconcile`]: the decision half of a reconcile pass, pure: the
//!   per-address [`reconcile::plan::plan`] and the whole pass
//!   [`reconcile::decide::decide`]; the daemon only executes it.
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
pub use fip_types::ReportedState;
pub use manager::{
    AddOptions, AddOutcome, AddressManager, DadMode, NaOptions, Outcome, RemoveOutcome,
    FIP_ADDR_PROTO,
};
pub use reconcile::plan::{plan, DesiredAddr, ObservedAddr, Plan};
