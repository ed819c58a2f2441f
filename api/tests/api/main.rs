//! fipd's integration tests: one binary, so it links once. Every test runs
//! a real server on port 0 with a fresh database; tests marked with
//! `both_backends!` run on SQLite and on PostgreSQL, which makes the API
//! suite the store's conformance suite.

mod helpers;
mod scripted;

mod agent;

mod auth;
mod concurrency;
mod errors;
mod floating_ips;
mod instances;
mod networks;
mod openapi;
mod ops;
mod pools;
mod process;
mod safety;
mod safety_process;
