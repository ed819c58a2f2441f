//! Unsolicited Neighbor Advertisements (RFC 4861 §4.4, §7.2.6): a pure encoder/decoder and a raw-socket sender.

use std::io;
use std::mem::size_of;
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::addr::Mac;

pub const ICMPV6_NS: u8 = 135;
pub const ICMPV6_NA: u8 = 136;
/// Length of an NA carrying exactly one Target Link-Layer Address option.
pub const NA_LEN: usize = 32;
/// Option type 2 is Target Link-Layer Address; 1 is Source Link-Layer Address.
const OPT_TLLA: u8 = 2;
const FLAG_ROUTER: u8 = 0x80;
const FLAG_SOLICITED: u8 = 0x40;
const FLAG_OVERRIDE: u8 = 0x20;
/// `ICMP6_FILTER` from <netinet/icmp6.h>; libc does not export it.
const ICMP6_FILTER: libc::c_int = 1;

/// The fields of an NA that matter to a receiver's neighbour cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Na {
    pub router: bool,
    pub solicited: bool,
    pub override_flag: bool,
    pub target: Ipv6Addr,
    pub tlla: Option<Mac>,
}

/// The ICMPv6 body of an unsolicited NA for `target`.
///
/// Override is set because a Linux receiver replaces a cached MAC only for
/// an NA with Override; Solicited is clear because nobody asked (and the
/// destination is multicast, where RFC 4861 §7.2.4 forbids it). The checksum
/// stays zero: a raw ICMPv6 socket has the kernel fill it in.
pub fn encode_na(target: Ipv6Addr, mac: Mac, router: bool) -> [u8; NA_LEN] {
    let mut b = [0u8; NA_LEN];
    b[0] = ICMPV6_NA;
    b[1] = 0; // code
    b[4] = FLAG_OVERRIDE | if router { FLAG_ROUTER } else { 0 };
    b[8..24].copy_from_slice(&target.octets());
    b[24] = OPT_TLLA;
    b[25] = 1; // length in units of 8 octets
    b[26..32].copy_from_slice(&mac.0);
    b
}

/// Parses an ICMPv6 NA body (from the ICMPv6 header on); `None` if it is not one.
pub fn decode_na(icmp: &[u8]) -> Option<Na> {
    if icmp.len() < 24 || icmp[0] != ICMPV6_NA || icmp[1] != 0 {
        return None;
    }
    let target = Ipv6Addr::from(<[u8; 16]>::try_from(&icmp[8..24]).ok()?);
    Some(Na {
        router: icmp[4] & FLAG_ROUTER != 0,
        solicited: icmp[4] & FLAG_SOLICITED != 0,
        override_flag: icmp[4] & FLAG_OVERRIDE != 0,
        target,
        tlla: find_lla_option(&icmp[24..], OPT_TLLA),
    })
}

/// Parses an ICMPv6 NS body; returns its target.
pub fn decode_ns_target(icmp: &[u8]) -> Option<Ipv6Addr> {
    if icmp.len() < 24 || icmp[0] != ICMPV6_NS || icmp[1] != 0 {
        return None;
    }
    Some(Ipv6Addr::from(<[u8; 16]>::try_from(&icmp[8..24]).ok()?))
}

fn find_lla_option(mut opts: &[u8], kind: u8) -> Option<Mac> {
    while opts.len() >= 8 {
        let len = usize::from(opts[1]) * 8;
        if len == 0 || len > opts.len() {
            return None;
        }
        if opts[0] == kind {
            return Mac::from_slice(&opts[2..8]);
        }
        opts = &opts[len..];
    }
    None
}

/// A raw ICMPv6 socket that sends NAs out of one interface, for any of
/// its addresses: each NA names its source in IPV6_PKTINFO, so one socket
/// serves every address (a socket per address ran into the descriptor
/// limit with thousands of NA trains at once).
///
/// The socket is created in the calling thread's network namespace and keeps
/// it, so it must be opened from the agent's own namespace (never after a
/// `setns` on a shared runtime thread).
pub struct NaSender {
    fd: OwnedFd,
    ifindex: u32,
}

fn setsockopt_int(
    fd: &OwnedFd,
    level: libc::c_int,
    opt: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    setsockopt_raw(fd, level, opt, &v)
}

fn setsockopt_raw<T>(fd: &OwnedFd, level: libc::c_int, opt: libc::c_int, v: &T) -> io::Result<()> {
    // SAFETY: `v` points to a live `T` of the size we pass.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (v as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub(crate) fn sockaddr_in6(addr: Ipv6Addr, scope_id: u32) -> libc::sockaddr_in6 {
    // SAFETY: sockaddr_in6 is plain old data; all-zero is a valid value.
    let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sa.sin6_addr.s6_addr = addr.octets();
    sa.sin6_scope_id = scope_id;
    sa
}

