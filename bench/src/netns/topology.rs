//! The namespace topology of scripts/demo.sh, built by the kit
//! (fip-testkit): hosts A and B and client C on one bridge, a management
//! bridge in the root namespace where fipd listens. DAD and neighbour
//! settings stay at the kernel's defaults: the figures are about what an
//! operator gets. Dropping it deletes every namespace and link it made.

use std::time::Duration;

use anyhow::Result;
use fip_testkit::topo::{Cut, Dad, HostSpec, TopoSpec};

pub use fip_testkit::net::enter_ns;
pub use fip_testkit::{ip, sysctl};

/// The data interface in every host namespace.
pub const DEV: &str = "eth0";
/// The pool of the floating addresses; C's address is reserved in it.
pub const POOL: &str = "2001:db8:100::/64";
pub const C_ADDR: &str = "2001:db8:100::c";

/// Polls `cond` every 10 ms until it holds; an error after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, cond: impl FnMut() -> bool) -> Result<()> {
    fip_testkit::wait_for(what, timeout, cond)
}

pub struct Host {
    pub kit: fip_testkit::Host,
    /// fipd host name, also what the probe responder answers.
    pub name: String,
    pub ns: String,
}

impl Host {
    fn of(kit: &fip_testkit::Host) -> Self {
        Self {
            kit: kit.clone(),
            name: kit.name.clone(),
            ns: kit.ns.clone(),
        }
    }

    /// Whether the kernel of this host holds `addr` on eth0 (any state).
    pub fn holds(&self, addr: &str) -> Result<bool> {
        self.kit.has_addr(addr)
    }

    /// Whether `addr` is on eth0 and DAD is over (not tentative).
    pub fn holds_usable(&self, addr: &str) -> Result<bool> {
        self.kit.holds_usable(addr)
    }
}

pub struct Topo {
    pub kit: fip_testkit::Topo,
    /// fipd's address on the management bridge.
    pub mgmt_ip: String,
    pub a: Host,
    pub b: Host,
    pub c: Host,
}

impl Topo {
    pub fn new() -> Result<Self> {
        let spec = TopoSpec {
            hosts: vec![
                HostSpec::new("a", "02:00:00:00:00:0a")
                    .mgmt()
                    .dad(Dad::KernelDefault),
                HostSpec::new("b", "02:00:00:00:00:0b")
                    .mgmt()
                    .dad(Dad::KernelDefault),
                HostSpec::new("c", "02:00:00:00:00:0c")
                    .dad(Dad::KernelDefault)
                    .addr(&format!("{C_ADDR}/64")),
            ],
        };
        let kit = fip_testkit::Topo::build(&spec)?;
        Ok(Topo {
            mgmt_ip: kit.mgmt_ip.clone().expect("A and B have management links"),
            a: Host::of(kit.host("a")),
            b: Host::of(kit.host("b")),
            c: Host::of(kit.host("c")),
            kit,
        })
    }

    /// Cuts host `h` off the link and fipd: with `Cut::Carrier` its ports
    /// go down on the far side (its own interfaces stay up and keep their
    /// addresses); with `Cut::Frames` its frames are dropped at the
    /// bridges and its carrier stays up.
    pub fn cut_off(&self, h: &Host, how: Cut) -> Result<()> {
        self.kit.cut_off(&h.kit, how)
    }

    pub fn reconnect(&self, h: &Host) -> Result<()> {
        self.kit.reconnect(&h.kit)
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
