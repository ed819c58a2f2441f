//! An IPv6 prefix that can hold a floating-IP pool.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

/// Shortest prefix we accept for a pool: anything broader is not one link's
/// address space, and would overlap special-purpose blocks.
pub const MIN_POOL_PREFIX_LEN: u8 = 16;
/// Longest prefix we accept: a /128 leaves nothing to allocate.
pub const MAX_POOL_PREFIX_LEN: u8 = 127;

/// A pool prefix: IPv6, no host bits set, /16 to /127, and outside the
/// link-local, multicast, loopback/unspecified and IPv4-mapped blocks, which
/// can never be floating addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Prefix {
    network: u128,
    len: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error("must look like 2001:db8::/64")]
    Syntax,
    #[error("IPv4 prefixes are not supported; give an IPv6 prefix such as 2001:db8::/64")]
    Ipv4,
    #[error("prefix length must be between /{MIN_POOL_PREFIX_LEN} and /{MAX_POOL_PREFIX_LEN}")]
    Length,
    #[error("has host bits set; did you mean {0}?")]
    HostBits(String),
    #[error("is {0}, which cannot hold floating addresses")]
    Special(&'static str),
}

/// Blocks a pool may not overlap, with the name an operator recognises.
const SPECIAL: &[(u128, u8, &str)] = &[
    (
        0,
        96,
        "inside ::/96 (unspecified, loopback and IPv4-compatible)",
    ),
    (0xffff << 32, 96, "inside ::ffff:0:0/96 (IPv4-mapped)"),
    (0xfe80 << 112, 10, "link-local (fe80::/10)"),
    (0xff00 << 112, 8, "multicast (ff00::/8)"),
];

pub(crate) fn mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    }
}

impl Ipv6Prefix {
    pub fn new(addr: Ipv6Addr, len: u8) -> Result<Self, PrefixError> {
        if !(MIN_POOL_PREFIX_LEN..=MAX_POOL_PREFIX_LEN).contains(&len) {
            return Err(PrefixError::Length);
        }
        let bits = u128::from(addr);
        let network = bits & mask(len);
        if network != bits {
            return Err(PrefixError::HostBits(format!(
                "{}/{len}",
                Ipv6Addr::from(network)
            )));
        }
        let prefix = Self { network, len };
        for &(net, l, what) in SPECIAL {
            if prefix.overlaps(&Self {
                network: net,
                len: l,
            }) {
                return Err(PrefixError::Special(what));
            }
        }
        Ok(prefix)
    }

    pub fn network(&self) -> u128 {
        self.network
    }

    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// The last address of the prefix.
    pub fn last(&self) -> u128 {
        self.network | !mask(self.len)
    }

    pub fn contains(&self, addr: u128) -> bool {
        addr & mask(self.len) == self.network
    }

    pub fn overlaps(&self, other: &Self) -> bool {
        self.contains(other.network) || other.contains(self.network)
    }
}

impl FromStr for Ipv6Prefix {
    type Err = PrefixError;

    fn from_str(s: &str) -> Result<Self, PrefixError> {
        let (addr, len) = s.split_once('/').ok_or(PrefixError::Syntax)?;
        let addr: IpAddr = addr.parse().map_err(|_| PrefixError::Syntax)?;
        let IpAddr::V6(addr) = addr else {
            return Err(PrefixError::Ipv4);
        };
        // Reject "+64" and " 64", which u8::from_str would partly accept.
        if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PrefixError::Syntax);
        }
        let len: u8 = len.parse().map_err(|_| PrefixError::Length)?;
        Self::new(addr, len)
    }
}

impl fmt::Display for Ipv6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv6Addr::from(self.network), self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Ipv6Prefix, PrefixError> {
        s.parse()
    }

    #[test]
    fn documentation_prefix_parses_and_prints_canonically() {
        let x = p("2001:0db8:0100::/64").unwrap();
        assert_eq!(x.to_string(), "2001:db8:100::/64");
        assert_eq!(x.prefix_len(), 64);
    }

    #[test]
    fn ipv4_prefixes_are_rejected() {
        assert_eq!(p("192.0.2.0/24"), Err(PrefixError::Ipv4));
    }

    #[test]
    fn prefixes_longer_than_127_are_rejected() {
        assert_eq!(p("2001:db8::/128"), Err(PrefixError::Length));
        assert_eq!(p("2001:db8::/300"), Err(PrefixError::Length));
        assert!(p("2001:db8::/127").is_ok());
    }

    #[test]
    fn prefixes_shorter_than_16_are_rejected() {
        assert_eq!(p("2000::/3"), Err(PrefixError::Length));
    }

    #[test]
    fn host_bits_are_rejected_with_a_suggestion() {
        assert_eq!(
            p("2001:db8::1/64"),
            Err(PrefixError::HostBits("2001:db8::/64".into()))
        );
    }

    #[test]
    fn link_local_and_multicast_prefixes_are_rejected() {
        assert!(matches!(p("fe80::/64"), Err(PrefixError::Special(_))));
        assert!(matches!(p("ff02::/16"), Err(PrefixError::Special(_))));
        assert!(matches!(p("::/100"), Err(PrefixError::Special(_))));
    }

    #[test]
    fn malformed_prefixes_are_syntax_errors() {
        for s in ["2001:db8::", "2001:db8::/", "2001:db8::/+64", "nonsense/64"] {
            assert_eq!(p(s), Err(PrefixError::Syntax), "{s}");
        }
    }

    #[test]
    fn overlap_is_symmetric_and_detects_nesting() {
        let a = p("2001:db8::/48").unwrap();
        let b = p("2001:db8:0:1::/64").unwrap();
        let c = p("2001:db8:1::/64").unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c) && !c.overlaps(&a));
    }
}