impl NaSender {
    /// Opens the socket on interface `ifindex`.
    ///
    /// IPV6_FREEBIND lets an NA leave from the floating address while it is
    /// still optimistic (`--dad optimistic`); in strict mode we only get here
    /// after DAD passed, so it changes nothing there.
    pub fn open(ifindex: u32) -> io::Result<Self> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_INET6,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::IPPROTO_ICMPV6,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // Receivers drop NDP messages whose hop limit is not 255 (RFC 4861 §7.1.2).
        setsockopt_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, 255)?;
        setsockopt_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, 255)?;
        setsockopt_int(
            &fd,
            libc::IPPROTO_IPV6,
            libc::IPV6_MULTICAST_IF,
            ifindex as libc::c_int,
        )?;
        setsockopt_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP, 0)?;
        setsockopt_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_FREEBIND, 1)?;
        // We never read from this socket: block every ICMPv6 type so the
        // receive queue does not fill with the link's traffic.
        let block_all = [u32::MAX; 8];
        setsockopt_raw(&fd, libc::IPPROTO_ICMPV6, ICMP6_FILTER, &block_all)?;
        Ok(Self { fd, ifindex })
    }

    /// Sends one unsolicited NA for `target`, from `target`, to all-nodes
    /// (ff02::1) on the interface.
    pub fn send(&self, target: Ipv6Addr, mac: Mac, router: bool) -> io::Result<()> {
        let mut pkt = encode_na(target, mac, router);
        let mut dst = sockaddr_in6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1), self.ifindex);
        let info = libc::in6_pktinfo {
            ipi6_addr: libc::in6_addr {
                s6_addr: target.octets(),
            },
            ipi6_ifindex: self.ifindex,
        };
        // u64 elements keep the control buffer aligned for cmsghdr.
        let mut control = [0u64; 8];
        // SAFETY: CMSG_SPACE is a pure size computation.
        let space = unsafe { libc::CMSG_SPACE(size_of::<libc::in6_pktinfo>() as u32) } as usize;
        debug_assert!(space <= size_of::<[u64; 8]>());
        let mut iov = libc::iovec {
            iov_base: pkt.as_mut_ptr().cast(),
            iov_len: pkt.len(),
        };
        // SAFETY: msghdr is plain old data; all-zero is a valid value.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&mut dst as *mut libc::sockaddr_in6).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: `msg` describes `control`, which has room for one cmsg of
        // `in6_pktinfo`; CMSG_FIRSTHDR is non-null for that length.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::IPPROTO_IPV6;
            (*c).cmsg_type = libc::IPV6_PKTINFO;
            (*c).cmsg_len = libc::CMSG_LEN(size_of::<libc::in6_pktinfo>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<libc::in6_pktinfo>(), info);
        }
        // SAFETY: every pointer in `msg` is valid for the lengths it gives.
        let n = unsafe { libc::sendmsg(self.fd.as_raw_fd(), &msg, 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: Mac = Mac([0x02, 0x00, 0x00, 0x00, 0x00, 0x0b]);

    fn target() -> Ipv6Addr {
        "2001:db8:1::100".parse().unwrap()
    }

    #[test]
    fn na_has_type_136_code_0_and_zero_checksum_for_the_kernel() {
        let p = encode_na(target(), MAC, false);
        assert_eq!(p.len(), 32);
        assert_eq!(p[0], 136);
        assert_eq!(p[1], 0);
        assert_eq!(&p[2..4], &[0, 0]);
    }

    #[test]
    fn na_sets_override_and_clears_solicited() {
        let p = encode_na(target(), MAC, false);
        assert_eq!(p[4], 0x20);
        assert_eq!(&p[5..8], &[0, 0, 0]);
    }

    #[test]
    fn na_sets_router_only_when_asked() {
        assert_eq!(encode_na(target(), MAC, true)[4], 0xa0);
        assert_eq!(encode_na(target(), MAC, false)[4] & 0x80, 0);
    }

    #[test]
    fn na_carries_target_and_tlla_option_with_the_mac() {
        let p = encode_na(target(), MAC, false);
        assert_eq!(&p[8..24], &target().octets());
        assert_eq!(p[24], 2, "option type TLLA");
        assert_eq!(p[25], 1, "option length in 8-octet units");
        assert_eq!(&p[26..32], &MAC.0);
    }

    #[test]
    fn decode_reads_back_what_encode_wrote() {
        let na = decode_na(&encode_na(target(), MAC, true)).unwrap();
        assert_eq!(
            na,
            Na {
                router: true,
                solicited: false,
                override_flag: true,
                target: target(),
                tlla: Some(MAC),
            }
        );
    }

    #[test]
    fn decode_rejects_other_icmp_types_and_short_packets() {
        let mut p = encode_na(target(), MAC, false);
        p[0] = 128;
        assert!(decode_na(&p).is_none());
        assert!(decode_na(&encode_na(target(), MAC, false)[..20]).is_none());
    }

    #[test]
    fn decode_tolerates_an_na_without_options() {
        let p = encode_na(target(), MAC, false);
        assert_eq!(decode_na(&p[..24]).unwrap().tlla, None);
    }

    #[test]
    fn decode_stops_at_a_zero_length_option() {
        let mut p = encode_na(target(), MAC, false);
        p[25] = 0;
        assert_eq!(decode_na(&p).unwrap().tlla, None);
    }

    #[test]
    fn ns_target_is_read_from_a_solicitation() {
        let mut p = [0u8; 24];
        p[0] = 135;
        p[8..24].copy_from_slice(&target().octets());
        assert_eq!(decode_ns_target(&p), Some(target()));
        assert_eq!(decode_ns_target(&encode_na(target(), MAC, false)), None);
    }
}
