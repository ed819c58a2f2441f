//! Test topology: a bridge namespace joining hosts A, B and client C, torn down by a Drop guard.

use std::fs::File;
use std::net::Ipv6Addr;
use std::os::fd::AsRawFd;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const DEV: &str = "eth0";
/// The floating address every scenario moves around.
pub const X: &str = "2001:db8:1::100";
/// The client's own address, on the same /64 so it resolves X on the link.
pub const C_ADDR: &str = "2001:db8:1::c";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Short names unique per process (pid) and per test in it (counter):
/// nextest runs tests in parallel processes sharing one kernel.
fn unique_prefix() -> String {
    format!(
        "fipt{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Deletes namespaces left by test processes that died without running
/// their Drop guards (SIGKILL, a timeout): their names carry the pid.
fn sweep_dead_runs() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("fipt")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
        }
    }
}

/// Runs `ip` with the arguments, panicking with its stderr on failure.
pub fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `f` on a fresh thread that has entered namespace `ns`. Only that
/// thread changes namespace; sockets it opens stay in `ns` for good.
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: setns on this thread only, with a valid namespace fd.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
}

/// Writes a sysctl under /proc/sys/net of namespace `ns`.
pub fn sysctl(ns: &str, key: &str, value: &str) {
    let (k, v) = (key.to_owned(), value.to_owned());
    in_ns(ns, move || {
        let p = format!("/proc/sys/net/{k}");
        std::fs::write(&p, &v).unwrap_or_else(|e| panic!("write {p}: {e}"));
    })
    .join()
    .unwrap();
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub struct Host {
    pub ns: String,
    pub mac: String,
}

impl Host {
    /// The IPv6 addresses on eth0 as `ip` prints them, one line per address.
    pub fn addr_lines(&self) -> Vec<String> {
        ip(&["-n", &self.ns, "-6", "-o", "addr", "show", "dev", DEV])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    pub fn has_addr(&self, a: &str) -> bool {
        self.addr_lines()
            .iter()
            .any(|l| l.contains(&format!(" {a}/")))
    }

    /// The MAC C's neighbour cache holds for `a`, and the entry's state.
    pub fn neigh(&self, a: &str) -> Option<(String, String)> {
        let out = ip(&["-n", &self.ns, "-6", "neigh", "show", a, "dev", DEV]);
        let line = out.lines().next()?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let mac = words
            .iter()
            .position(|w| *w == "lladdr")
            .map(|i| words[i + 1].to_owned())?;
        Some((mac, words.last().unwrap().to_string()))
    }

    /// Runs the real `fip-agent` binary inside this host's namespace.
    pub fn agent(&self, args: &[&str]) -> AgentRun {
        AgentRun::from(self.agent_cmd(args).output().expect("run fip-agent"))
    }

    pub fn agent_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, env!("CARGO_BIN_EXE_fip-agent")])
            .args(args)
            .stdin(Stdio::null());
        c
    }
}

