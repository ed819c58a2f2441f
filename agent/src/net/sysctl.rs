//! Reads the IPv6 sysctls that decide how DAD and NAs behave, from the current network namespace.

use std::io;
use std::path::PathBuf;

use serde::Serialize;

/// `/proc/sys/net` shows the namespace of the reading thread, which is the
/// namespace the agent was started in (we never `setns`).
const CONF_ROOT: &str = "/proc/sys/net/ipv6/conf";
/// Neighbour-discovery timers (RetransTimer among them) live apart from `conf`.
const NEIGH_ROOT: &str = "/proc/sys/net/ipv6/neigh";

/// The IPv6 settings of one interface, each already combined with
/// `conf/all` the way the kernel combines them.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Ipv6Conf {
    /// The kernel skips DAD when both `all` and the interface are below 1,
    /// so the effective value is the maximum of the two.
    pub accept_dad: i32,
    pub dad_transmits: u32,
    pub retrans_time_ms: u32,
    /// Seconds; DAD waits a random delay up to this before its first probe.
    pub router_solicitation_delay: u32,
    /// The kernel honours IFA_F_OPTIMISTIC if either `all` or the interface enables it.
    pub optimistic_dad: bool,
    pub use_optimistic: bool,
    pub enhanced_dad: bool,
    /// Decides the Router flag of our NAs (RFC 4861 §7.2.4).
    pub forwarding: bool,
    pub disable_ipv6: bool,
    pub keep_addr_on_down: i32,
}

fn path(dev: &str, key: &str) -> PathBuf {
    [CONF_ROOT, dev, key].iter().collect()
}

/// Reads one integer sysctl of `conf/<dev>/<key>`.
pub fn read_int(dev: &str, key: &str) -> io::Result<i64> {
    read_int_at(path(dev, key))
}

fn read_int_at(p: PathBuf) -> io::Result<i64> {
    let s = std::fs::read_to_string(&p)?;
    s.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} holds {s:?}, not an integer", p.display()),
        )
    })
}

/// Whether `conf/<dev>` exists: it is missing when the interface does not
/// exist in this namespace or IPv6 is not available at all.
pub fn has_conf(dev: &str) -> bool {
    path(dev, "disable_ipv6").exists()
}

impl Ipv6Conf {
    pub fn read(dev: &str) -> io::Result<Self> {
        let dev_i = |k: &str| read_int(dev, k);
        let all_i = |k: &str| read_int("all", k);
        Ok(Self {
            accept_dad: dev_i("accept_dad")?.max(all_i("accept_dad")?) as i32,
            dad_transmits: dev_i("dad_transmits")? as u32,
            retrans_time_ms: read_int_at([NEIGH_ROOT, dev, "retrans_time_ms"].iter().collect())?
                as u32,
            router_solicitation_delay: dev_i("router_solicitation_delay")? as u32,
            optimistic_dad: dev_i("optimistic_dad")? != 0 || all_i("optimistic_dad")? != 0,
            use_optimistic: dev_i("use_optimistic")? != 0,
            enhanced_dad: dev_i("enhanced_dad")? != 0,
            forwarding: dev_i("forwarding")? != 0,
            disable_ipv6: dev_i("disable_ipv6")? != 0,
            keep_addr_on_down: dev_i("keep_addr_on_down")? as i32,
        })
    }

    /// Settings that make DAD or NAs not do what an operator expects.
    pub fn warnings(&self, dev: &str) -> Vec<String> {
        let mut w = Vec::new();
        if self.disable_ipv6 {
            w.push(format!(
                "IPv6 is disabled on {dev}: addresses cannot be added"
            ));
        }
        if self.accept_dad < 1 {
            w.push(format!(
                "accept_dad is 0 on {dev} and all: DAD is off, a duplicate address goes unnoticed"
            ));
        }
        if self.dad_transmits == 0 {
            w.push(format!(
                "dad_transmits is 0 on {dev}: DAD sends no probe, a duplicate address goes unnoticed"
            ));
        }
        if !self.optimistic_dad {
            w.push(format!(
                "optimistic_dad is 0 on {dev}: `add --dad optimistic` is unavailable"
            ));
        }
        if self.keep_addr_on_down < 1 {
            w.push(format!(
                "keep_addr_on_down is {} on {dev}: an admin `link down` deletes floating addresses",
                self.keep_addr_on_down
            ));
        }
        if self.forwarding {
            w.push(format!(
                "forwarding is on for {dev}: NAs carry the Router flag"
            ));
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Ipv6Conf {
        Ipv6Conf {
            accept_dad: 1,
            dad_transmits: 1,
            retrans_time_ms: 1000,
            router_solicitation_delay: 1,
            optimistic_dad: true,
            use_optimistic: false,
            enhanced_dad: true,
            forwarding: false,
            disable_ipv6: false,
            keep_addr_on_down: 1,
        }
    }

    #[test]
    fn a_healthy_interface_has_no_warnings() {
        assert!(healthy().warnings("eth0").is_empty());
    }

    #[test]
    fn dad_off_is_warned_about() {
        let c = Ipv6Conf {
            accept_dad: 0,
            ..healthy()
        };
        assert!(c.warnings("eth0")[0].contains("DAD is off"));
        let c = Ipv6Conf {
            dad_transmits: 0,
            ..healthy()
        };
        assert!(c.warnings("eth0")[0].contains("no probe"));
    }

    #[test]
    fn address_loss_on_link_down_is_warned_about() {
        let c = Ipv6Conf {
            keep_addr_on_down: 0,
            ..healthy()
        };
        assert!(c.warnings("eth0")[0].contains("link down"));
    }

    #[test]
    fn forwarding_and_missing_optimistic_dad_are_mentioned() {
        let c = Ipv6Conf {
            forwarding: true,
            optimistic_dad: false,
            ..healthy()
        };
        let w = c.warnings("eth0").join("\n");
        assert!(w.contains("Router flag") && w.contains("optimistic"));
    }
}
