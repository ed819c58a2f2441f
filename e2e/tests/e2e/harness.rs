//! The e2e view of the kit's topology (fip-testkit): hosts A and B (with
//! agents and management links to fipd), client C and optionally squatter
//! S on one bridge; fipd and fip-agent as real child processes. The kit
//! tears everything down when it is dropped, also when a test panics.

use std::path::Path;
use std::time::Duration;

use fip_testkit::topo::{Cut, HostSpec, TopoSpec};
pub use fip_testkit::Proc;

/// The data interface in every host namespace.
pub const DEV: &str = "eth0";
/// The fipd network name the agents serve on eth0.
pub const NET: &str = "public";
/// The pool; a /64 so C reaches F on-link.
pub const POOL: &str = "2001:db8:1::/64";
/// The floating address the scenarios move around.
pub const F: &str = "2001:db8:1::100";
/// C's own address in the pool's /64.
pub const C_ADDR: &str = "2001:db8:1::c";
pub const ADMIN: &str = "e2e-admin-token";

/// Runs `ip`, panicking with its stderr on failure.
pub fn ip(args: &[&str]) -> String {
    fip_testkit::ip(args).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Polls `cond` every 10 ms until it holds, panicking after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, cond: impl FnMut() -> bool) {
    fip_testkit::wait_for(what, timeout, cond).unwrap_or_else(|e| panic!("{e:#}"));
}

/// A host as the scenarios see it.
pub struct Host {
    pub kit: fip_testkit::Host,
    pub name: String,
    pub ns: String,
    pub mac: String,
}

impl Host {
    fn of(kit: &fip_testkit::Host) -> Self {
        Self {
            kit: kit.clone(),
            name: kit.name.clone(),
            ns: kit.ns.clone(),
            mac: kit.mac.clone(),
        }
    }

    /// Whether `a` is on eth0, and its flags line.
    pub fn addr_line(&self, a: &str) -> Option<String> {
        self.kit.addr_line(a).unwrap_or_else(|e| panic!("{e:#}"))
    }

    pub fn has_addr(&self, a: &str) -> bool {
        self.addr_line(a).is_some()
    }

    /// The MAC this host's neighbour cache holds for `a`.
    pub fn neigh_mac(&self, a: &str) -> Option<String> {
        self.kit.neigh_mac(a).unwrap_or_else(|e| panic!("{e:#}"))
    }
}

/// Hosts A and B (with management links to fipd), client C and optionally
/// squatter S on one bridge.
pub struct Topo {
    pub kit: fip_testkit::Topo,
    /// fipd's address on the management bridge (root namespace).
    pub mgmt_ip: String,
    pub a: Host,
    pub b: Host,
    pub c: Host,
    pub s: Option<Host>,
}

impl Topo {
    pub fn new(with_squatter: bool) -> Self {
        Self::with(with_squatter, false)
    }

    /// With `optimistic`, A and B have `optimistic_dad=1`.
    pub fn with(with_squatter: bool, optimistic: bool) -> Self {
        let mut hosts = vec![
            HostSpec::new("a", "02:00:00:00:00:0a")
                .mgmt()
                .optimistic(optimistic),
            HostSpec::new("b", "02:00:00:00:00:0b")
                .mgmt()
                .optimistic(optimistic),
            HostSpec::new("c", "02:00:00:00:00:0c").addr(&format!("{C_ADDR}/64")),
        ];
        if with_squatter {
            hosts.push(HostSpec::new("5", "02:00:00:00:00:05"));
        }
        let kit = fip_testkit::Topo::build(&TopoSpec { hosts }).unwrap_or_else(|e| panic!("{e:#}"));
        Topo {
            mgmt_ip: kit.mgmt_ip.clone().expect("A and B have management links"),
            a: Host::of(kit.host("a")),
            b: Host::of(kit.host("b")),
            c: Host::of(kit.host("c")),
            s: with_squatter.then(|| Host::of(kit.host("5"))),
            kit,
        }
    }

    /// Cuts host `h` off the link and fipd with its carrier down (its
    /// bridge and management ports go down on the far side, so its own
    /// interfaces stay admin-up and keep their addresses).
    pub fn cut_off(&self, h: &Host) {
        self.kit
            .cut_off(&h.kit, Cut::Carrier)
            .unwrap_or_else(|e| panic!("{e:#}"));
    }

    /// Cuts host `h` off fipd only, its frames dropped (carrier up); the
    /// data link stays.
    pub fn cut_mgmt(&self, h: &Host) {
        self.kit
            .cut_mgmt(&h.kit, Cut::Frames)
            .unwrap_or_else(|e| panic!("{e:#}"));
    }

    pub fn heal_mgmt(&self, h: &Host) {
        self.kit
            .heal_mgmt(&h.kit)
            .unwrap_or_else(|e| panic!("{e:#}"));
    }

    /// Cuts host `h` off the link and fipd, its frames dropped at both
    /// bridges and its carrier up (a real partition).
    pub fn partition(&self, h: &Host) {
        self.kit
            .cut_off(&h.kit, Cut::Frames)
            .unwrap_or_else(|e| panic!("{e:#}"));
    }

    /// Undoes [`Topo::cut_off`] and [`Topo::partition`].
    pub fn reconnect(&self, h: &Host) {
        self.kit
            .reconnect(&h.kit)
            .unwrap_or_else(|e| panic!("{e:#}"));
    }
}

/// Settings of a fipd process.
#[derive(Clone)]
pub struct FipdOpts {
    pub lease_ttl_ms: u64,
    pub fence_grace_ms: u64,
    pub database_url: Option<String>,
    /// Reuse this port (a restart).
    pub port: u16,
    /// fipd's `--dad-mode` (strict when `None`).
    pub dad_mode: Option<&'static str>,
}

impl Default for FipdOpts {
    fn default() -> Self {
        Self {
            lease_ttl_ms: 1500,
            fence_grace_ms: 1000,
            database_url: None,
            port: 0,
            dad_mode: None,
        }
    }
}

/// Starts `fipd serve` listening on `[ip]:port` and returns it with its URL.
pub fn start_fipd(name: &str, ip_addr: &str, data_dir: &Path, opts: &FipdOpts) -> (Proc, String) {
    let mut spec =
        fip_testkit::FipdSpec::new(name, &format!("[{ip_addr}]:{}", opts.port), data_dir);
    spec.admin_token = ADMIN.into();
    spec.lease_ttl_ms = Some(opts.lease_ttl_ms);
    spec.fence_grace_ms = Some(opts.fence_grace_ms);
    spec.database_url = opts.database_url.clone();
    spec.dad_mode = opts.dad_mode.map(str::to_owned);
    fip_testkit::start_fipd(&spec).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Starts `fip-agent run` inside host `h`'s namespace.
pub fn start_agent(h: &Host, url: &str, token_file: &Path, dir: &Path, generation: u32) -> Proc {
    let log = dir.join(format!("agent-{}-{generation}.log", h.name));
    let spec = fip_testkit::AgentSpec::new(url, token_file, NET, &log);
    fip_testkit::start_agent(&h.kit, &spec).unwrap_or_else(|e| panic!("{e:#}"))
}
