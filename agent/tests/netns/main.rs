//! Agent tests on real kernels: each test builds its own namespaces (bridge + hosts A, B, client C) and runs the real binary.
//!
//! They need root with CAP_NET_ADMIN, which every machine of this project
//! (and CI) has; they are part of the normal test command, never ignored.

mod bad_input;
mod capture;
mod commands;
mod conflict;
mod daemon;
mod foreign;
mod harness;
mod idempotence;
mod lifetimes;
mod moves;
mod optimistic;
