//! Observers on threads inside a namespace: an address monitor that
//! records every `RTM_NEWADDR`/`RTM_DELADDR` with its arrival time (through
//! the agent library's own netlink subscription), the intervals in which
//! an address was held that follow from it, and a pinger.
//!
//! "Held" is what the one promise is about: present in the kernel and
//! neither tentative nor dadfailed (docs/protocol.md).

use std::collections::HashMap;
use std::mem::size_of;
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use fip_agent::net::netlink::{AddrEvent, AddrEvents, Netlink};

use crate::net::in_ns;

/// A span of time, `[from, to)`.
pub type Interval = (Instant, Instant);

/// Address events with their arrival times.
pub type Events = Vec<(Instant, AddrEvent)>;

/// Records every IPv6 address event of a namespace with its arrival time.
/// Started with a dump of what the kernel holds, so intervals open before
/// the monitor started are seen too.
pub struct AddrMonitor {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<Result<Events>>>>,
    /// The addresses held when the monitor started (from its first dump).
    pub initial: Events,
}

impl AddrMonitor {
    pub fn start(ns: &str) -> Result<Self> {
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = in_ns(ns, move || -> Result<Vec<(Instant, AddrEvent)>> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let mut ev = AddrEvents::subscribe().map_err(|e| anyhow!("{e}"))?;
                // Subscribed first, then dumped: nothing falls between.
                let nl = Netlink::new().map_err(|e| anyhow!("{e}"))?;
                let now = Instant::now();
                let dump: Vec<(Instant, AddrEvent)> = nl
                    .addresses(None)
                    .await
                    .map_err(|e| anyhow!("{e}"))?
                    .into_iter()
                    .map(|k| (now, AddrEvent::New(k)))
                    .collect();
                let _ = ready_tx.send(dump);
                let mut seen = Vec::new();
                loop {
                    tokio::select! {
                        // Cancel-safe: a oneshot receiver polled by reference.
                        _ = &mut stop_rx => break,
                        // Cancel-safe: an mpsc receive.
                        e = ev.next() => match e {
                            Some(e) => seen.push((Instant::now(), e)),
                            None => anyhow::bail!("address event subscription closed"),
                        },
                    }
                }
                Ok(seen)
            })
        });
        let initial = ready_rx
            .recv_timeout(Duration::from_secs(5))
            .context("the address monitor did not start")?;
        Ok(Self {
            stop: Some(stop_tx),
            thread: Some(thread),
            initial,
        })
    }

    /// Stops and returns every event, the initial dump first.
    pub fn stop(mut self) -> Result<Vec<(Instant, AddrEvent)>> {
        let _ = self.stop.take().expect("once").send(());
        let events = self
            .thread
            .take()
            .expect("once")
            .join()
            .map_err(|_| anyhow!("monitor thread panicked"))???;
        let mut all = std::mem::take(&mut self.initial);
        all.extend(events);
        Ok(all)
    }
}

impl Drop for AddrMonitor {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// For every address in `events`, the intervals in which it was held
/// (present, neither tentative nor dadfailed). An interval still open at
/// the end closes at `end`.
pub fn usable_intervals(
    events: &[(Instant, AddrEvent)],
    end: Instant,
) -> HashMap<Ipv6Addr, Vec<Interval>> {
    let mut open: HashMap<Ipv6Addr, Instant> = HashMap::new();
    let mut out: HashMap<Ipv6Addr, Vec<Interval>> = HashMap::new();
    for (at, e) in events {
        let (addr, usable) = match e {
            AddrEvent::New(k) => (k.addr, !k.flags.tentative() && !k.flags.dadfailed()),
            AddrEvent::Del(k) => (k.addr, false),
        };
        match (usable, open.get(&addr).copied()) {
            (true, None) => {
                open.insert(addr, *at);
            }
            (false, Some(s)) => {
                out.entry(addr).or_default().push((s, *at));
                open.remove(&addr);
            }
            _ => {}
        }
    }
    for (addr, s) in open {
        out.entry(addr).or_default().push((s, end));
    }
    out
}

/// A moment when two hosts held one address.
#[derive(Debug, Clone)]
pub struct DoubleHolder {
    pub addr: Ipv6Addr,
    pub hosts: (String, String),
    pub intervals: (Interval, Interval),
}

/// Every pair of intervals in which two hosts held the same address at
/// once. `per_host` maps a host's name to its intervals per address.
pub fn double_holders(
    per_host: &[(String, HashMap<Ipv6Addr, Vec<Interval>>)],
) -> Vec<DoubleHolder> {
    let mut out = Vec::new();
    for (i, (h1, m1)) in per_host.iter().enumerate() {
        for (h2, m2) in &per_host[i + 1..] {
            for (addr, v1) in m1 {
                let Some(v2) = m2.get(addr) else { continue };
                for a in v1 {
                    for b in v2 {
                        if a.0 < b.1 && b.0 < a.1 {
                            out.push(DoubleHolder {
                                addr: *addr,
                                hosts: (h1.clone(), h2.clone()),
                                intervals: (*a, *b),
                            });
                        }
                    }
                }
            }
        }
    }
    out
}

fn set_rcvtimeo(fd: &OwnedFd, d: Duration) -> Result<()> {
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
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("SO_RCVTIMEO");
    }
    Ok(())
}

/// Pings `dst` from namespace `ns` every `every` until stopped, recording
/// the arrival time of every echo reply.
pub struct Pinger {
    stop: Arc<AtomicBool>,
    replies: Arc<Mutex<Vec<Instant>>>,
    thread: Option<JoinHandle<Result<Result<()>>>>,
}

impl Pinger {
    pub fn start(ns: &str, dst: Ipv6Addr, every: Duration) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let replies = Arc::new(Mutex::new(Vec::new()));
        let out = replies.clone();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = in_ns(ns, move || -> Result<()> {
            // SAFETY: plain socket(2); checked below.
            let raw = unsafe {
                libc::socket(
                    libc::AF_INET6,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    libc::IPPROTO_ICMPV6,
                )
            };
            if raw < 0 {
                return Err(std::io::Error::last_os_error()).context("ICMPv6 socket");
            }
            // SAFETY: a fresh fd we own.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            set_rcvtimeo(&fd, Duration::from_millis(2))?;
            // SAFETY: POD.
            let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sa.sin6_addr.s6_addr = dst.octets();
            let id = (std::process::id() & 0xffff) as u16;
            let _ = ready_tx.send(());
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
                    out.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(Instant::now());
                }
            }
            Ok(())
        });
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .context("the pinger did not start")?;
        Ok(Self {
            stop,
            replies,
            thread: Some(thread),
        })
    }

    /// Replies received after `since`, so far.
    pub fn replies_after(&self, since: Instant) -> usize {
        self.replies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|r| **r > since)
            .count()
    }

    pub fn stop(mut self) -> Vec<Instant> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.replies.lock().unwrap_or_else(|p| p.into_inner()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_intervals_of_two_hosts_are_reported() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let a: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let host = |v: Vec<Interval>| HashMap::from([(a, v)]);
        let touching = [
            ("a".to_owned(), host(vec![(at(0), at(10))])),
            ("b".to_owned(), host(vec![(at(10), at(20))])),
        ];
        assert!(double_holders(&touching).is_empty(), "a hand-over is fine");
        let overlapping = [
            ("a".to_owned(), host(vec![(at(0), at(11))])),
            ("b".to_owned(), host(vec![(at(10), at(20))])),
            ("c".to_owned(), HashMap::new()),
        ];
        let d = double_holders(&overlapping);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].hosts, ("a".to_owned(), "b".to_owned()));
    }
}
