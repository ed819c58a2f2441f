//! Hosts on one link: a bridge in a namespace of its own joins each host's
//! `eth0`; hosts that talk to fipd also get a management veth to a bridge
//! in the root namespace, where fipd listens. Hosts can be cut off from the
//! link or from fipd, with their carrier up (frames dropped at the bridge
//! with nftables, as a real partition) or down (the port switched off).

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::net::{in_ns, ip, nft, sweep_dead_runs, sysctl, wait_for, PREFIX};

/// The data interface in every host namespace.
pub const DEV: &str = "eth0";
/// The management interface in hosts that talk to fipd.
pub const MGMT: &str = "mgmt0";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// DAD timing of a host's `eth0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dad {
    /// `router_solicitation_delay=0`, `retrans_time_ms=100`: DAD ≈ 100 ms.
    Fast,
    /// The kernel's defaults: DAD 1–2 s.
    KernelDefault,
}

/// How a host is cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Its frames are dropped at the bridge; its carrier stays up, so
    /// nothing on the host notices (a real partition).
    Frames,
    /// Its bridge port goes down: the host sees its carrier go.
    Carrier,
}

/// One host of a topology.
#[derive(Debug, Clone)]
pub struct HostSpec {
    /// A short tag (one character or two) naming the host in names.
    pub role: String,
    pub mac: String,
    /// Gets a management veth to fipd's bridge.
    pub mgmt: bool,
    pub dad: Dad,
    /// `optimistic_dad=1` on `eth0`.
    pub optimistic: bool,
    /// An address of its own on `eth0`, added without DAD (`prefix/len`).
    pub addr: Option<String>,
    /// An on-link route on `eth0` (for hosts whose floating addresses are
    /// /128s but must reach clients on the link).
    pub onlink: Option<String>,
}

impl HostSpec {
    /// A host with fast DAD, no management link and no address.
    pub fn new(role: &str, mac: &str) -> Self {
        Self {
            role: role.into(),
            mac: mac.into(),
            mgmt: false,
            dad: Dad::Fast,
            optimistic: false,
            addr: None,
            onlink: None,
        }
    }

    pub fn mgmt(mut self) -> Self {
        self.mgmt = true;
        self
    }

    pub fn dad(mut self, d: Dad) -> Self {
        self.dad = d;
        self
    }

    pub fn optimistic(mut self, on: bool) -> Self {
        self.optimistic = on;
        self
    }

    pub fn addr(mut self, a: &str) -> Self {
        self.addr = Some(a.into());
        self
    }

    pub fn onlink(mut self, p: &str) -> Self {
        self.onlink = Some(p.into());
        self
    }
}

#[derive(Debug, Clone, Default)]
pub struct TopoSpec {
    pub hosts: Vec<HostSpec>,
}

/// A host as built.
#[derive(Debug, Clone)]
pub struct Host {
    pub role: String,
    /// `host-{role}`: the name fipd knows it by.
    pub name: String,
    pub ns: String,
    pub mac: String,
    /// The bridge-namespace end of its data veth.
    pub data_port: String,
    /// Its management address and the root-namespace end of its
    /// management veth.
    pub mgmt: Option<(String, String)>,
}

impl Host {
    /// Lines of `ip -6 -d -o addr show dev eth0` in this host.
    pub fn addr_lines(&self) -> Result<Vec<String>> {
        Ok(
            ip(&["-n", &self.ns, "-6", "-d", "-o", "addr", "show", "dev", DEV])?
                .lines()
                .map(str::to_owned)
                .collect(),
        )
    }

    /// The line of `addr` on eth0, if the kernel holds it.
    pub fn addr_line(&self, addr: &str) -> Result<Option<String>> {
        let needle = format!(" {addr}/");
        Ok(self.addr_lines()?.into_iter().find(|l| l.contains(&needle)))
    }

    /// Whether the kernel holds `addr` on eth0 (in any state).
    pub fn has_addr(&self, addr: &str) -> Result<bool> {
        Ok(self.addr_line(addr)?.is_some())
    }

    /// Whether `addr` is on eth0 and neither tentative nor dadfailed.
    pub fn holds_usable(&self, addr: &str) -> Result<bool> {
        Ok(self
            .addr_line(addr)?
            .is_some_and(|l| !l.contains("tentative") && !l.contains("dadfailed")))
    }

    /// The MAC this host's neighbour cache holds for `addr`.
    pub fn neigh_mac(&self, addr: &str) -> Result<Option<String>> {
        let out = ip(&["-n", &self.ns, "-6", "neigh", "show", addr, "dev", DEV])?;
        let Some(line) = out.lines().next() else {
            return Ok(None);
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        Ok(words
            .iter()
            .position(|w| *w == "lladdr")
            .map(|i| words[i + 1].to_owned()))
    }

    /// A command that runs `prog` inside this host's namespace.
    pub fn command(&self, prog: &std::path::Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns]).arg(prog);
        c
    }
}