#[derive(Debug)]
pub struct AgentRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for AgentRun {
    fn from(o: Output) -> Self {
        Self {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl AgentRun {
    /// Every stdout line must be one JSON object.
    pub fn lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
            .collect()
    }

    pub fn last(&self) -> Value {
        self.lines()
            .pop()
            .unwrap_or_else(|| panic!("no output: {self:?}"))
    }

    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code: {self:#?}");
        self
    }
}

/// DAD timing for a host's eth0.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Dad {
    /// router_solicitation_delay=0, retrans_time_ms=100: DAD ≈ 100 ms.
    Fast,
    /// Kernel defaults: DAD 1–2 s.
    Default,
}

pub struct TopoOpts {
    pub dad_b: Dad,
    pub optimistic_b: bool,
}

impl Default for TopoOpts {
    fn default() -> Self {
        Self {
            dad_b: Dad::Fast,
            optimistic_b: false,
        }
    }
}

/// Hosts A and B and client C on one bridge. Every namespace is deleted
/// when this is dropped, including on panic.
pub struct Topo {
    namespaces: Vec<String>,
    pub a: Host,
    pub b: Host,
    pub c: Host,
}

impl Drop for Topo {
    fn drop(&mut self) {
        // Deleting a namespace destroys its veth ends, and with them the peers.
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

impl Topo {
    pub fn new() -> Self {
        Self::with(TopoOpts::default())
    }

    pub fn with(opts: TopoOpts) -> Self {
        sweep_dead_runs();
        let p = unique_prefix();
        let br = format!("{p}br");
        let mut t = Topo {
            namespaces: Vec::new(),
            a: Host {
                ns: format!("{p}a"),
                mac: "02:00:00:00:00:0a".into(),
            },
            b: Host {
                ns: format!("{p}b"),
                mac: "02:00:00:00:00:0b".into(),
            },
            c: Host {
                ns: format!("{p}c"),
                mac: "02:00:00:00:00:0c".into(),
            },
        };
        for ns in [&br, &t.a.ns, &t.b.ns, &t.c.ns] {
            ip(&["netns", "add", ns]);
            t.namespaces.push(ns.clone());
        }
        // The bridge namespace is a plain switch: no IPv6 of its own, and no
        // multicast snooping that could filter solicited-node multicast.
        sysctl(&br, "ipv6/conf/default/disable_ipv6", "1");
        ip(&[
            "-n",
            &br,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        ip(&["-n", &br, "link", "set", "br0", "up"]);
        for (role, h) in [("a", &t.a), ("b", &t.b), ("c", &t.c)] {
            let port = format!("v{role}");
            ip(&[
                "-n", &br, "link", "add", &port, "type", "veth", "peer", "name", DEV, "netns",
                &h.ns,
            ]);
            ip(&["-n", &br, "link", "set", &port, "master", "br0", "up"]);
            ip(&["-n", &h.ns, "link", "set", DEV, "address", &h.mac]);
            // The interface's conf directory appears a moment after the move.
            let conf = format!("/proc/sys/net/ipv6/conf/{DEV}");
            wait_for(
                "IPv6 conf of the moved veth",
                Duration::from_secs(5),
                || {
                    let c = conf.clone();
                    in_ns(&h.ns, move || std::path::Path::new(&c).exists())
                        .join()
                        .unwrap()
                },
            );
            let dad = if role == "b" { opts.dad_b } else { Dad::Fast };
            if dad == Dad::Fast {
                sysctl(
                    &h.ns,
                    &format!("ipv6/conf/{DEV}/router_solicitation_delay"),
                    "0",
                );
                sysctl(&h.ns, &format!("ipv6/neigh/{DEV}/retrans_time_ms"), "100");
            }
            if role == "b" && opts.optimistic_b {
                sysctl(&h.ns, &format!("ipv6/conf/{DEV}/optimistic_dad"), "1");
            }
            ip(&["-n", &h.ns, "link", "set", "lo", "up"]);
            ip(&["-n", &h.ns, "link", "set", DEV, "up"]);
            // Replies to the client need an on-link route; X itself is a /128.
            ip(&[
                "-n",
                &h.ns,
                "-6",
                "route",
                "add",
                "2001:db8:1::/64",
                "dev",
                DEV,
            ]);
        }
        ip(&[
            "-n",
            &t.c.ns,
            "-6",
            "addr",
            "add",
            &format!("{C_ADDR}/64"),
            "dev",
            DEV,
            "nodad",
        ]);
        // Link-local DAD must be over before tests run: NDP traffic from a
        // tentative interface would confuse the captures.
        for h in [&t.a, &t.b, &t.c] {
            wait_for("link-local DAD", Duration::from_secs(5), || {
                let lines = h.addr_lines();
                lines.iter().any(|l| l.contains("fe80::"))
                    && !lines.iter().any(|l| l.contains("tentative"))
            });
        }
        t
    }
}

pub fn mac_bytes(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    v.try_into().unwrap()
}

pub fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}
