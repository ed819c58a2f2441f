//! `AddressManager`: the DAD-safe add, confirmed remove, listing and announcing of managed addresses.

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rtnetlink::packet_route::address::AddressFlags;
use serde::Serialize;
use tokio::time::Instant;

use crate::addr::{FloatingAddr, Mac};
use crate::error::AgentError;
use crate::net::dad::{DadWatch, NdCaptures, Verdict};
use crate::net::monitor::AddrMonitor;
use crate::net::na::NaSender;
use crate::net::netlink::{AddrFlags, KernelAddr, Link, Netlink};
use crate::net::sysctl::{self, Ipv6Conf};
use crate::reconcile::plan::ObservedAddr;
use crate::reconcile::status::state_of;

/// IFA_PROTO value that marks an address as ours. The kernel reserves 0-3
/// (unspec, loopback, RA, link-local); 0xf1 ("fip") is unlikely to collide
/// with another tool, and `ip addr` shows it as `proto 0xf1`. Anything
/// without this mark is someone else's and is never changed or removed.
pub const FIP_ADDR_PROTO: u8 = 0xf1;

/// How the kernel runs DAD for a new address: one type for the wire and
/// the kernel (strict: RFC 4862; optimistic: RFC 4429; off: `nodad`).
pub use fip_types::DadMode;

#[derive(Debug, Clone)]
pub struct AddOptions {
    pub dad: DadMode,
    /// Upper bound on the wait for the DAD verdict.
    pub timeout: Duration,
    /// Valid and preferred lifetime; `None` is forever. The kernel removes
    /// the address itself when this runs out (the dead-man switch of §5).
    pub lifetime_s: Option<u32>,
}

impl Default for AddOptions {
    fn default() -> Self {
        Self {
            dad: DadMode::Strict,
            timeout: Duration::from_secs(10),
            lifetime_s: None,
        }
    }
}

/// RFC 4861 §7.2.6: a few NAs, the first at once, RetransTimer (1 s) apart.
#[derive(Debug, Clone)]
pub struct NaOptions {
    pub count: u32,
    pub interval: Duration,
}

impl Default for NaOptions {
    fn default() -> Self {
        Self {
            count: 3,
            interval: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Usable and not tentative (DAD passed, or was off).
    Active,
    /// Optimistic: usable now, the DAD verdict is still to come.
    Optimistic,
    /// Another node holds the address; our copy has been deleted.
    DadFailed,
}

/// What `add` found out. `dad_ms` is `None` when no DAD ran (already active).
#[derive(Debug, Clone, Serialize)]
pub struct AddOutcome {
    pub address: Ipv6Addr,
    pub prefix_len: u8,
    pub dev: String,
    pub outcome: Outcome,
    pub dad_ms: Option<u64>,
    pub defender_mac: Option<Mac>,
    /// `false` when the address was already healthy and managed: nothing was
    /// deleted and no DAD ran (lifetimes may have been refreshed).
    pub changed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoveOutcome {
    Removed,
    Absent,
}

/// A managed address as `list` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct ManagedAddr {
    pub address: Ipv6Addr,
    pub prefix_len: u8,
    pub dev: String,
    pub state: fip_types::ReportedState,
    pub flags: AddrFlags,
    /// Remaining seconds; `null` is forever.
    pub valid_lft_s: Option<u32>,
    pub preferred_lft_s: Option<u32>,
}

/// The preflight report of `check`.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub dev: String,
    pub ifindex: u32,
    pub mac: Option<Mac>,
    pub mtu: Option<u32>,
    pub admin_up: bool,
    pub carrier: bool,
    #[serde(flatten)]
    pub ipv6: Ipv6Conf,
    pub warnings: Vec<String>,
}

/// Result of starting an add: either nothing to do, or a DAD run in flight.
pub enum AddStart {
    AlreadyActive(AddOutcome),
    Pending(PendingDad),
}

/// An address the kernel holds tentative (or optimistic) while DAD runs.
pub struct PendingDad {
    nl: Netlink,
    link: Link,
    addr: FloatingAddr,
    mode: DadMode,
    watch: DadWatch,
    started: Instant,
    deadline: Instant,
    timeout: Duration,
}

impl PendingDad {
    /// Whether the address may already be used (optimistic or nodad):
    /// strict-mode callers must wait for [`PendingDad::verdict`].
    pub fn usable_now(&self) -> bool {
        self.mode != DadMode::Strict
    }

