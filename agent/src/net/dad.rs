//! Waits for the kernel's DAD verdict (woken by address events) and captures the defender's MAC on the wire.

use std::collections::HashMap;
use std::io;
use std::mem::size_of;
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::addr::Mac;
use crate::net::monitor::{AddrMonitor, AddrWaiter};
use crate::net::na::{decode_na, decode_ns_target};
use crate::net::netlink::{Link, Netlink};

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
/// the event route and the capture must already be in place when the
/// kernel sends its probe, or the verdict and the defender's reply could
/// be missed.
pub struct DadWatch {
    nl: Netlink,
    events: AddrWaiter,
    capture: Option<NdWatch>,
    index: u32,
    addr: Ipv6Addr,
}

/// Without any event the kernel is still asked this often, so a verdict
/// lost with the subscription delays an add, never strands it.
const RECHECK: Duration = Duration::from_secs(1);

impl DadWatch {
    pub fn start(
        nl: &Netlink,
        monitor: &AddrMonitor,
        captures: &NdCaptures,
        link: &Link,
        addr: Ipv6Addr,
    ) -> Self {
        // The capture only enriches a failure report; DAD itself is the
        // kernel's job, so a capture we cannot open is logged, not fatal.
        let capture = match captures.watch(link, addr) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "cannot capture NDP on {}; defender_mac will be null", link.name);
                None
            }
        };
        Self {
            nl: nl.clone(),
            events: monitor.watch(link.index, addr),
            capture,
            index: link.index,
            addr,
        }
    }

    /// Waits for the verdict until `deadline`; `None` on timeout. Call it
    /// once the add has been acknowledged: the kernel's state is read first
    /// and again after every event of the address.
    pub async fn verdict(&mut self, deadline: Instant) -> Option<Verdict> {
        loop {
            match self.nl.find(self.index, self.addr).await {
                Ok(None) => return Some(Verdict::Removed),
                Ok(Some(k)) if k.flags.dadfailed() => return Some(Verdict::Failed),
                Ok(Some(k)) if !k.flags.tentative() => return Some(Verdict::Passed),
                Ok(Some(_)) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read the address state"),
            }
            let recheck = (Instant::now() + RECHECK).min(deadline);
            tokio::select! {
                // Cancel-safe: a Notify permit stays stored until taken.
                _ = self.events.changed() => {}
                // Cancel-safe: a timer.
                _ = tokio::time::sleep_until(recheck) => {
                    if recheck >= deadline {
                        return None;
                    }
                }
            }
        }
    }

    /// The first node seen defending the address. The NA or NS that made DAD
    /// fail reached the packet tap before the kernel processed it, so it is
    /// already queued on the capture socket when the verdict arrives.
    pub fn defender(&mut self) -> Option<Mac> {
        self.capture.as_ref().and_then(NdWatch::defender)
    }
}

/// One AF_PACKET capture per interface, shared by every DAD in flight on
/// it and closed when the last one ends, so an idle agent copies no frames.
#[derive(Clone, Default)]
pub struct NdCaptures {
    hubs: Arc<Mutex<HashMap<u32, Weak<Hub>>>>,
}

