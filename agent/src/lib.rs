//! fip-agent library.
