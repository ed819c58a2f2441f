//! The agent's view of the kit's topology (fip-testkit): hosts A, B and
//! client C on one bridge, and the real `fip-agent` binary run inside them.

use std::net::Ipv6Addr;
use std::process::{Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use fip_testkit::topo::{Dad as KitDad, HostSpec, TopoSpec};
use serde_json::Value;

pub const DEV: &str = "eth0";
/// The floating address every scenario moves around.
pub const X: &str = "2001:db8:1::100";
/// The client's own address, on the same /64 so it resolves X on the link.
pub const C_ADDR: &str = "2001:db8:1::c";

/// Runs `ip` with the arguments, panicking with its stderr on failure.
pub fn ip(args: &[&str]) -> String {
    fip_testkit::ip(args).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Runs `f` on a fresh thread that has entered namespace `ns`. Only that
/// thread changes namespace; sockets it opens stay in `ns` for good.
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        fip_testkit::net::enter_ns(&path).unwrap_or_else(|e| panic!("{e:#}"));
        f()
    })
}

/// Writes a sysctl under /proc/sys/net of namespace `ns`.
pub fn sysctl(ns: &str, key: &str, value: &str) {
    fip_testkit::sysctl(ns, key, value).unwrap_or_else(|e| panic!("{e:#}"));
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes.
pub fn wait_for(what: &str, timeout: Duration, cond: impl FnMut() -> bool) {
    fip_testkit::wait_for(what, timeout, cond).unwrap_or_else(|e| panic!("{e:#}"));
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

/// Hosts A and B and client C on one bridge (the kit's topology). Every
/// namespace is deleted when this is dropped, including on panic.
pub struct Topo {
    _kit: fip_testkit::Topo,
    pub a: Host,
    pub b: Host,
    pub c: Host,
}

impl Topo {
    pub fn new() -> Self {
        Self::with(TopoOpts::default())
    }

    pub fn with(opts: TopoOpts) -> Self {
        let dad = |d: Dad| match d {
            Dad::Fast => KitDad::Fast,
            Dad::Default => KitDad::KernelDefault,
        };
        // Replies to the client need an on-link route; X itself is a /128.
        let onlink = "2001:db8:1::/64";
        let spec = TopoSpec {
            hosts: vec![
                HostSpec::new("a", "02:00:00:00:00:0a").onlink(onlink),
                HostSpec::new("b", "02:00:00:00:00:0b")
                    .onlink(onlink)
                    .dad(dad(opts.dad_b))
                    .optimistic(opts.optimistic_b),
                HostSpec::new("c", "02:00:00:00:00:0c")
                    .onlink(onlink)
                    .addr(&format!("{C_ADDR}/64")),
            ],
        };
        let kit = fip_testkit::Topo::build(&spec).unwrap_or_else(|e| panic!("{e:#}"));
        let host = |role: &str| {
            let h = kit.host(role);
            Host {
                ns: h.ns.clone(),
                mac: h.mac.clone(),
            }
        };
        Topo {
            a: host("a"),
            b: host("b"),
            c: host("c"),
            _kit: kit,
        }
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
