//! Domain types that make illegal states unrepresentable: validated names,
//! project IDs, IPv6 prefixes and the address space of a pool.

mod names;
mod pool_space;
mod prefix;
mod status;

pub use names::{Description, HostName, Name, NameError, ProjectId};
pub use pool_space::{AddrRange, PoolSpace, PoolSpaceError};
pub use prefix::{Ipv6Prefix, PrefixError};
pub use status::FloatingIpStatus;

use std::net::Ipv6Addr;

/// Addresses are stored as 32 lowercase hex digits so that lexical order in
/// SQL is numeric order on both PostgreSQL and SQLite (neither has a portable
/// 128-bit integer type).
pub fn addr_key(addr: u128) -> String {
    format!("{addr:032x}")
}

/// Inverse of [`addr_key`]; store rows are written only by us, so a malformed
/// key is a corrupted database, not user input.
pub fn parse_addr_key(key: &str) -> Option<u128> {
    (key.len() == 32)
        .then(|| u128::from_str_radix(key, 16).ok())
        .flatten()
}

pub fn addr_to_u128(addr: Ipv6Addr) -> u128 {
    u128::from(addr)
}

pub fn u128_to_addr(v: u128) -> Ipv6Addr {
    Ipv6Addr::from(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addr_keys_sort_like_numbers() {
        let a = addr_key(0x2001_0db8 << 96 | 9);
        let b = addr_key(0x2001_0db8 << 96 | 10);
        assert!(a < b);
        assert_eq!(parse_addr_key(&a), Some(0x2001_0db8 << 96 | 9));
    }

    #[test]
    fn malformed_addr_keys_are_rejected() {
        assert_eq!(parse_addr_key("xyz"), None);
        assert_eq!(parse_addr_key(&"g".repeat(32)), None);
    }
}
