//! Kernel-facing pieces: netlink, DAD watching, NA sending, sysctls.

pub mod dad;
pub mod monitor;
pub mod na;
pub mod netlink;
pub mod sysctl;
