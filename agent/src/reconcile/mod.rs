//! The reconciler core: a pure plan, an apply step, and per-address status.

pub mod apply;
pub mod plan;
pub mod status;
