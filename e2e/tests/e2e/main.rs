//! End-to-end tests: real `fipd` and `fip-agent` processes, hosts A and B,
//! client C (and a squatter) in network namespaces joined by a bridge.
//!
//! They need root with CAP_NET_ADMIN (every machine of this project and CI
//! has it) and the workspace's binaries in target/debug; test 9 needs
//! PostgreSQL (`DATABASE_URL`, set by scripts/test.sh). Each test builds
//! and tears down its own namespaces and links, also on failure.

mod cluster;
mod failures;
mod faults;
mod fences;
mod harness;
mod moves;
mod observe;
mod replicas;
mod scoping;
mod squatter;
mod terraform;
