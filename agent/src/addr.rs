//! `FloatingAddr`: an IPv6 address that may float between hosts, parsed once at the boundary.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// Why a string is not a usable floating address. Each variant is bad input
/// (exit code 2 on the command line), never a kernel failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    #[error("`{0}` is not an IP address (expected e.g. 2001:db8::10 or 2001:db8::10/128)")]
    Syntax(String),
    #[error("{0} is an IPv4 address; fip-agent manages IPv6 floating addresses only")]
    Ipv4(String),
    #[error("{0} is an IPv4-mapped address; use the IPv4 tooling for IPv4")]
    Ipv4Mapped(Ipv6Addr),
    #[error("{0} is link-local (fe80::/10); link-local addresses are per link and never float")]
    LinkLocal(Ipv6Addr),
    #[error("{0} is a multicast address; a floating address must be unicast")]
    Multicast(Ipv6Addr),
    #[error("{0} is the loopback address")]
    Loopback(Ipv6Addr),
    #[error("{0} is the unspecified address")]
    Unspecified(Ipv6Addr),
    #[error("prefix length `{0}` is out of range (1..=128)")]
    PrefixLen(String),
}

/// A unicast, global-or-ULA IPv6 address with its prefix length (1..=128).
///
/// Construction goes through [`FloatingAddr::new`] or [`FromStr`], so holding
/// one proves every rule in [`AddrError`] was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FloatingAddr {
    addr: Ipv6Addr,
    prefix_len: u8,
}

impl FloatingAddr {
    /// Floating addresses are host addresses unless the operator says otherwise.
    pub const DEFAULT_PREFIX_LEN: u8 = 128;

    pub fn new(addr: Ipv6Addr, prefix_len: u8) -> Result<Self, AddrError> {
        if !(1..=128).contains(&prefix_len) {
            return Err(AddrError::PrefixLen(prefix_len.to_string()));
        }
        if addr.is_unspecified() {
            return Err(AddrError::Unspecified(addr));
        }
        if addr.is_loopback() {
            return Err(AddrError::Loopback(addr));
        }
        if addr.is_multicast() {
            return Err(AddrError::Multicast(addr));
        }
        if addr.is_unicast_link_local() {
            return Err(AddrError::LinkLocal(addr));
        }
        if addr.to_ipv4_mapped().is_some() {
            return Err(AddrError::Ipv4Mapped(addr));
        }
        Ok(Self { addr, prefix_len })
    }

    pub fn addr(&self) -> Ipv6Addr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }
}

impl FromStr for FloatingAddr {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (ip, len) = match s.split_once('/') {
            Some((ip, len)) => (ip, Some(len)),
            None => (s, None),
        };
        let ip: IpAddr = ip.parse().map_err(|_| AddrError::Syntax(s.to_owned()))?;
        let addr = match ip {
            IpAddr::V4(_) => return Err(AddrError::Ipv4(s.to_owned())),
            IpAddr::V6(a) => a,
        };
        let prefix_len = match len {
            None => Self::DEFAULT_PREFIX_LEN,
            // Parse as u16 first so "/300" reports a range error, not a syntax error.
            Some(l) => match l.parse::<u16>() {
                Ok(n) if (1..=128).contains(&n) => n as u8,
                _ => return Err(AddrError::PrefixLen(l.to_owned())),
            },
        };
        Self::new(addr, prefix_len)
    }
}

impl fmt::Display for FloatingAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl Serialize for FloatingAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A MAC address, printed the way `ip link` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl Serialize for Mac {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Mac {
    /// Link-layer addresses come from netlink as byte vectors; only 6-byte
    /// (Ethernet-like) ones can go into an NA's Target Link-Layer option here.
    pub fn from_slice(b: &[u8]) -> Option<Self> {
        <[u8; 6]>::try_from(b).ok().map(Mac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<FloatingAddr, AddrError> {
        s.parse()
    }

    #[test]
    fn bare_address_defaults_to_host_prefix() {
        let a = parse("2001:db8::10").unwrap();
        assert_eq!(a.addr(), "2001:db8::10".parse::<Ipv6Addr>().unwrap());
        assert_eq!(a.prefix_len(), 128);
    }

    #[test]
    fn explicit_prefix_is_kept() {
        assert_eq!(parse("2001:db8::10/64").unwrap().prefix_len(), 64);
    }

    #[test]
    fn unique_local_addresses_are_accepted() {
        assert!(parse("fd00::1").is_ok());
    }

    #[test]
    fn garbage_is_a_syntax_error() {
        assert!(matches!(parse("not-an-ip"), Err(AddrError::Syntax(_))));
        assert!(matches!(parse("2001:db8::zz"), Err(AddrError::Syntax(_))));
    }

    #[test]
    fn ipv4_is_rejected() {
        assert!(matches!(parse("192.0.2.1"), Err(AddrError::Ipv4(_))));
        assert!(matches!(parse("192.0.2.1/32"), Err(AddrError::Ipv4(_))));
    }

    #[test]
    fn ipv4_mapped_is_rejected() {
        assert!(matches!(
            parse("::ffff:192.0.2.1"),
            Err(AddrError::Ipv4Mapped(_))
        ));
    }

    #[test]
    fn link_local_is_rejected() {
        assert!(matches!(parse("fe80::1"), Err(AddrError::LinkLocal(_))));
        assert!(matches!(parse("febf::1/64"), Err(AddrError::LinkLocal(_))));
    }

    #[test]
    fn multicast_is_rejected() {
        assert!(matches!(parse("ff02::1"), Err(AddrError::Multicast(_))));
        assert!(matches!(parse("ff0e::101"), Err(AddrError::Multicast(_))));
    }

    #[test]
    fn loopback_is_rejected() {
        assert!(matches!(parse("::1"), Err(AddrError::Loopback(_))));
    }

    #[test]
    fn unspecified_is_rejected() {
        assert!(matches!(parse("::"), Err(AddrError::Unspecified(_))));
    }

    #[test]
    fn prefix_zero_is_out_of_range() {
        assert!(matches!(
            parse("2001:db8::1/0"),
            Err(AddrError::PrefixLen(_))
        ));
    }

    #[test]
    fn prefix_above_128_is_out_of_range() {
        assert!(matches!(
            parse("2001:db8::1/129"),
            Err(AddrError::PrefixLen(_))
        ));
        assert!(matches!(
            parse("2001:db8::1/300"),
            Err(AddrError::PrefixLen(_))
        ));
    }

    #[test]
    fn non_numeric_prefix_is_out_of_range() {
        assert!(matches!(
            parse("2001:db8::1/abc"),
            Err(AddrError::PrefixLen(_))
        ));
        assert!(matches!(
            parse("2001:db8::1/"),
            Err(AddrError::PrefixLen(_))
        ));
    }

    #[test]
    fn constructor_applies_the_same_rules() {
        let ll: Ipv6Addr = "fe80::1".parse().unwrap();
        assert!(FloatingAddr::new(ll, 128).is_err());
        let ok: Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert!(FloatingAddr::new(ok, 0).is_err());
        assert!(FloatingAddr::new(ok, 1).is_ok());
    }

    #[test]
    fn displays_with_prefix_length() {
        assert_eq!(parse("2001:db8::1").unwrap().to_string(), "2001:db8::1/128");
    }

    #[test]
    fn mac_prints_lowercase_colon_separated() {
        assert_eq!(
            Mac([0x02, 0, 0, 0xab, 0xcd, 0x0e]).to_string(),
            "02:00:00:ab:cd:0e"
        );
    }
}
