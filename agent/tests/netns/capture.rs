//! Test-side observers in a host's namespace: frame capture, NA parser, ping, neighbour and address monitors.

use std::mem::size_of;
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fip_agent::net::netlink::{AddrEvent, AddrEvents};
use futures_util::StreamExt;
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::neighbour::{NeighbourAddress, NeighbourAttribute};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::MulticastGroup;

use crate::harness::{in_ns, DEV};

const ETH_P_ALL: u16 = 0x0003;

fn check(rc: libc::c_int, what: &str) {
    assert!(rc >= 0, "{what}: {}", std::io::Error::last_os_error());
}

fn set_rcvtimeo(fd: &OwnedFd, d: Duration) {
    let tv = libc::timeval {
        tv_sec: d.as_secs() as libc::time_t,
        tv_usec: d.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: valid fd and timeval.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    check(rc, "SO_RCVTIMEO");
}

/// One captured Ethernet frame with its arrival time.
pub struct Frame {
    pub at: Instant,
    pub data: Vec<u8>,
}

/// An AF_PACKET capture of every frame on eth0 of a namespace, started
/// before it returns (so nothing sent afterwards is missed).
pub struct Capture {
    stop: Arc<AtomicBool>,
    frames: Arc<Mutex<Vec<Frame>>>,
    thread: Option<JoinHandle<()>>,
}

impl Capture {
    pub fn start(ns: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let s = stop.clone();
        let frames = Arc::new(Mutex::new(Vec::new()));
        let out = frames.clone();
        let thread = in_ns(ns, move || {
            // SAFETY: plain socket(2); checked.
            let raw =
                unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
            check(raw, "AF_PACKET socket");
            // SAFETY: fresh fd we own.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            let name = std::ffi::CString::new(DEV).unwrap();
            // SAFETY: valid C string.
            let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
            assert!(ifindex > 0);
            // SAFETY: POD.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = ETH_P_ALL.to_be();
            sll.sll_ifindex = ifindex as i32;
            // SAFETY: valid address for its length.
            let rc = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&sll as *const libc::sockaddr_ll).cast(),
                    size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            check(rc, "bind AF_PACKET");
            set_rcvtimeo(&fd, Duration::from_millis(20));
            ready_tx.send(()).unwrap();
            let mut buf = vec![0u8; 4096];
            while !s.load(Ordering::SeqCst) {
                // SAFETY: buffer valid for its length.
                let n =
                    unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n > 0 {
                    out.lock().unwrap().push(Frame {
                        at: Instant::now(),
                        data: buf[..n as usize].to_vec(),
                    });
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("capture ready");
        Self {
            stop,
            frames,
            thread: Some(thread),
        }
    }

    /// Polls until `cond` holds over the frames captured so far.
    pub fn wait_until(&self, what: &str, timeout: Duration, cond: impl Fn(&[Frame]) -> bool) {
        crate::harness::wait_for(what, timeout, || cond(&self.frames.lock().unwrap()));
    }

    pub fn stop(mut self) -> Vec<Frame> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
        std::mem::take(&mut *self.frames.lock().unwrap())
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Every field of an NA frame a receiver cares about, parsed independently
/// of the agent's own encoder.
#[derive(Debug, Clone)]
pub struct NaFrame {
    pub at: Instant,
    pub eth_dst: [u8; 6],
    pub eth_src: [u8; 6],
    pub ip_src: Ipv6Addr,
    pub ip_dst: Ipv6Addr,
    pub hop_limit: u8,
    pub code: u8,
    pub checksum_ok: bool,
    pub router: bool,
    pub solicited: bool,
    pub override_flag: bool,
    pub target: Ipv6Addr,
    pub tlla: Option<[u8; 6]>,
}

fn ip6_at(b: &[u8]) -> Ipv6Addr {
    Ipv6Addr::from(<[u8; 16]>::try_from(&b[..16]).unwrap())
}

/// RFC 4443 §2.3: the one's-complement sum over the pseudo-header and the
/// message, checksum included, is all ones when the checksum is right.
fn icmpv6_checksum_ok(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> bool {
    let mut data = Vec::new();
    data.extend_from_slice(&src.octets());
    data.extend_from_slice(&dst.octets());
    data.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    data.extend_from_slice(&[0, 0, 0, 58]);
    data.extend_from_slice(msg);
    if data.len() % 2 == 1 {
        data.push(0);
    }
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

/// The ICMPv6 message of an Ethernet/IPv6 frame, with the IPv6 header fields.
fn icmpv6(f: &[u8]) -> Option<(Ipv6Addr, Ipv6Addr, u8, &[u8])> {
    if f.len() < 14 + 40 || f[12..14] != [0x86, 0xdd] {
        return None;
    }
    let ip = &f[14..];
    if ip[6] != 58 {
        return None;
    }
    let plen = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    let msg = ip.get(40..40 + plen)?;
    Some((ip6_at(&ip[8..]), ip6_at(&ip[24..]), ip[7], msg))
}

pub fn parse_na(fr: &Frame) -> Option<NaFrame> {
    let f = &fr.data;
    let (src, dst, hop, m) = icmpv6(f)?;
    if m.len() < 24 || m[0] != 136 {
        return None;
    }
    let mut tlla = None;
    let mut opts = &m[24..];
    while opts.len() >= 8 && opts[1] > 0 {
        let len = usize::from(opts[1]) * 8;
        if opts[0] == 2 {
            tlla = Some(<[u8; 6]>::try_from(&opts[2..8]).unwrap());
        }
        opts = opts.get(len..).unwrap_or(&[]);
    }
    Some(NaFrame {
        at: fr.at,
        eth_dst: f[0..6].try_into().unwrap(),
        eth_src: f[6..12].try_into().unwrap(),
        ip_src: src,
        ip_dst: dst,
        hop_limit: hop,
        code: m[1],
        checksum_ok: icmpv6_checksum_ok(src, dst, m),
        router: m[4] & 0x80 != 0,
        solicited: m[4] & 0x40 != 0,
        override_flag: m[4] & 0x20 != 0,
        target: ip6_at(&m[8..]),
        tlla,
    })
}

/// Unsolicited NAs (to ff02::1) for `target` among the frames.
pub fn unsolicited_nas(frames: &[Frame], target: Ipv6Addr) -> Vec<NaFrame> {
    frames
        .iter()
        .filter_map(parse_na)
        .filter(|n| n.target == target && n.ip_dst == Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1))
        .collect()
}

/// DAD probes (NS from :: ) for `target` among the frames.
pub fn dad_probes(frames: &[Frame], target: Ipv6Addr) -> usize {
    frames
        .iter()
        .filter_map(|f| icmpv6(&f.data))
        .filter(|(src, _, _, m)| {
            src.is_unspecified() && m.len() >= 24 && m[0] == 135 && ip6_at(&m[8..]) == target
        })
        .count()
}

/// Sends ICMPv6 echo requests from namespace `ns` to `dst` every `every`
/// until one is answered or `timeout` passes; returns when the first reply
/// arrived. The socket is open before this returns.
pub fn pinger(
    ns: &str,
    dst: Ipv6Addr,
    every: Duration,
    timeout: Duration,
) -> JoinHandle<Option<Instant>> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let h = in_ns(ns, move || {
        // SAFETY: plain socket(2); checked.
        let raw = unsafe {
            libc::socket(
                libc::AF_INET6,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::IPPROTO_ICMPV6,
            )
        };
        check(raw, "ICMPv6 socket");
        // SAFETY: fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        set_rcvtimeo(&fd, Duration::from_millis(2));
        // SAFETY: POD.
        let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        sa.sin6_addr.s6_addr = dst.octets();
        let id = (std::process::id() & 0xffff) as u16;
        ready_tx.send(()).unwrap();
        let deadline = Instant::now() + timeout;
        let mut seq: u16 = 0;
        let mut next_send = Instant::now();
        let mut buf = [0u8; 1500];
        while Instant::now() < deadline {
            if Instant::now() >= next_send {
                seq = seq.wrapping_add(1);
                let mut req = [0u8; 16];
                req[0] = 128;
                req[4..6].copy_from_slice(&id.to_be_bytes());
                req[6..8].copy_from_slice(&seq.to_be_bytes());
                // SAFETY: buffers valid for their lengths.
                unsafe {
                    libc::sendto(
                        fd.as_raw_fd(),
                        req.as_ptr().cast(),
                        req.len(),
                        0,
                        (&sa as *const libc::sockaddr_in6).cast(),
                        size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                    )
                };
                next_send += every;
            }
            // SAFETY: buffer valid for its length.
            let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n >= 8 && buf[0] == 129 && buf[4..6] == id.to_be_bytes() {
                return Some(Instant::now());
            }
        }
        None
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("pinger ready");
    h
}

/// Runs a future on a current-thread runtime in namespace `ns` until `stop` fires.
fn run_in_ns<T: Send + 'static, F>(
    ns: &str,
    f: F,
) -> (tokio::sync::oneshot::Sender<()>, JoinHandle<T>)
where
    F: FnOnce(
            tokio::sync::oneshot::Receiver<()>,
            mpsc::Sender<()>,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>>
        + Send
        + 'static,
{
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    let h = in_ns(ns, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(f(stop_rx, ready_tx))
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("monitor ready");
    (stop_tx, h)
}

/// Records every neighbour-cache change for one address in a namespace.
pub struct NeighMonitor {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: JoinHandle<Vec<(Instant, Option<[u8; 6]>)>>,
}

impl NeighMonitor {
    pub fn start(ns: &str, addr: Ipv6Addr) -> Self {
        let (stop, thread) = run_in_ns(ns, move |mut stop, ready| {
            Box::pin(async move {
                let (conn, _h, mut msgs) =
                    rtnetlink::new_multicast_connection(&[MulticastGroup::Neigh]).unwrap();
                tokio::spawn(conn);
                ready.send(()).unwrap();
                let mut seen = Vec::new();
                loop {
                    tokio::select! {
                        // Cancel-safe: a oneshot receiver polled by reference.
                        _ = &mut stop => break,
                        // Cancel-safe: an mpsc receive.
                        m = msgs.next() => {
                            let Some((m, _)) = m else { break };
                            let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(n)) = m.payload else { continue };
                            let dst = n.attributes.iter().find_map(|a| match a {
                                NeighbourAttribute::Destination(NeighbourAddress::Inet6(d)) => Some(*d),
                                _ => None,
                            });
                            if dst != Some(addr) { continue; }
                            let ll = n.attributes.iter().find_map(|a| match a {
                                NeighbourAttribute::LinkLayerAddress(l) => <[u8; 6]>::try_from(l.as_slice()).ok(),
                                _ => None,
                            });
                            seen.push((Instant::now(), ll));
                        }
                    }
                }
                seen
            })
        });
        Self { stop, thread }
    }

    pub fn stop(self) -> Vec<(Instant, Option<[u8; 6]>)> {
        let _ = self.stop.send(());
        self.thread.join().unwrap()
    }
}

/// Records every IPv6 address event in a namespace, through the agent
/// library's own subscription.
pub struct AddrMonitor {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: JoinHandle<Vec<AddrEvent>>,
}

impl AddrMonitor {
    pub fn start(ns: &str) -> Self {
        let (stop, thread) = run_in_ns(ns, move |mut stop, ready| {
            Box::pin(async move {
                let mut ev = AddrEvents::subscribe().unwrap();
                ready.send(()).unwrap();
                let mut seen = Vec::new();
                loop {
                    tokio::select! {
                        // Cancel-safe: a oneshot receiver polled by reference.
                        _ = &mut stop => break,
                        // Cancel-safe: an mpsc receive.
                        e = ev.next() => match e { Some(e) => seen.push(e), None => break },
                    }
                }
                seen
            })
        });
        Self { stop, thread }
    }

    pub fn stop(self) -> Vec<AddrEvent> {
        let _ = self.stop.send(());
        self.thread.join().unwrap()
    }
}