    pub fn optimistic_outcome(&self) -> AddOutcome {
        AddOutcome {
            address: self.addr.addr(),
            prefix_len: self.addr.prefix_len(),
            dev: self.link.name.clone(),
            outcome: Outcome::Optimistic,
            dad_ms: None,
            defender_mac: None,
            changed: true,
        }
    }

    /// Waits for the kernel's verdict. On failure the dadfailed copy is
    /// deleted (the kernel never retries it, and it would block a later
    /// add); on timeout the tentative copy is deleted and an error returned.
    pub async fn verdict(mut self) -> Result<AddOutcome, AgentError> {
        let verdict = self.watch.verdict(self.deadline).await;
        let dad_ms = self.started.elapsed().as_millis() as u64;
        let (a, dev) = (self.addr.addr(), self.link.name.clone());
        let outcome = |outcome, defender_mac| AddOutcome {
            address: a,
            prefix_len: self.addr.prefix_len(),
            dev: dev.clone(),
            outcome,
            dad_ms: Some(dad_ms),
            defender_mac,
            changed: true,
        };
        match verdict {
            Some(Verdict::Passed) => Ok(outcome(Outcome::Active, None)),
            Some(Verdict::Failed) => {
                let defender = self.watch.defender();
                delete_confirmed(&self.nl, &self.link, a, self.addr.prefix_len()).await?;
                Ok(outcome(Outcome::DadFailed, defender))
            }
            Some(Verdict::Removed) => {
                // The kernel keeps a failed copy (flagged dadfailed) only
                // for permanent addresses; one with finite lifetimes, as
                // the daemon adds, is deleted outright by addrconf_dad_stop.
                // A defender seen on the wire during DAD tells that apart
                // from a removal by someone else.
                if let Some(defender) = self.watch.defender() {
                    delete_confirmed(&self.nl, &self.link, a, self.addr.prefix_len()).await?;
                    return Ok(outcome(Outcome::DadFailed, Some(defender)));
                }
                Err(AgentError::RemovedDuringDad { addr: a, dev })
            }
            None => {
                delete_confirmed(&self.nl, &self.link, a, self.addr.prefix_len()).await?;
                Err(AgentError::DadTimeout {
                    addr: a,
                    dev,
                    timeout_ms: self.timeout.as_millis() as u64,
                })
            }
        }
    }
}

/// Deletes an address and checks the kernel no longer holds it.
async fn delete_confirmed(
    nl: &Netlink,
    link: &Link,
    addr: Ipv6Addr,
    prefix_len: u8,
) -> Result<(), AgentError> {
    match nl.del(link, addr, prefix_len).await {
        // Already gone (expired, or deleted by a racing tool): that is the goal.
        Err(AgentError::Kernel {
            errno_name: "EADDRNOTAVAIL",
            ..
        }) => {}
        other => other?,
    }
    // RTM_DELADDR is processed synchronously under RTNL, so the dump after
    // the ACK is authoritative.
    match nl.find(link.index, addr).await? {
        None => Ok(()),
        Some(_) => Err(AgentError::StillPresent {
            addr,
            dev: link.name.clone(),
        }),
    }
}

/// Sends a train of NAs for one address, re-checking before each NA that
/// the kernel still holds the address and that it is not tentative.
pub struct Announcer {
    nl: Netlink,
    link: Link,
    mac: Mac,
    addr: Ipv6Addr,
    router: bool,
    allow_optimistic: bool,
    sender: Arc<NaSender>,
    sent: u32,
    last: Option<Instant>,
}

impl Announcer {
    /// NAs sent so far.
    pub fn sent(&self) -> u32 {
        self.sent
    }

    /// Whether the NAs carry the Router flag (the interface forwards).
    pub fn router(&self) -> bool {
        self.router
    }

