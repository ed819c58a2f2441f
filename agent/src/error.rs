//! The agent's error enum and how each variant maps to an exit code.

use std::net::Ipv6Addr;

use crate::addr::AddrError;

/// Everything that can go wrong in the agent core.
///
/// Messages say what to do about the problem and never embed their source;
/// the CLI prints the whole chain (`{:#}`-style) when a source exists.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    BadAddress(#[from] AddrError),
    #[error("no such interface: {0}")]
    NoSuchInterface(String),
    #[error(
        "IPv6 is disabled on {dev} (net.ipv6.conf.{dev}.disable_ipv6=1); \
         enable it with `sysctl -w net.ipv6.conf.{dev}.disable_ipv6=0`"
    )]
    Ipv6Disabled { dev: String },
    #[error(
        "--dad optimistic needs optimistic DAD on {dev}, but \
         net.ipv6.conf.{dev}.optimistic_dad and net.ipv6.conf.all.optimistic_dad are 0 \
         (the kernel would silently drop the optimistic flag); \
         set net.ipv6.conf.{dev}.optimistic_dad=1 or use --dad strict"
    )]
    OptimisticDadOff { dev: String },
    #[error(
        "{addr} on {dev} is not managed by fip-agent (no IFA_PROTO {proto:#x} mark); \
         refusing to touch it{hint}"
    )]
    NotManaged {
        addr: Ipv6Addr,
        dev: String,
        proto: u8,
        hint: &'static str,
    },
    #[error("{op} needs CAP_NET_ADMIN (run as root or grant the capability)")]
    PermissionDenied { op: &'static str },
    #[error("{addr} is not present on {dev}")]
    NotPresent { addr: Ipv6Addr, dev: String },
    #[error("{addr} on {dev} is still tentative (DAD running); NAs are only sent once DAD passed")]
    Tentative { addr: Ipv6Addr, dev: String },
    #[error("{addr} on {dev} failed DAD; it must not be announced")]
    Dadfailed { addr: Ipv6Addr, dev: String },
    #[error("the lease with fipd ran out: no address is added or refreshed until it is renewed")]
    LeaseExpired,
    #[error(
        "this kernel ({release}) drops the IFA_PROTO mark fip-agent puts on its addresses \
         (Linux 5.18 or later keeps it); without it the agent would treat its own addresses \
         as foreign, never fence them, and confirm removals while holding them"
    )]
    NoAddressMark { release: String },
    #[error("{dev} has no 6-byte link-layer address to put in the NA's Target Link-Layer Address option")]
    NoMac { dev: String },
    #[error(
        "no DAD verdict for {addr} on {dev} within {timeout_ms} ms \
         (is the link up? see `fip-agent check --dev {dev}`); the tentative copy was removed"
    )]
    DadTimeout {
        addr: Ipv6Addr,
        dev: String,
        timeout_ms: u64,
    },
    #[error(
        "{addr} was removed from {dev} while DAD was running (admin link down, or another tool)"
    )]
    RemovedDuringDad { addr: Ipv6Addr, dev: String },
    #[error("{addr} is still present on {dev} after the kernel acknowledged its removal")]
    StillPresent { addr: Ipv6Addr, dev: String },
    #[error("the kernel refused to {op} ({errno_name}): {hint}")]
    Kernel {
        op: &'static str,
        errno_name: &'static str,
        hint: String,
    },
    #[error("netlink request to {op} failed")]
    Netlink {
        op: &'static str,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("{op}")]
    Io {
        op: String,
        #[source]
        source: std::io::Error,
    },
}

/// Exit code for a result the operator can act on: the input was wrong.
pub const EXIT_BAD_INPUT: i32 = 2;
/// Exit code for any failure that is not bad input or a DAD conflict.
pub const EXIT_FAILURE: i32 = 1;
/// Exit code when DAD found the address in use on the link.
pub const EXIT_DAD_FAILED: i32 = 3;

impl AgentError {
    /// Bad input is anything the operator can fix by changing the command
    /// or the interface configuration, as opposed to a runtime failure.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Self::BadAddress(_)
                | Self::NoSuchInterface(_)
                | Self::Ipv6Disabled { .. }
                | Self::OptimisticDadOff { .. }
                | Self::NotManaged { .. }
                | Self::NotPresent { .. }
                | Self::NoMac { .. }
                | Self::NoAddressMark { .. }
        )
    }

    pub fn exit_code(&self) -> i32 {
        if self.is_bad_input() {
            EXIT_BAD_INPUT
        } else {
            EXIT_FAILURE
        }
    }

    pub(crate) fn io(op: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            op: op.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_errors_are_bad_input() {
        let e: AgentError = "fe80::1".parse::<crate::FloatingAddr>().unwrap_err().into();
        assert_eq!(e.exit_code(), EXIT_BAD_INPUT);
    }

    #[test]
    fn timeouts_are_plain_failures() {
        let e = AgentError::DadTimeout {
            addr: "2001:db8::1".parse().unwrap(),
            dev: "eth0".into(),
            timeout_ms: 10,
        };
        assert_eq!(e.exit_code(), EXIT_FAILURE);
    }

    #[test]
    fn disabled_ipv6_message_names_the_sysctl() {
        let e = AgentError::Ipv6Disabled { dev: "eth1".into() };
        assert!(e.to_string().contains("net.ipv6.conf.eth1.disable_ipv6"));
    }
}
