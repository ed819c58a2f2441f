//! The one harness for tests and benchmarks that need real kernels
//! (docs/testing.md): network namespaces joined by bridges, the management
//! path to fipd, fipd replicas and agents as real processes, a throwaway
//! PostgreSQL, faults (links cut with or without carrier, signals, clock
//! steps) and observers of what each kernel holds.
//!
//! Everything it makes is removed when its guard is dropped, also when a
//! test panics; the names of namespaces and links carry the pid of the
//! process that made them, so the next run sweeps what a crashed one left.
//! It needs root (CAP_NET_ADMIN), `ip` (iproute2) and, for frame drops,
//! `nft` (nftables).

pub mod net;
pub mod observe;
pub mod pg;
pub mod proc;
pub mod topo;

pub use net::{in_ns, ip, sysctl, wait_for};
pub use observe::{double_holders, usable_intervals, AddrMonitor, Interval, Pinger};
pub use pg::TempPostgres;
pub use proc::{binary, start_agent, start_fipd, AgentSpec, FipdSpec, Proc};
pub use topo::{Cut, Dad, Host, HostSpec, Topo, TopoSpec, DEV, MGMT};