    /// Sends NAs until `total` have gone out, `interval` apart (the first at
    /// once if none was sent yet), calling `on_sent` with the running count.
    pub async fn send_until(
        &mut self,
        total: u32,
        interval: Duration,
        mut on_sent: impl FnMut(u32),
    ) -> Result<u32, AgentError> {
        while self.sent < total {
            if let Some(last) = self.last {
                tokio::time::sleep_until(last + interval).await;
            }
            self.send_one().await?;
            on_sent(self.sent);
        }
        Ok(self.sent)
    }

    async fn send_one(&mut self) -> Result<(), AgentError> {
        let (addr, dev) = (self.addr, self.link.name.clone());
        let k =
            self.nl
                .find(self.link.index, addr)
                .await?
                .ok_or_else(|| AgentError::NotPresent {
                    addr,
                    dev: dev.clone(),
                })?;
        if k.flags.dadfailed() {
            return Err(AgentError::Dadfailed { addr, dev });
        }
        // Announcing a tentative address would steal traffic from a node
        // that may still own it; optimistic mode accepts that risk because
        // the controller removed the address elsewhere first.
        if k.flags.tentative() && !(self.allow_optimistic && k.flags.optimistic()) {
            return Err(AgentError::Tentative { addr, dev });
        }
        self.sender
            .send(addr, self.mac, self.router)
            .map_err(|e| AgentError::io(format!("send NA for {addr} on {dev}"), e))?;
        self.sent += 1;
        self.last = Some(Instant::now());
        Ok(())
    }
}

/// The agent core: every operation runs in the network namespace the
/// manager was created in.
///
/// The sockets that would otherwise be opened per address are shared: one
/// address-event subscription, one NDP capture and one NA socket per
/// interface, so the cost of an add does not grow with the adds in flight.
#[derive(Clone)]
pub struct AddressManager {
    nl: Netlink,
    monitor: AddrMonitor,
    captures: NdCaptures,
    senders: Arc<Mutex<HashMap<u32, Arc<NaSender>>>>,
}

impl AddressManager {
    /// Must be called inside a tokio runtime.
    pub fn new() -> Result<Self, AgentError> {
        Ok(Self {
            nl: Netlink::new()?,
            monitor: AddrMonitor::start(),
            captures: NdCaptures::default(),
            senders: Arc::default(),
        })
    }

    /// A manager whose every address write passes the daemon's lease gate.
    pub fn gated(gate: Arc<crate::daemon::lease::Gate>) -> Result<Self, AgentError> {
        let mut m = Self::new()?;
        m.nl = m.nl.gated(gate);
        Ok(m)
    }

    /// Checks that this kernel keeps the IFA_PROTO mark on addresses: adds
    /// a marked ULA /128 to `lo` (no DAD, a 5 s lifetime as a backstop),
    /// reads it back and deletes it. Kernels before 5.18 drop the mark; on
    /// them the agent would take its own addresses for foreign ones.
    pub async fn check_address_mark(&self) -> Result<(), AgentError> {
        let nl = Netlink::new()?;
        let lo = nl.link("lo").await?;
        let probe = Ipv6Addr::new(
            0xfd00,
            0xf1f1,
            0,
            0,
            0,
            0,
            (std::process::id() >> 16) as u16,
            std::process::id() as u16,
        );
        let addr = FloatingAddr::new(probe, 128)?;
        let read_back = match nl
            .add(
                &lo,
                addr,
                AddressFlags::Nodad,
                Some(5),
                FIP_ADDR_PROTO,
                false,
            )
            .await
        {
            Ok(()) => {
                let k = nl.find(lo.index, probe).await;
                let _ = nl.del(&lo, probe, 128).await;
                Some(k?.map(|k| k.proto))
            }
            // IPv6 off on `lo` (or the like): judge by the kernel's version.
            Err(_) => None,
        };
        let release = kernel_release();
        if address_mark_kept(read_back, &release) {
            Ok(())
        } else {
            Err(AgentError::NoAddressMark { release })
        }
    }