/// The built topology. Dropping it deletes every namespace, link and
/// nftables table it made.
pub struct Topo {
    prefix: String,
    namespaces: Vec<String>,
    root_links: Vec<String>,
    /// The nftables table in the root namespace (management cuts).
    root_table: Option<String>,
    pub bridge_ns: String,
    /// fipd's address on the management bridge, when any host has one.
    pub mgmt_ip: Option<String>,
    pub hosts: Vec<Host>,
}

impl Drop for Topo {
    fn drop(&mut self) {
        // Deleting a namespace destroys its veth ends and with them the
        // peers (the root-side management ports too).
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
        if let Some(t) = &self.root_table {
            let _ = nft(None, &format!("delete table bridge {t}\n"));
        }
    }
}

/// A /112 of 2001:db8:ffff::/64 that no live topology uses.
fn free_mgmt_subnet(seed: u32) -> Result<u16> {
    let taken = ip(&["-6", "-o", "addr", "show"])?;
    let mut t = (seed.wrapping_mul(2_654_435_761) >> 16) as u16 | 1;
    while taken.contains(&format!("2001:db8:ffff::{t:x}:1/")) {
        t = t.wrapping_add(1) | 1;
    }
    Ok(t)
}

/// The nftables script that drops frames from and to the ports in a set:
/// between ports (forward), and to and from the bridge's own address
/// (input, output), where fipd listens on the management bridge.
fn cut_table(name: &str) -> String {
    format!(
        "table bridge {name} {{\n\
           set cut {{ type ifname; }}\n\
           chain forwarded {{ type filter hook forward priority 0; policy accept;\n\
             iifname @cut drop\n\
             oifname @cut drop\n\
           }}\n\
           chain incoming {{ type filter hook input priority 0; policy accept;\n\
             iifname @cut drop\n\
           }}\n\
           chain outgoing {{ type filter hook output priority 0; policy accept;\n\
             oifname @cut drop\n\
           }}\n\
         }}\n"
    )
}

