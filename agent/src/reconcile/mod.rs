//! The reconciler's decisions, free of I/O so every rule is unit-tested:
//! the per-address diff ([`plan`]), the whole pass ([`decide`]), and what
//! kernel flags mean ([`status`]).

pub mod decide;
pub mod plan;
pub mod status;
