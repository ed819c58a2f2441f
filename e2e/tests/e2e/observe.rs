//! The kit's observers (fip-testkit::observe) as the scenarios use them:
//! address monitors, held intervals, the double-holder check, a pinger.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use fip_agent::net::netlink::AddrEvent;
pub use fip_testkit::observe::longest_gap;

/// Records every IPv6 address event of a namespace with its arrival time
/// (the kernel's addresses at the start included).
pub struct AddrMonitor(fip_testkit::AddrMonitor);

impl AddrMonitor {
    pub fn start(ns: &str) -> Self {
        Self(fip_testkit::AddrMonitor::start(ns).unwrap_or_else(|e| panic!("{e:#}")))
    }

    pub fn stop(self) -> Vec<(Instant, AddrEvent)> {
        self.0.stop().unwrap_or_else(|e| panic!("{e:#}"))
    }
}

/// Intervals during which `addr` was held (present, neither tentative nor
/// dadfailed) in a host's events. The monitor's first dump shows what was
/// held when it started, so `_initially` is no longer needed.
pub fn usable_intervals(
    events: &[(Instant, AddrEvent)],
    addr: Ipv6Addr,
    _initially: Option<Instant>,
    end: Instant,
) -> Vec<(Instant, Instant)> {
    fip_testkit::usable_intervals(events, end)
        .remove(&addr)
        .unwrap_or_default()
}

/// Asserts that no instant has the address held on both hosts.
pub fn assert_no_double_holder(a: &[(Instant, Instant)], b: &[(Instant, Instant)]) {
    let f: Ipv6Addr = crate::harness::F.parse().unwrap();
    let per_host = [
        ("A".to_owned(), [(f, a.to_vec())].into_iter().collect()),
        ("B".to_owned(), [(f, b.to_vec())].into_iter().collect()),
    ];
    let d = fip_testkit::double_holders(&per_host);
    assert!(d.is_empty(), "F was held on A and B at once: {d:?}");
}

/// Pings `dst` from namespace `ns` every `every` until stopped.
pub struct Pinger(fip_testkit::Pinger);

impl Pinger {
    pub fn start(ns: &str, dst: Ipv6Addr, every: Duration) -> Self {
        Self(fip_testkit::Pinger::start(ns, dst, every).unwrap_or_else(|e| panic!("{e:#}")))
    }

    pub fn replies_after(&self, since: Instant) -> usize {
        self.0.replies_after(since)
    }

    pub fn stop(self) -> Vec<Instant> {
        self.0.stop()
    }
}
