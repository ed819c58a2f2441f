//! End-to-end tests of fipd and fip-agent live in `tests/e2e/`; this library is intentionally empty.