impl NdCaptures {
    /// Starts recording who defends `target` on `link`.
    pub fn watch(&self, link: &Link, target: Ipv6Addr) -> io::Result<NdWatch> {
        let mut hubs = lock(&self.hubs);
        let hub = match hubs.get(&link.index).and_then(Weak::upgrade) {
            Some(h) => h,
            None => {
                let h = Arc::new(Hub::open(link.index, link.mac)?);
                hubs.insert(link.index, Arc::downgrade(&h));
                h
            }
        };
        hubs.retain(|_, w| w.strong_count() > 0);
        hub.seen.watchers_add(target);
        Ok(NdWatch { hub, target })
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain maps behind, still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Who defends `target`, as seen by the interface's capture, until dropped.
pub struct NdWatch {
    hub: Arc<Hub>,
    target: Ipv6Addr,
}

impl NdWatch {
    /// Reads what is queued on the socket, then answers.
    pub fn defender(&self) -> Option<Mac> {
        self.hub.seen.drain();
        self.hub.seen.defender(self.target)
    }
}

impl Drop for NdWatch {
    fn drop(&mut self) {
        self.hub.seen.watchers_remove(self.target);
    }
}

/// The capture socket of one interface and its reader task.
struct Hub {
    seen: Arc<Seen>,
    reader: JoinHandle<()>,
}

impl Drop for Hub {
    fn drop(&mut self) {
        // The task holds the socket; ending it closes the socket.
        self.reader.abort();
    }
}

/// Defenders seen per watched target, and the socket they are read from.
struct Seen {
    fd: AsyncFd<OwnedFd>,
    own_mac: Option<Mac>,
    /// Target → (watchers, first defender seen).
    targets: Mutex<HashMap<Ipv6Addr, (usize, Option<Mac>)>>,
}

impl Seen {
    fn watchers_add(&self, target: Ipv6Addr) {
        lock(&self.targets).entry(target).or_default().0 += 1;
    }

    fn watchers_remove(&self, target: Ipv6Addr) {
        let mut t = lock(&self.targets);
        if let Some(e) = t.get_mut(&target) {
            e.0 -= 1;
            if e.0 == 0 {
                t.remove(&target);
            }
        }
    }

    fn defender(&self, target: Ipv6Addr) -> Option<Mac> {
        lock(&self.targets).get(&target).and_then(|e| e.1)
    }

    fn consider(&self, f: &Frame) {
        if f.pkttype == PACKET_OUTGOING || Some(f.src_mac) == self.own_mac {
            return;
        }
        if let Some((target, mac)) = nd_claim(&f.data, f.src_mac) {
            if let Some(e) = lock(&self.targets).get_mut(&target) {
                e.1.get_or_insert(mac);
            }
        }
    }

    /// Reads whatever is queued without waiting.
    fn drain(&self) {
        while let Ok(frame) = recv_frame(self.fd.get_ref()) {
            self.consider(&frame);
        }
    }
}

impl Hub {
    fn open(ifindex: u32, own_mac: Option<Mac>) -> io::Result<Self> {
        let seen = Arc::new(Seen {
            fd: open_capture(ifindex)?,
            own_mac,
            targets: Mutex::new(HashMap::new()),
        });
        let reader = tokio::spawn(read_frames(seen.clone()));
        Ok(Self { seen, reader })
    }
}

async fn read_frames(seen: Arc<Seen>) {
    loop {
        let mut guard = match seen.fd.readable().await {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(error = %e, "NDP capture failed; defender_mac will be null");
                return;
            }
        };
        match guard.try_io(|fd| recv_frame(fd.get_ref())) {
            Ok(Ok(frame)) => seen.consider(&frame),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "NDP capture failed; defender_mac will be null");
                return;
            }
            Err(_would_block) => {}
        }
    }
}

/// An AF_PACKET socket on one interface that receives the NS and NA
/// messages other nodes send.
fn open_capture(ifindex: u32) -> io::Result<AsyncFd<OwnedFd>> {
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
    Ok(unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }?)
}

/// Whether `target`'s defender is in this packet (see [`nd_claim`]).
pub fn defender_mac(ip6: &[u8], eth_src: Mac, target: Ipv6Addr) -> Option<Mac> {
    nd_claim(ip6, eth_src)
        .filter(|(t, _)| *t == target)
        .map(|(_, m)| m)
}

/// Whether an IPv6 packet (from its IPv6 header on) is an NDP message that
/// claims an address, and if so which address and which MAC claims it: an
/// NA (its owner answering a probe; the Target Link-Layer option names the
/// owner, the Ethernet source is the fallback), or a DAD probe (NS from ::)
/// from a node that is trying to claim the address at the same time.
pub fn nd_claim(ip6: &[u8], eth_src: Mac) -> Option<(Ipv6Addr, Mac)> {
    if ip6.len() < 40 || ip6[0] >> 4 != 6 || ip6[6] != IPPROTO_ICMPV6 {
        return None;
    }
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&ip6[8..24]).ok()?);
    let icmp = &ip6[40..];
    if let Some(na) = decode_na(icmp) {
        return Some((na.target, na.tlla.unwrap_or(eth_src)));
    }
    match decode_ns_target(icmp) {
        Some(t) if src.is_unspecified() => Some((t, eth_src)),
        _ => None,
    }
}

/// Classic BPF that keeps only ICMPv6 NS (135) and NA (136) sent by other
/// nodes, so a busy interface does not copy all its IPv6 traffic to us, nor
/// our thousands of DAD probes and NAs, while DAD runs.
/// Offsets are from the IPv6 header (SOCK_DGRAM strips the link header
/// before the filter runs); ND messages carry no extension headers.
fn attach_nd_filter(fd: &OwnedFd) -> io::Result<()> {
    const LDB_ABS: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let ins = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    // SKF_AD_OFF + SKF_AD_PKTTYPE: the ancillary load of the packet type.
    const PKTTYPE: u32 = (-0x1000i32 + 4) as u32;
    let mut prog = [
        ins(LDB_ABS, 0, 0, PKTTYPE),                  // 0: packet type
        ins(JEQ_K, 6, 0, u32::from(PACKET_OUTGOING)), // 1: our own (DAD probes, NAs) -> 8
        ins(LDB_ABS, 0, 0, 6),                        // 2: next header
        ins(JEQ_K, 0, 4, u32::from(IPPROTO_ICMPV6)),  // 3: not ICMPv6 -> 8
        ins(LDB_ABS, 0, 0, 40),                       // 4: ICMPv6 type
        ins(JEQ_K, 1, 0, 135),                        // 5: NS -> 7
        ins(JEQ_K, 0, 1, 136),                        // 6: NA -> 7, else 8
        ins(RET_K, 0, 0, 0x0004_0000),                // 7: keep the whole packet
        ins(RET_K, 0, 0, 0),                          // 8: drop
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
