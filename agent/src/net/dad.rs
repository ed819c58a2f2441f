//! Waits for the kernel's DAD verdict from netlink events and captures the defender's MAC on the wire.

use std::io;
use std::mem::size_of;
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

use crate::addr::Mac;
use crate::error::AgentError;
use crate::net::na::{decode_na, decode_ns_target};
use crate::net::netlink::{AddrEvent, AddrEvents, Link, Netlink};

/// `PACKET_OUTGOING` from <linux/if_packet.h>: our own transmissions, which
/// AF_PACKET also shows us (our DAD probe among them).
const PACKET_OUTGOING: u8 = 4;
const IPPROTO_ICMPV6: u8 = 58;

/// The kernel's answer to a DAD run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// RTM_NEWADDR without `tentative`: the address is usable.
    Passed,
    /// RTM_NEWADDR with `dadfailed`: another node holds the address.
    Failed,
    /// RTM_DELADDR while waiting: someone (or an admin link down) removed it.
    Removed,
}

/// Watches one address through DAD. Create it *before* adding the address:
/// both the netlink subscription and the capture must already be listening
/// when the kernel sends its probe, or the verdict and the defender's reply
/// could be missed.
pub struct DadWatch {
    nl: Netlink,
    events: AddrEvents,
    capture: Option<NdCapture>,
    index: u32,
    addr: Ipv6Addr,
    defender: Option<Mac>,
}

impl DadWatch {
    pub fn start(nl: &Netlink, link: &Link, addr: Ipv6Addr) -> Result<Self, AgentError> {
        let events = AddrEvents::subscribe()?;
        // The capture only enriches a failure report; DAD itself is the
        // kernel's job, so a capture we cannot open is logged, not fatal.
        let capture = match NdCapture::open(link.index, addr, link.mac) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "cannot capture NDP on {}; defender_mac will be null", link.name);
                None
            }
        };
        Ok(Self {
            nl: nl.clone(),
            events,
            capture,
            index: link.index,
            addr,
            defender: None,
        })
    }

    /// Waits for the verdict until `deadline`; `None` on timeout.
    pub async fn verdict(&mut self, deadline: Instant) -> Option<Verdict> {
        loop {
            let capture = async {
                match self.capture.as_mut() {
                    Some(c) => c.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                // Cancel-safe: an mpsc receive loses nothing when not polled to completion.
                ev = self.events.next() => match ev {
                    None => match self.recover().await {
                        Ok(Some(v)) => return Some(v),
                        Ok(None) => continue,
                        Err(()) => {
                            // Without events the only honest answer left is the deadline.
                            tokio::time::sleep_until(deadline).await;
                            return None;
                        }
                    },
                    Some(AddrEvent::New(a)) if a.index == self.index && a.addr == self.addr => {
                        if a.flags.dadfailed() {
                            return Some(Verdict::Failed);
                        }
                        if !a.flags.tentative() {
                            return Some(Verdict::Passed);
                        }
                    }
                    Some(AddrEvent::Del(a)) if a.index == self.index && a.addr == self.addr => {
                        return Some(Verdict::Removed);
                    }
                    Some(_) => {}
                },
                // Cancel-safe: a datagram is either fully read inside `recv` or left queued.
                got = capture => match got {
                    Ok(mac) => { self.defender.get_or_insert(mac); }
                    Err(e) => {
                        tracing::warn!(error = %e, "NDP capture failed; defender_mac will be null");
                        self.capture = None;
                    }
                },
                // Cancel-safe: a timer.
                _ = tokio::time::sleep_until(deadline) => return None,
            }
        }
    }

    /// The event socket closed (a netlink overrun ends the subscription):
    /// subscribe again, then read the kernel's current state so a verdict
    /// that fell into the gap is not lost. `None`: still tentative, keep
    /// waiting on the new subscription; `Err`: no subscription possible.
    async fn recover(&mut self) -> Result<Option<Verdict>, ()> {
        tracing::warn!("address event subscription lost; re-subscribing");
        match AddrEvents::subscribe() {
            Ok(ev) => self.events = ev,
            Err(e) => {
                tracing::warn!(error = %e, "cannot re-subscribe to address events");
                return Err(());
            }
        }
        Ok(match self.nl.find(self.index, self.addr).await {
            Ok(None) => Some(Verdict::Removed),
            Ok(Some(k)) if k.flags.dadfailed() => Some(Verdict::Failed),
            Ok(Some(k)) if !k.flags.tentative() => Some(Verdict::Passed),
            Ok(Some(_)) => None,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the address state");
                None
            }
        })
    }

    /// The first node seen defending the address. The NA or NS that made DAD
    /// fail reached the packet tap before the kernel processed it, so it is
    /// already queued on the capture socket when the verdict arrives; drain it.
    pub fn defender(&mut self) -> Option<Mac> {
        if self.defender.is_none() {
            if let Some(c) = self.capture.as_mut() {
                self.defender = c.drain();
            }
        }
        self.defender
    }
}

