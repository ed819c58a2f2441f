//! The fault-injection suite (`faults`): run by the `fip-faults` binary for
//! long runs, and by the e2e tests (tests/e2e/) in its quick mode.

pub mod faults;