impl Topo {
    pub fn build(spec: &TopoSpec) -> Result<Self> {
        sweep_dead_runs();
        let pid = std::process::id();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let p = format!("{PREFIX}{pid}x{n}");
        let mut t = Topo {
            prefix: p.clone(),
            namespaces: Vec::new(),
            root_links: Vec::new(),
            root_table: None,
            bridge_ns: format!("{p}br"),
            mgmt_ip: None,
            hosts: Vec::new(),
        };
        let br = t.bridge_ns.clone();
        ip(&["netns", "add", &br])?;
        t.namespaces.push(br.clone());
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
        nft(Some(&br), &cut_table("fkcut"))?;

        let mgmt_br = format!("{p}m");
        if spec.hosts.iter().any(|h| h.mgmt) {
            let tag = free_mgmt_subnet(pid.wrapping_mul(64).wrapping_add(n))?;
            let mgmt_ip = format!("2001:db8:ffff::{tag:x}:1");
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
                &format!("{mgmt_ip}/112"),
                "dev",
                &mgmt_br,
                "nodad",
            ])?;
            ip(&["link", "set", &mgmt_br, "up"])?;
            nft(None, &cut_table(&p))?;
            t.root_table = Some(p.clone());
            t.mgmt_ip = Some(mgmt_ip);
        }

        for (i, hs) in spec.hosts.iter().enumerate() {
            let ns = format!("{p}{}", hs.role);
            ip(&["netns", "add", &ns])?;
            t.namespaces.push(ns.clone());
            let port = format!("v{}", hs.role);
            ip(&[
                "-n", &br, "link", "add", &port, "type", "veth", "peer", "name", DEV, "netns", &ns,
            ])?;
            ip(&["-n", &br, "link", "set", &port, "master", "br0", "up"])?;
            ip(&["-n", &ns, "link", "set", DEV, "address", &hs.mac])?;
            // The interface's conf directory appears a moment after the move.
            let conf = format!("/proc/sys/net/ipv6/conf/{DEV}");
            let ns2 = ns.clone();
            wait_for(
                "IPv6 conf of the moved veth",
                Duration::from_secs(5),
                || {
                    let c = conf.clone();
                    in_ns(&ns2, move || std::path::Path::new(&c).exists())
                        .join()
                        .ok()
                        .and_then(Result::ok)
                        .unwrap_or(false)
                },
            )?;
            if hs.dad == Dad::Fast {
                sysctl(
                    &ns,
                    &format!("ipv6/conf/{DEV}/router_solicitation_delay"),
                    "0",
                )?;
                sysctl(&ns, &format!("ipv6/neigh/{DEV}/retrans_time_ms"), "100")?;
            }
            if hs.optimistic {
                sysctl(&ns, &format!("ipv6/conf/{DEV}/optimistic_dad"), "1")?;
            }
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&["-n", &ns, "link", "set", DEV, "up"])?;
            if let Some(a) = &hs.addr {
                ip(&["-n", &ns, "-6", "addr", "add", a, "dev", DEV, "nodad"])?;
            }
            if let Some(r) = &hs.onlink {
                ip(&["-n", &ns, "-6", "route", "add", r, "dev", DEV])?;
            }
            let mut mgmt = None;
            if hs.mgmt {
                let mgmt_ip = t.mgmt_ip.clone().expect("made above");
                let base = mgmt_ip.trim_end_matches(":1");
                let addr = format!("{base}:{:x}", 0x10 + i);
                let root_port = format!("{mgmt_br}{}", hs.role);
                ip(&[
                    "link", "add", &root_port, "type", "veth", "peer", "name", MGMT, "netns", &ns,
                ])?;
                t.root_links.push(root_port.clone());
                ip(&["link", "set", &root_port, "master", &mgmt_br, "up"])?;
                ip(&[
                    "-n",
                    &ns,
                    "-6",
                    "addr",
                    "add",
                    &format!("{addr}/112"),
                    "dev",
                    MGMT,
                    "nodad",
                ])?;
                ip(&["-n", &ns, "link", "set", MGMT, "up"])?;
                mgmt = Some((addr, root_port));
            }
            t.hosts.push(Host {
                role: hs.role.clone(),
                name: format!("host-{}", hs.role),
                ns,
                mac: hs.mac.clone(),
                data_port: port,
                mgmt,
            });
        }
        // Link-local DAD over before anything runs: its NDP traffic must
        // not mix with a scenario's.
        for h in &t.hosts {
            wait_for("link-local DAD", Duration::from_secs(10), || {
                h.addr_lines().is_ok_and(|lines| {
                    lines.iter().any(|l| l.contains("fe80::"))
                        && !lines.iter().any(|l| l.contains("tentative"))
                })
            })?;
        }
        // The management path works before any agent starts.
        if let Some(target) = &t.mgmt_ip {
            for h in t.hosts.iter().filter(|h| h.mgmt.is_some()) {
                wait_for("management route", Duration::from_secs(5), || {
                    ip(&["-n", &h.ns, "-6", "route", "get", target]).is_ok()
                })?;
            }
        }
        Ok(t)
    }

    /// The host with this role.
    pub fn host(&self, role: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.role == role)
            .unwrap_or_else(|| panic!("no host {role} in this topology"))
    }

    /// A unique prefix for other things a test names (files, tables).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Cuts host `h` off the link.
    pub fn cut_link(&self, h: &Host, how: Cut) -> Result<()> {
        match how {
            Cut::Carrier => {
                ip(&["-n", &self.bridge_ns, "link", "set", &h.data_port, "down"])?;
            }
            Cut::Frames => nft(
                Some(&self.bridge_ns),
                &format!("add element bridge fkcut cut {{ \"{}\" }}\n", h.data_port),
            )
            .context("drop the host's frames")?,
        }
        Ok(())
    }

    /// Undoes [`Topo::cut_link`] (either kind).
    pub fn heal_link(&self, h: &Host) -> Result<()> {
        ip(&["-n", &self.bridge_ns, "link", "set", &h.data_port, "up"])?;
        let _ = nft(
            Some(&self.bridge_ns),
            &format!(
                "delete element bridge fkcut cut {{ \"{}\" }}\n",
                h.data_port
            ),
        );
        Ok(())
    }

    /// Cuts host `h` off fipd (its management path), leaving the link.
    pub fn cut_mgmt(&self, h: &Host, how: Cut) -> Result<()> {
        let (Some((_, port)), Some(table)) = (&h.mgmt, &self.root_table) else {
            anyhow::bail!("{} has no management link", h.name);
        };
        match how {
            Cut::Carrier => {
                ip(&["link", "set", port, "down"])?;
            }
            Cut::Frames => nft(
                None,
                &format!("add element bridge {table} cut {{ \"{port}\" }}\n"),
            )?,
        }
        Ok(())
    }

    /// Undoes [`Topo::cut_mgmt`] (either kind).
    pub fn heal_mgmt(&self, h: &Host) -> Result<()> {
        let (Some((_, port)), Some(table)) = (&h.mgmt, &self.root_table) else {
            anyhow::bail!("{} has no management link", h.name);
        };
        ip(&["link", "set", port, "up"])?;
        let _ = nft(
            None,
            &format!("delete element bridge {table} cut {{ \"{port}\" }}\n"),
        );
        Ok(())
    }

    /// Cuts `h` off everything: the link and fipd.
    pub fn cut_off(&self, h: &Host, how: Cut) -> Result<()> {
        self.cut_link(h, how)?;
        if h.mgmt.is_some() {
            self.cut_mgmt(h, how)?;
        }
        Ok(())
    }

    /// Undoes [`Topo::cut_off`].
    pub fn reconnect(&self, h: &Host) -> Result<()> {
        self.heal_link(h)?;
        if h.mgmt.is_some() {
            self.heal_mgmt(h)?;
        }
        Ok(())
    }
}