/// An AF_PACKET socket on one interface that reports NDP messages about one
/// target address sent by another node.
pub struct NdCapture {
    fd: AsyncFd<OwnedFd>,
    target: Ipv6Addr,
    own_mac: Option<Mac>,
}

impl NdCapture {
    pub fn open(ifindex: u32, target: Ipv6Addr, own_mac: Option<Mac>) -> io::Result<Self> {
        // Protocol 0 at creation so no frame of any interface is queued before
        // bind() narrows the socket to IPv6 on our interface.
        // SAFETY: plain socket(2) call; checked below.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        attach_nd_filter(&fd)?;
        // SAFETY: sockaddr_ll is plain old data.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_IPV6 as u16).to_be();
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is valid for the length passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is an owned descriptor that the AsyncFd takes over;
        // nothing else closes or re-registers it.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }?;
        Ok(Self {
            fd,
            target,
            own_mac,
        })
    }

    /// Waits for the next defending NDP message and returns its sender's MAC.
    pub async fn recv(&mut self) -> io::Result<Mac> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| recv_frame(fd.get_ref())) {
                Ok(Ok(frame)) => {
                    if let Some(mac) = self.defender_in(&frame) {
                        return Ok(mac);
                    }
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    /// Reads whatever is queued without waiting.
    pub fn drain(&mut self) -> Option<Mac> {
        while let Ok(frame) = recv_frame(self.fd.get_ref()) {
            if let Some(mac) = self.defender_in(&frame) {
                return Some(mac);
            }
        }
        None
    }

    fn defender_in(&self, f: &Frame) -> Option<Mac> {
        if f.pkttype == PACKET_OUTGOING || Some(f.src_mac) == self.own_mac {
            return None;
        }
        defender_mac(&f.data, f.src_mac, self.target)
    }
}

/// Whether an IPv6 packet (from its IPv6 header on) is an NDP message that
/// defends `target`, and if so which MAC defends it: an NA for the target
/// (its owner answering our probe; the Target Link-Layer option names the
/// owner, the Ethernet source is the fallback), or a DAD probe (NS from ::)
/// for the target from a node that is trying to claim it at the same time.
pub fn defender_mac(ip6: &[u8], eth_src: Mac, target: Ipv6Addr) -> Option<Mac> {
    if ip6.len() < 40 || ip6[0] >> 4 != 6 || ip6[6] != IPPROTO_ICMPV6 {
        return None;
    }
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&ip6[8..24]).ok()?);
    let icmp = &ip6[40..];
    if let Some(na) = decode_na(icmp) {
        return (na.target == target).then_some(na.tlla.unwrap_or(eth_src));
    }
    if decode_ns_target(icmp) == Some(target) && src.is_unspecified() {
        return Some(eth_src);
    }
    None
}

