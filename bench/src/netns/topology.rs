//! The namespace topology of scripts/demo.sh: hosts A and B and client C
//! on one bridge (in its own namespace), a management bridge in the root
//! namespace where fipd listens. Dropping it deletes every namespace and
//! link it made; a sweep at start removes those of runs that died.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// The data interface in every host namespace.
pub const DEV: &str = "eth0";
/// The pool of the floating addresses; C's address is reserved in it.
pub const POOL: &str = "2001:db8:100::/64";
pub const C_ADDR: &str = "2001:db8:100::c";
/// Namespace names start with this, then the pid of the run.
const NS_PREFIX: &str = "fipbench";
/// Root-namespace links start with this, then the pid of the run.
const LINK_PREFIX: &str = "fbm";

/// Runs `ip ARGS`; an error carries ip's stderr.
pub fn ip(args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running ip (is iproute2 installed?)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `f` on a fresh thread inside namespace `ns` (only that thread
/// changes namespace; sockets it opens stay there).
pub fn in_ns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> std::thread::JoinHandle<Result<T>> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        enter_ns(&path)?;
        f()
    })
}

/// Moves the calling thread into the network namespace at `path`.
pub fn enter_ns(path: &str) -> Result<()> {
    let file = File::open(path).with_context(|| format!("open {path}"))?;
    // SAFETY: setns on the calling thread with a valid namespace fd.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        bail!("setns {path}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// Writes `value` to /proc/sys/net/`key` inside namespace `ns`.
pub fn sysctl(ns: &str, key: &str, value: &str) -> Result<()> {
    let (k, v) = (format!("/proc/sys/net/{key}"), value.to_owned());
    in_ns(ns, move || {
        std::fs::write(&k, &v).with_context(|| format!("write {v} to {k}"))
    })
    .join()
    .map_err(|_| anyhow!("sysctl thread panicked"))?
}

/// Polls `cond` every 10 ms until it holds; an error after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

pub struct Host {
    /// fipd host name, also what the probe responder answers.
    pub name: String,
    pub ns: String,
    pub mac: String,
    /// The bridge-namespace end of its data veth (`p-a`, ...).
    pub port: String,
    /// Its management address and the root-namespace end of its
    /// management veth (A and B only).
    pub mgmt: Option<(String, String)>,
}

impl Host {
    /// Lines of `ip -6 -o addr show dev eth0` in this host.
    pub fn addr_lines(&self) -> Result<Vec<String>> {
        Ok(
            ip(&["-n", &self.ns, "-6", "-o", "addr", "show", "dev", DEV])?
                .lines()
                .map(str::to_owned)
                .collect(),
        )
    }

    /// Whether the kernel of this host holds `addr` on eth0 (any state).
    pub fn holds(&self, addr: &str) -> Result<bool> {
        let needle = format!(" {addr}/");
        Ok(self.addr_lines()?.iter().any(|l| l.contains(&needle)))
    }

    /// Whether `addr` is on eth0 and DAD is over (not tentative).
    pub fn holds_usable(&self, addr: &str) -> Result<bool> {
        let needle = format!(" {addr}/");
        Ok(self
            .addr_lines()?
            .iter()
            .any(|l| l.contains(&needle) && !l.contains("tentative")))
    }
}

pub struct Topo {
    namespaces: Vec<String>,
    root_links: Vec<String>,
    pub bridge_ns: String,
    /// fipd's address on the management bridge.
    pub mgmt_ip: String,
    pub a: Host,
    pub b: Host,
    pub c: Host,
}

impl Drop for Topo {
    fn drop(&mut self) {
        // Deleting a namespace destroys its veth ends and their peers.
        for ns in &self.namespaces {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
        for l in &self.root_links {
            let _ = Command::new("ip")
                .args(["link", "del", l])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Deletes namespaces and root links of fip-bench runs whose process is
/// gone (their names carry the pid).
fn sweep_dead_runs() {
    let dead = |name: &str, prefix: &str| -> bool {
        let Some(rest) = name.strip_prefix(prefix) else {
            return false;
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let tail = &rest[digits.len()..];
        // Exactly our shapes: {prefix}{pid}-{role} or {prefix}{pid}{a|b|}.
        let shape_ok = tail.is_empty() || tail == "a" || tail == "b" || tail.starts_with('-');
        shape_ok
            && digits
                .parse::<u32>()
                .is_ok_and(|pid| pid > 1 && !Path::new(&format!("/proc/{pid}")).exists())
    };
    if let Ok(entries) = std::fs::read_dir("/run/netns") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if dead(&name, NS_PREFIX) {
                let _ = Command::new("ip").args(["netns", "del", &name]).status();
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir("/sys/class/net") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if dead(&name, LINK_PREFIX) {
                let _ = Command::new("ip").args(["link", "del", &name]).status();
            }
        }
    }
}

impl Topo {
    pub fn new() -> Result<Self> {
        sweep_dead_runs();
        let pid = std::process::id();
        let p = format!("{NS_PREFIX}{pid}");
        // A /64 of its own per run, so two runs (or the e2e tests, which
        // use 2001:db8:ffff::/64) never share management addresses.
        let net = format!("2001:db8:ffbe:{:x}", pid & 0xffff);
        let mgmt_br = format!("{LINK_PREFIX}{pid}");
        let host = |role: &str, mac: &str, mgmt: bool| Host {
            name: format!("host-{role}"),
            ns: format!("{p}-{role}"),
            mac: mac.into(),
            port: format!("p-{role}"),
            mgmt: mgmt.then(|| (format!("{net}::{role}"), format!("{mgmt_br}{role}"))),
        };
        let mut t = Topo {
            namespaces: Vec::new(),
            root_links: Vec::new(),
            bridge_ns: format!("{p}-br"),
            mgmt_ip: format!("{net}::1"),
            a: host("a", "02:00:00:00:00:0a", true),
            b: host("b", "02:00:00:00:00:0b", true),
            c: host("c", "02:00:00:00:00:0c", false),
        };
        for ns in [&t.bridge_ns, &t.a.ns, &t.b.ns, &t.c.ns] {
            ip(&["netns", "add", ns])?;
            t.namespaces.push(ns.clone());
        }
        let br = t.bridge_ns.clone();
        // A plain switch: no IPv6 of its own, no multicast snooping (which
        // could drop DAD probes and VRRP adverts).
        sysctl(&br, "ipv6/conf/default/disable_ipv6", "1")?;
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
        ])?;
        ip(&["-n", &br, "link", "set", "br0", "up"])?;
        t.root_links.push(mgmt_br.clone());
        ip(&[
            "link",
            "add",
            &mgmt_br,
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ])?;
        ip(&[
            "-6",
            "addr",
            "add",
            &format!("{}/64", t.mgmt_ip),
            "dev",
            &mgmt_br,
            "nodad",
        ])?;
        ip(&["link", "set", &mgmt_br, "up"])?;
        for h in [&t.a, &t.b, &t.c] {
            ip(&[
                "-n", &br, "link", "add", &h.port, "type", "veth", "peer", "name", DEV, "netns",
                &h.ns,
            ])?;
            ip(&["-n", &br, "link", "set", &h.port, "master", "br0", "up"])?;
            ip(&["-n", &h.ns, "link", "set", DEV, "address", &h.mac])?;
            ip(&["-n", &h.ns, "link", "set", "lo", "up"])?;
            ip(&["-n", &h.ns, "link", "set", DEV, "up"])?;
            // DAD and neighbour settings stay at the kernel's defaults:
            // the figures are about what an operator gets.
            if let Some((addr, port)) = &h.mgmt {
                ip(&[
                    "link", "add", port, "type", "veth", "peer", "name", "mgmt0", "netns", &h.ns,
                ])?;
                t.root_links.push(port.clone());
                ip(&["link", "set", port, "master", &mgmt_br, "up"])?;
                ip(&[
                    "-n",
                    &h.ns,
                    "-6",
                    "addr",
                    "add",
                    &format!("{addr}/64"),
                    "dev",
                    "mgmt0",
                    "nodad",
                ])?;
                ip(&["-n", &h.ns, "link", "set", "mgmt0", "up"])?;
            }
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
        ])?;
        // Link-local DAD over before anything is measured.
        for h in [&t.a, &t.b, &t.c] {
            wait_for("link-local DAD", Duration::from_secs(10), || {
                h.addr_lines().is_ok_and(|lines| {
                    lines.iter().any(|l| l.contains("fe80::"))
                        && !lines.iter().any(|l| l.contains("tentative"))
                })
            })?;
        }
        Ok(t)
    }

    /// Cuts host `h` off: its bridge port and its management port go down
    /// on the far side, so its own interfaces stay up and keep their
    /// addresses (an admin down of eth0 would delete them).
    pub fn cut_off(&self, h: &Host) -> Result<()> {
        ip(&["-n", &self.bridge_ns, "link", "set", &h.port, "down"])?;
        if let Some((_, port)) = &h.mgmt {
            ip(&["link", "set", port, "down"])?;
        }
        Ok(())
    }

    pub fn reconnect(&self, h: &Host) -> Result<()> {
        ip(&["-n", &self.bridge_ns, "link", "set", &h.port, "up"])?;
        if let Some((_, port)) = &h.mgmt {
            ip(&["link", "set", port, "up"])?;
        }
        Ok(())
    }

    /// `net.ipv6.conf.eth0.optimistic_dad` on A and B.
    pub fn set_optimistic_dad(&self, on: bool) -> Result<()> {
        for h in [&self.a, &self.b] {
            sysctl(
                &h.ns,
                &format!("ipv6/conf/{DEV}/optimistic_dad"),
                if on { "1" } else { "0" },
            )?;
        }
        Ok(())
    }
}
