//! C's view of F: a UDP responder on A and B that answers with its host's
//! name, and a prober in C that asks every 10 ms and records who answered
//! and when. The longest gap between answers is the outage C sees; an
//! answer from a host that should no longer hold F is a violation.

use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};

use super::topology::{enter_ns, Host};
use crate::fipd::{die_with_us, sibling_binary};

pub const PORT: u16 = 7_946;
/// Probe period.
pub const PERIOD: Duration = Duration::from_millis(10);
/// No process or thread of the probe outlives this, whatever happens.
const MAX_LIFETIME: Duration = Duration::from_secs(3_600);

/// Milliseconds since the epoch: the clock fipd's event timestamps use,
/// so probe times and events compare directly (one machine).
pub fn wall_ms() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// `fip-bench responder`: answers every datagram to [addr]:port with
/// "NAME SEQ". Bound with IPV6_FREEBIND, so it can wait for an address
/// its host does not hold yet; the kernel delivers to it only while the
/// host holds the address.
pub fn respond(addr: Ipv6Addr, port: u16, name: &str, max: Duration) -> Result<()> {
    let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        bail!("socket: {}", std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh socket we own from here on.
    let sock: UdpSocket = unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    // SAFETY: setsockopt with a valid int option value.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_FREEBIND,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        bail!("IPV6_FREEBIND: {}", std::io::Error::last_os_error());
    }
    let sa = SocketAddrV6::new(addr, port, 0, 0);
    // std has no bind on an existing socket: do it by hand.
    let mut raw: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    raw.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    raw.sin6_port = port.to_be();
    raw.sin6_addr.s6_addr = sa.ip().octets();
    // SAFETY: raw is a valid sockaddr_in6 of the size passed.
    let rc = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&raw as *const libc::sockaddr_in6).cast(),
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        bail!("bind [{addr}]:{port}: {}", std::io::Error::last_os_error());
    }
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    let started = Instant::now();
    let mut buf = [0u8; 64];
    while started.elapsed() < max {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let seq = String::from_utf8_lossy(&buf[..n]).into_owned();
        let _ = sock.send_to(format!("{name} {seq}").as_bytes(), from);
    }
    Ok(())
}

/// Responder processes on A and B (`ip netns exec NS fip-bench responder`),
/// killed on drop.
pub struct Responders {
    children: Vec<Child>,
}