/// Classic BPF that keeps only ICMPv6 NS (135) and NA (136), so a busy
/// interface does not copy all its IPv6 traffic to us while DAD runs.
/// Offsets are from the IPv6 header (SOCK_DGRAM strips the link header
/// before the filter runs); ND messages carry no extension headers.
fn attach_nd_filter(fd: &OwnedFd) -> io::Result<()> {
    const LDB_ABS: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let ins = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let mut prog = [
        ins(LDB_ABS, 0, 0, 6),                       // 0: next header
        ins(JEQ_K, 0, 4, u32::from(IPPROTO_ICMPV6)), // 1: not ICMPv6 -> 6
        ins(LDB_ABS, 0, 0, 40),                      // 2: ICMPv6 type
        ins(JEQ_K, 1, 0, 135),                       // 3: NS -> 5
        ins(JEQ_K, 0, 1, 136),                       // 4: NA -> 5, else 6
        ins(RET_K, 0, 0, 0x0004_0000),               // 5: keep the whole packet
        ins(RET_K, 0, 0, 0),                         // 6: drop
    ];
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: `fprog` points at `prog`, which outlives the call; the kernel copies it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

struct Frame {
    pkttype: u8,
    src_mac: Mac,
    data: Vec<u8>,
}

fn recv_frame(fd: &OwnedFd) -> io::Result<Frame> {
    let mut buf = vec![0u8; 2048];
    // SAFETY: sockaddr_ll is plain old data.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: buffer and address are valid for the lengths passed.
    let n = unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            0,
            (&mut sll as *mut libc::sockaddr_ll).cast(),
            &mut len,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&sll.sll_addr[..6]);
    Ok(Frame {
        pkttype: sll.sll_pkttype,
        src_mac: Mac(mac),
        data: buf,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::na::encode_na;

    const A: Mac = Mac([2, 0, 0, 0, 0, 0xa]);
    const ETH: Mac = Mac([2, 0, 0, 0, 0, 0xee]);

    fn x() -> Ipv6Addr {
        "2001:db8:1::100".parse().unwrap()
    }

    fn ip6(src: Ipv6Addr, icmp: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&(icmp.len() as u16).to_be_bytes());
        p[6] = 58;
        p[7] = 255;
        p[8..24].copy_from_slice(&src.octets());
        p[24..40].copy_from_slice(&Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1).octets());
        p.extend_from_slice(icmp);
        p
    }

    fn ns(target: Ipv6Addr) -> Vec<u8> {
        let mut p = vec![0u8; 24];
        p[0] = 135;
        p[8..24].copy_from_slice(&target.octets());
        p
    }

    #[test]
    fn na_for_the_target_names_its_tlla_as_defender() {
        let p = ip6(x(), &encode_na(x(), A, false));
        assert_eq!(defender_mac(&p, ETH, x()), Some(A));
    }

    #[test]
    fn na_without_tlla_falls_back_to_the_ethernet_source() {
        let p = ip6(x(), &encode_na(x(), A, false)[..24]);
        assert_eq!(defender_mac(&p, ETH, x()), Some(ETH));
    }

    #[test]
    fn na_for_another_target_is_ignored() {
        let other: Ipv6Addr = "2001:db8:1::200".parse().unwrap();
        let p = ip6(other, &encode_na(other, A, false));
        assert_eq!(defender_mac(&p, ETH, x()), None);
    }

    #[test]
    fn concurrent_dad_probe_from_unspecified_is_a_defender() {
        let p = ip6(Ipv6Addr::UNSPECIFIED, &ns(x()));
        assert_eq!(defender_mac(&p, ETH, x()), Some(ETH));
    }

    #[test]
    fn address_resolution_ns_is_not_a_defender() {
        let p = ip6("2001:db8:1::c".parse().unwrap(), &ns(x()));
        assert_eq!(defender_mac(&p, ETH, x()), None);
    }

    #[test]
    fn non_icmp_and_truncated_packets_are_ignored() {
        let mut p = ip6(x(), &encode_na(x(), A, false));
        p[6] = 17;
        assert_eq!(defender_mac(&p, ETH, x()), None);
        assert_eq!(defender_mac(&p[..30], ETH, x()), None);
    }
}