    pub fn netlink(&self) -> &Netlink {
        &self.nl
    }

    /// The agent's address-event subscription.
    pub fn monitor(&self) -> &AddrMonitor {
        &self.monitor
    }

    /// The NA socket of interface `index`, opened on first use.
    fn na_sender(&self, index: u32, dev: &str) -> Result<Arc<NaSender>, AgentError> {
        let mut senders = self.senders.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = senders.get(&index) {
            return Ok(s.clone());
        }
        let s = Arc::new(
            NaSender::open(index)
                .map_err(|e| AgentError::io(format!("open raw ICMPv6 socket on {dev}"), e))?,
        );
        senders.insert(index, s.clone());
        Ok(s)
    }

    pub async fn link(&self, dev: &str) -> Result<Link, AgentError> {
        self.nl.link(dev).await
    }

    /// The interface's IPv6 sysctls; an interface without a conf directory
    /// has no IPv6 at all.
    pub fn ipv6_conf(&self, dev: &str) -> Result<Ipv6Conf, AgentError> {
        ipv6_conf(dev)
    }

    /// Adds `addr` with DAD and waits for the verdict. Does not announce.
    pub async fn add(
        &self,
        dev: &str,
        addr: FloatingAddr,
        opts: &AddOptions,
    ) -> Result<AddOutcome, AgentError> {
        match self.begin_add(dev, addr, opts).await? {
            AddStart::AlreadyActive(o) => Ok(o),
            AddStart::Pending(p) => p.verdict().await,
        }
    }

    /// Starts an add: validates the interface, adopts a healthy managed copy
    /// (no delete, no new DAD), replaces a dadfailed one, and otherwise adds
    /// the address with the watch already listening.
    pub async fn begin_add(
        &self,
        dev: &str,
        addr: FloatingAddr,
        opts: &AddOptions,
    ) -> Result<AddStart, AgentError> {
        let link = self.nl.link(dev).await?;
        let conf = self.ipv6_conf(dev)?;
        if conf.disable_ipv6 {
            return Err(AgentError::Ipv6Disabled {
                dev: dev.to_owned(),
            });
        }
        if opts.dad == DadMode::Optimistic && !conf.optimistic_dad {
            return Err(AgentError::OptimisticDadOff {
                dev: dev.to_owned(),
            });
        }
        // Listen first: an address found tentative below may reach its
        // verdict at any moment, and a new add starts DAD at once.
        let watch = DadWatch::start(&self.nl, &self.monitor, &self.captures, &link, addr.addr());
        let started = Instant::now();
        let deadline = started + opts.timeout;
        let pending = |watch, mode| PendingDad {
            nl: self.nl.clone(),
            link: link.clone(),
            addr,
            mode,
            watch,
            started,
            deadline,
            timeout: opts.timeout,
        };
        if let Some(k) = self.nl.find(link.index, addr.addr()).await? {
            if k.proto != FIP_ADDR_PROTO {
                return Err(AgentError::NotManaged {
                    addr: addr.addr(),
                    dev: dev.to_owned(),
                    proto: FIP_ADDR_PROTO,
                    hint: "; remove it with `ip address del` first if it should float",
                });
            }
            let same_prefix = k.prefix_len == addr.prefix_len();
            if !k.flags.dadfailed() && same_prefix {
                if let Some(l) = opts.lifetime_s {
                    // NLM_F_REPLACE updates lifetimes in place; it neither
                    // deletes the address nor restarts DAD.
                    self.nl
                        .add(
                            &link,
                            addr,
                            current_add_flags(k.flags),
                            Some(l),
                            FIP_ADDR_PROTO,
                            true,
                        )
                        .await?;
                }
                if k.flags.tentative() {
                    // An earlier run's DAD is still going: wait for it
                    // rather than restart it.
                    let mode = if k.flags.optimistic() {
                        DadMode::Optimistic
                    } else {
                        DadMode::Strict
                    };
                    return Ok(AddStart::Pending(pending(watch, mode)));
                }
                return Ok(AddStart::AlreadyActive(AddOutcome {
                    address: addr.addr(),
                    prefix_len: addr.prefix_len(),
                    dev: link.name.clone(),
                    outcome: Outcome::Active,
                    dad_ms: None,
                    defender_mac: None,
                    changed: false,
                }));
            }
            // A dadfailed copy never recovers, and a different prefix length
            // is a different address to the kernel: start over.
            delete_confirmed(&self.nl, &link, k.addr, k.prefix_len).await?;
        }
        let flags = match opts.dad {
            DadMode::Strict => AddressFlags::empty(),
            DadMode::Optimistic => AddressFlags::Optimistic,
            DadMode::Off => AddressFlags::Nodad,
        };
        self.nl
            .add(&link, addr, flags, opts.lifetime_s, FIP_ADDR_PROTO, false)
            .await?;
        Ok(AddStart::Pending(pending(watch, opts.dad)))
    }