impl Responders {
    pub fn start(hosts: &[&Host], addr: Ipv6Addr) -> Result<Self> {
        let bin = std::env::current_exe().or_else(|_| sibling_binary("fip-bench"))?;
        let mut r = Responders {
            children: Vec::new(),
        };
        for h in hosts {
            let child = die_with_us(&mut Command::new("ip"))
                .args(["netns", "exec", &h.ns])
                .arg(&bin)
                .args([
                    "responder",
                    "--addr",
                    &addr.to_string(),
                    "--port",
                    &PORT.to_string(),
                    "--name",
                    &h.name,
                    "--max-s",
                    &MAX_LIFETIME.as_secs().to_string(),
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .context("starting the probe responder")?;
            r.children.push(child);
        }
        // Bound before the first probe: give the processes a moment.
        std::thread::sleep(Duration::from_millis(100));
        for c in &mut r.children {
            if let Some(st) = c.try_wait()? {
                bail!("probe responder exited at once: {st}");
            }
        }
        Ok(r)
    }
}

impl Drop for Responders {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[derive(Debug, Clone)]
pub struct Reply {
    /// When C received it (ms since the epoch).
    pub at: f64,
    pub host: String,
}

/// The prober: a thread in C sending a datagram to [F]:PORT every 10 ms.
pub struct Prober {
    stop: Arc<AtomicBool>,
    replies: Arc<Mutex<Vec<Reply>>>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl Prober {
    pub fn start(c: &Host, f: Ipv6Addr) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let replies = Arc::new(Mutex::new(Vec::new()));
        let path = format!("/run/netns/{}", c.ns);
        let (s, r) = (stop.clone(), replies.clone());
        let thread = std::thread::spawn(move || -> Result<()> {
            enter_ns(&path)?;
            let sock = UdpSocket::bind("[::]:0")?;
            let dst = SocketAddr::V6(SocketAddrV6::new(f, PORT, 0, 0));
            let started = Instant::now();
            let mut next = Instant::now();
            let mut seq = 0u64;
            let mut buf = [0u8; 128];
            while !s.load(Ordering::Relaxed) && started.elapsed() < MAX_LIFETIME {
                let now = Instant::now();
                if now >= next {
                    seq += 1;
                    // Fails while C has no route or neighbour: that is the
                    // outage we measure, not an error.
                    let _ = sock.send_to(seq.to_string().as_bytes(), dst);
                    next += PERIOD;
                    if next < now {
                        next = now + PERIOD;
                    }
                    continue;
                }
                sock.set_read_timeout(Some(next - now))?;
                if let Ok((n, _)) = sock.recv_from(&mut buf) {
                    let at = wall_ms();
                    let text = String::from_utf8_lossy(&buf[..n]);
                    if let Some((host, _seq)) = text.split_once(' ') {
                        r.lock().unwrap().push(Reply {
                            at,
                            host: host.to_owned(),
                        });
                    }
                }
            }
            Ok(())
        });
        Ok(Prober {
            stop,
            replies,
            thread: Some(thread),
        })
    }

    /// Replies so far.
    pub fn replies(&self) -> Vec<Reply> {
        self.replies.lock().unwrap().clone()
    }

    /// Waits until `n` replies in a row after `since` came from `host`;
    /// false after `within`.
    pub fn wait_steady(&self, host: &str, since: f64, n: usize, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            {
                let v = self.replies.lock().unwrap();
                let tail: Vec<&Reply> = v.iter().rev().take_while(|r| r.at > since).collect();
                if tail.len() >= n && tail[..n].iter().all(|r| r.host == host) {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What C saw during one switchover.
#[derive(Debug, Clone, Copy)]
pub struct Outage {
    /// The longest time without a reply within the window, in ms.
    pub gap_ms: f64,
    /// Replies from the old host after it should no longer hold F.
    pub violations: usize,
    /// The window ended before C heard the new host (gap is a lower bound).
    pub censored: bool,
}

/// Analyses the replies of one switchover from `old` to `new`, from
/// `start` (the action) to `end` (ms since the epoch). `released` is when
/// `old` stopped being entitled to F (its confirmed removal); a reply from
/// `old` after it, or after the first reply from `new`, is a violation.
pub fn analyse(
    replies: &[Reply],
    old: &str,
    new: &str,
    start: f64,
    end: f64,
    released: Option<f64>,
) -> Outage {
    let mut prev = replies
        .iter()
        .filter(|r| r.at <= start)
        .map(|r| r.at)
        .fold(start, |_, t| t);
    // The gap in progress when the window opened counts from its last reply.
    let mut gap = 0.0f64;
    let mut first_new: Option<f64> = None;
    let mut violations = 0;
    for r in replies.iter().filter(|r| r.at > start && r.at <= end) {
        gap = gap.max(r.at - prev);
        prev = r.at;
        if r.host == new && first_new.is_none() {
            first_new = Some(r.at);
        }
        if r.host == old
            && (first_new.is_some_and(|t| r.at > t) || released.is_some_and(|t| r.at > t))
        {
            violations += 1;
        }
    }
    let censored = first_new.is_none();
    if censored {
        gap = gap.max(end - prev);
    }
    Outage {
        gap_ms: gap,
        violations,
        censored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(at: f64, host: &str) -> Reply {
        Reply {
            at,
            host: host.into(),
        }
    }

    #[test]
    fn the_gap_is_the_longest_silence_across_the_switch() {
        let v = vec![
            r(0.0, "a"),
            r(10.0, "a"),
            r(20.0, "a"),
            r(120.0, "b"),
            r(130.0, "b"),
        ];
        let o = analyse(&v, "a", "b", 15.0, 200.0, Some(25.0));
        assert_eq!(o.gap_ms, 100.0);
        assert_eq!(o.violations, 0);
        assert!(!o.censored);
    }

    #[test]
    fn old_host_answering_after_release_or_after_new_is_a_violation() {
        let v = vec![r(0.0, "a"), r(50.0, "a"), r(60.0, "b"), r(70.0, "a")];
        let o = analyse(&v, "a", "b", 5.0, 100.0, Some(40.0));
        assert_eq!(o.violations, 2, "{o:?}");
    }

    #[test]
    fn no_answer_from_the_new_host_is_a_censored_gap_to_the_end() {
        let v = vec![r(0.0, "a"), r(10.0, "a")];
        let o = analyse(&v, "a", "b", 5.0, 1000.0, None);
        assert!(o.censored);
        assert_eq!(o.gap_ms, 990.0);
    }
}
