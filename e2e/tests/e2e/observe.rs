//! Observers that run on threads inside a namespace: address-event monitors
//! (through the agent library's own netlink subscription) and a pinger.

use std::mem::size_of;
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fip_agent::net::netlink::{AddrEvent, AddrEvents};

use crate::harness::in_ns;

/// Records every IPv6 address event of a namespace with its arrival time.
pub struct AddrMonitor {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<Vec<(Instant, AddrEvent)>>>,
}

impl AddrMonitor {
    pub fn start(ns: &str) -> Self {
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = in_ns(ns, move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut ev = AddrEvents::subscribe().unwrap();
                ready_tx.send(()).unwrap();
                let mut seen = Vec::new();
                loop {
                    tokio::select! {
                        // Cancel-safe: a oneshot receiver polled by reference.
                        _ = &mut stop_rx => break,
                        // Cancel-safe: an mpsc receive.
                        e = ev.next() => match e {
                            Some(e) => seen.push((Instant::now(), e)),
                            None => panic!("address event subscription closed"),
                        },
                    }
                }
                seen
            })
        });
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("monitor ready");
        Self {
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn stop(mut self) -> Vec<(Instant, AddrEvent)> {
        let _ = self.stop.take().unwrap().send(());
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for AddrMonitor {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Intervals during which `addr` was present and not tentative (usable),
/// from a host's events; `initially` says whether it was usable when the
/// monitor started. An open interval ends at `end`.
pub fn usable_intervals(
    events: &[(Instant, AddrEvent)],
    addr: Ipv6Addr,
    initially: Option<Instant>,
    end: Instant,
) -> Vec<(Instant, Instant)> {
    let mut out = Vec::new();
    let mut since = initially;
    for (at, e) in events {
        let usable = match e {
            AddrEvent::New(k) if k.addr == addr => !k.flags.tentative() && !k.flags.dadfailed(),
            AddrEvent::Del(k) if k.addr == addr => false,
            _ => continue,
        };
        match (usable, since) {
            (true, None) => since = Some(*at),
            (false, Some(s)) => {
                out.push((s, *at));
                since = None;
            }
            _ => {}
        }
    }
    if let Some(s) = since {
        out.push((s, end));
    }
    out
}

/// Asserts that no instant has `addr` usable on both hosts.
pub fn assert_no_double_holder(a: &[(Instant, Instant)], b: &[(Instant, Instant)]) {
    for (a0, a1) in a {
        for (b0, b1) in b {
            assert!(
                a1 <= b0 || b1 <= a0,
                "F was usable on A and B at once: A {:?}..{:?}, B {:?}..{:?}",
                a0,
                a1,
                b0,
                b1
            );
        }
    }
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
    assert!(rc == 0, "SO_RCVTIMEO: {}", std::io::Error::last_os_error());
}

/// Pings `dst` from namespace `ns` every `every` until stopped, recording
/// the arrival time of every echo reply.
pub struct Pinger {
    stop: Arc<AtomicBool>,
    replies: Arc<Mutex<Vec<Instant>>>,
    thread: Option<JoinHandle<()>>,
}

impl Pinger {
    pub fn start(ns: &str, dst: Ipv6Addr, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let replies = Arc::new(Mutex::new(Vec::new()));
        let out = replies.clone();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = in_ns(ns, move || {
            // SAFETY: plain socket(2); checked below.
            let raw = unsafe {
                libc::socket(
                    libc::AF_INET6,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    libc::IPPROTO_ICMPV6,
                )
            };
            assert!(
                raw >= 0,
                "ICMPv6 socket: {}",
                std::io::Error::last_os_error()
            );
            // SAFETY: a fresh fd we own.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            set_rcvtimeo(&fd, Duration::from_millis(2));
            // SAFETY: POD.
            let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sa.sin6_addr.s6_addr = dst.octets();
            let id = (std::process::id() & 0xffff) as u16;
            ready_tx.send(()).unwrap();
            let mut seq: u16 = 0;
            let mut next_send = Instant::now();
            let mut buf = [0u8; 1500];
            while !s.load(Ordering::SeqCst) {
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
                let n =
                    unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n >= 8 && buf[0] == 129 && buf[4..6] == id.to_be_bytes() {
                    out.lock().unwrap().push(Instant::now());
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("pinger ready");
        Self {
            stop,
            replies,
            thread: Some(thread),
        }
    }

    /// Replies received after `since`, so far.
    pub fn replies_after(&self, since: Instant) -> usize {
        self.replies
            .lock()
            .unwrap()
            .iter()
            .filter(|r| **r > since)
            .count()
    }

    pub fn stop(mut self) -> Vec<Instant> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
        std::mem::take(&mut *self.replies.lock().unwrap())
    }
}

impl Drop for Pinger {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The longest gap between consecutive replies after `from`.
pub fn longest_gap(replies: &[Instant], from: Instant) -> Duration {
    let mut last = from;
    let mut worst = Duration::ZERO;
    for r in replies.iter().filter(|r| **r >= from) {
        worst = worst.max(*r - last);
        last = *r;
    }
    worst
}