    /// The whole DAD-safe add of design §4: add, wait for the verdict, then
    /// announce. `report` is called with each result line as soon as it is
    /// known: once the verdict is in and the first NA is out (and, with
    /// `--dad optimistic`, once before the verdict, when the first NA for
    /// the usable optimistic address is out). Returns the final outcome and
    /// the number of NAs sent.
    pub async fn add_and_announce(
        &self,
        dev: &str,
        addr: FloatingAddr,
        opts: &AddOptions,
        na: &NaOptions,
        mut report: impl FnMut(&AddOutcome, u32),
    ) -> Result<(AddOutcome, u32), AgentError> {
        let pending = match self.begin_add(dev, addr, opts).await? {
            AddStart::AlreadyActive(o) => {
                // Adopted as is: no new DAD, so nothing new to announce.
                report(&o, 0);
                return Ok((o, 0));
            }
            AddStart::Pending(p) => p,
        };
        let mut announcer = None;
        if pending.mode == DadMode::Optimistic {
            // The controller removed the address from its previous host
            // before sending it here, so announcing before the verdict
            // cannot steal it from a live owner (docs/agent.md).
            let mut sent = 0;
            if na.count > 0 {
                // DAD can fail (or the address vanish: the kernel deletes
                // a failed copy with finite lifetimes) before the first NA,
                // even before the announcer is set up: then there is
                // nothing to announce, and the verdict below reports what
                // happened, with the defender's MAC.
                match self.announcer(dev, addr.addr(), true, false).await {
                    Ok(mut a) => {
                        match a.send_until(1, na.interval, |_| {}).await {
                            Ok(n) => sent = n,
                            Err(AgentError::Dadfailed { .. } | AgentError::NotPresent { .. }) => {}
                            Err(e) => return Err(e),
                        }
                        announcer = Some(a);
                    }
                    Err(AgentError::Dadfailed { .. } | AgentError::NotPresent { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            report(&pending.optimistic_outcome(), sent);
        }
        let outcome = pending.verdict().await?;
        if outcome.outcome != Outcome::Active || na.count == 0 {
            let sent = announcer.as_ref().map_or(0, Announcer::sent);
            report(&outcome, sent);
            return Ok((outcome, sent));
        }
        let mut a = match announcer {
            Some(a) => a,
            None => self.announcer(dev, addr.addr(), false, false).await?,
        };
        if a.sent() == 0 {
            a.send_until(1, na.interval, |_| {}).await?;
        }
        report(&outcome, a.sent());
        let sent = a.send_until(na.count, na.interval, |_| {}).await?;
        Ok((outcome, sent))
    }

    /// Removes a managed address and confirms the kernel no longer holds it.
    /// `force` also removes an address the agent does not manage.
    pub async fn remove(
        &self,
        dev: &str,
        addr: Ipv6Addr,
        force: bool,
    ) -> Result<RemoveOutcome, AgentError> {
        let link = self.nl.link(dev).await?;
        let Some(k) = self.nl.find(link.index, addr).await? else {
            return Ok(RemoveOutcome::Absent);
        };
        if k.proto != FIP_ADDR_PROTO && !force {
            return Err(AgentError::NotManaged {
                addr,
                dev: dev.to_owned(),
                proto: FIP_ADDR_PROTO,
                hint: "; pass --force to remove it anyway",
            });
        }
        delete_confirmed(&self.nl, &link, addr, k.prefix_len).await?;
        Ok(RemoveOutcome::Removed)
    }

    /// Sets fresh lifetimes on a managed address without restarting DAD.
    pub async fn refresh_lifetime(
        &self,
        dev: &str,
        addr: FloatingAddr,
        lifetime_s: u32,
    ) -> Result<(), AgentError> {
        let link = self.nl.link(dev).await?;
        let k = self
            .nl
            .find(link.index, addr.addr())
            .await?
            .filter(|k| k.proto == FIP_ADDR_PROTO)
            .ok_or_else(|| AgentError::NotPresent {
                addr: addr.addr(),
                dev: dev.to_owned(),
            })?;
        self.refresh_lifetime_seen(&link, addr, k.flags, lifetime_s)
            .await
    }

    /// [`AddressManager::refresh_lifetime`] of a managed address the caller
    /// has just seen with `flags` (no lookups: a lease renewal refreshes
    /// every address at once).
    pub async fn refresh_lifetime_seen(
        &self,
        link: &Link,
        addr: FloatingAddr,
        flags: AddrFlags,
        lifetime_s: u32,
    ) -> Result<(), AgentError> {
        self.nl
            .add(
                link,
                addr,
                current_add_flags(flags),
                Some(lifetime_s),
                FIP_ADDR_PROTO,
                true,
            )
            .await
    }

    /// Managed addresses, optionally of one interface.
    pub async fn list_managed(&self, dev: Option<&str>) -> Result<Vec<ManagedAddr>, AgentError> {
        Ok(self
            .observed(dev)
            .await?
            .into_iter()
            .filter(|o| o.managed)
            .map(|o| ManagedAddr {
                address: o.addr,
                prefix_len: o.prefix_len,
                dev: o.dev,
                state: state_of(o.flags),
                flags: o.flags,
                valid_lft_s: o.valid_lft,
                preferred_lft_s: o.preferred_lft,
            })
            .collect())
    }

    /// Every global/ULA IPv6 address the kernel holds (managed or not), the
    /// observed side of a reconcile plan.
    pub async fn observed(&self, dev: Option<&str>) -> Result<Vec<ObservedAddr>, AgentError> {
        let (index, names) = match dev {
            Some(d) => {
                let l = self.nl.link(d).await?;
                (Some(l.index), vec![(l.index, l.name)])
            }
            None => (None, self.nl.link_names().await?),
        };
        let name_of = |i: u32| {
            names
                .iter()
                .find(|(n, _)| *n == i)
                .map(|(_, s)| s.clone())
                .unwrap_or_else(|| format!("if{i}"))
        };
        let mut out: Vec<ObservedAddr> = self
            .nl
            .addresses(index)
            .await?
            .into_iter()
            .filter(|k: &KernelAddr| !k.addr.is_unicast_link_local() && !k.addr.is_loopback())
            .map(|k| ObservedAddr {
                dev: name_of(k.index),
                addr: k.addr,
                prefix_len: k.prefix_len,
                flags: k.flags,
                managed: k.proto == FIP_ADDR_PROTO,
                valid_lft: k.valid_lft,
                preferred_lft: k.preferred_lft,
            })
            .collect();
        out.sort_by(|a, b| (&a.dev, a.addr).cmp(&(&b.dev, b.addr)));
        Ok(out)
    }

    /// Prepares NAs for an address present on `dev`. Only managed addresses
    /// unless `force`; `allow_optimistic` permits announcing an optimistic
    /// (still tentative) address.
    pub async fn announcer(
        &self,
        dev: &str,
        addr: Ipv6Addr,
        allow_optimistic: bool,
        force: bool,
    ) -> Result<Announcer, AgentError> {
        let link = self.nl.link(dev).await?;
        let mac = link.mac.ok_or_else(|| AgentError::NoMac {
            dev: dev.to_owned(),
        })?;
        let conf = self.ipv6_conf(dev)?;
        let k = self
            .nl
            .find(link.index, addr)
            .await?
            .ok_or_else(|| AgentError::NotPresent {
                addr,
                dev: dev.to_owned(),
            })?;
        if k.proto != FIP_ADDR_PROTO && !force {
            return Err(AgentError::NotManaged {
                addr,
                dev: dev.to_owned(),
                proto: FIP_ADDR_PROTO,
                hint: "; pass --force to announce it anyway",
            });
        }
        let sender = self.na_sender(link.index, dev)?;
        Ok(Announcer {
            nl: self.nl.clone(),
            link,
            mac,
            addr,
            router: conf.forwarding,
            allow_optimistic,
            sender,
            sent: 0,
            last: None,
        })
    }

    /// Preflight for one interface.
    pub async fn check(&self, dev: &str) -> Result<CheckReport, AgentError> {
        check(&self.nl, dev).await
    }
}

/// The running kernel's release, e.g. `6.1.0-18-amd64`.
fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// Whether the kernel keeps the IFA_PROTO mark: by what a probe address
/// read back (`Some(proto)`, `Some(None)` when it vanished), else by the
/// release (5.18 added IFA_PROTO for IPv6).
fn address_mark_kept(read_back: Option<Option<u8>>, release: &str) -> bool {
    match read_back {
        Some(proto) => proto == Some(FIP_ADDR_PROTO),
        None => {
            let mut parts = release.split(|c: char| !c.is_ascii_digit());
            let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            (major, minor) >= (5, 18)
        }
    }
}

/// Preflight for one interface, on any netlink connection (the daemon's
/// lease renewal uses its own, so it never queues behind address changes).
pub async fn check(nl: &Netlink, dev: &str) -> Result<CheckReport, AgentError> {
    let link = nl.link(dev).await?;
    let ipv6 = ipv6_conf(dev)?;
    let mut warnings = ipv6.warnings(dev);
    if !link.admin_up {
        warnings.insert(0, format!("{dev} is administratively down: DAD cannot run"));
    } else if !link.carrier {
        warnings.insert(0, format!("{dev} has no carrier: DAD waits for the link"));
    }
    if link.mac.is_none() {
        warnings.push(format!("{dev} has no MAC address: NAs cannot be sent"));
    }
    Ok(CheckReport {
        dev: link.name.clone(),
        ifindex: link.index,
        mac: link.mac,
        mtu: link.mtu,
        admin_up: link.admin_up,
        carrier: link.carrier,
        ipv6,
        warnings,
    })
}

fn ipv6_conf(dev: &str) -> Result<Ipv6Conf, AgentError> {
    if !sysctl::has_conf(dev) {
        return Err(AgentError::Ipv6Disabled {
            dev: dev.to_owned(),
        });
    }
    Ipv6Conf::read(dev).map_err(|e| AgentError::io(format!("read IPv6 sysctls of {dev}"), e))
}

/// The flags to pass back on a replace so it does not change the address's
/// DAD mode: only `nodad` is a request flag worth keeping; state flags
/// (tentative, dadfailed, ...) belong to the kernel.
fn current_add_flags(f: AddrFlags) -> AddressFlags {
    if f.nodad() {
        AddressFlags::Nodad
    } else {
        AddressFlags::empty()
    }
}

#[cfg(test)]
mod mark_tests {
    use super::*;

    /// Issue 10 item 7: a kernel that drops the mark is refused.
    #[test]
    fn the_address_mark_is_judged_by_the_probe_then_the_release() {
        assert!(address_mark_kept(Some(Some(FIP_ADDR_PROTO)), "4.19.0"));
        assert!(!address_mark_kept(Some(Some(0)), "6.1.0"));
        assert!(!address_mark_kept(Some(None), "6.1.0"));
        assert!(address_mark_kept(None, "5.18.0-1-amd64"));
        assert!(address_mark_kept(None, "6.1.0-18-amd64"));
        assert!(!address_mark_kept(None, "5.15.0-91-generic"));
        assert!(!address_mark_kept(None, "4.19.0"));
        assert!(!address_mark_kept(None, "unknown"));
    }
}
