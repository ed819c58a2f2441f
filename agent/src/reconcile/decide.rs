//! The decision half of a reconcile pass (docs/agent-daemon.md, "The
//! reconcile loop"): from the desired state, one read of the kernel and the
//! adds the daemon knows of, which addresses to remove, which to add, and
//! what to report. Pure, so every ordering rule is unit-tested here; the
//! daemon (`daemon::reconciler`) only executes the result.
//!
//! The rule this module exists for: a removal is confirmed to fipd only
//! from a kernel read taken after every add of that address had ended. An
//! add the daemon still counts as in flight may put the address into the
//! kernel after the read; one that ended during or after the read may have
//! done so too. Either way the read proves nothing, and the next pass
//! decides again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv6Addr;

use fip_types::{DesiredAddress, DesiredState, ReportedState};
use uuid::Uuid;

use super::plan::{plan, BlockReason, DesiredAddr, ObservedAddr};
use crate::addr::FloatingAddr;

/// (interface, address): how the kernel, and the plan, key an address.
pub type Key = (String, Ipv6Addr);

/// The shortest prefix a desired address may carry. A floating address
/// installs an on-link route for its pool's prefix; anything shorter than
/// /16 would claim a large part of the address space as on-link.
pub const MIN_PREFIX_LEN: u8 = 16;

/// What one pass read from the kernel.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// This read's number. Reads are numbered in the order they start,
    /// and an add that ended is stamped with the number of the newest read
    /// started before it ended ([`AddTrack::ended_at`]).
    pub seq: u64,
    /// Per served interface.
    pub devs: BTreeMap<String, DevView>,
    /// Addresses on interfaces this agent does not serve, read when a
    /// removal names a network it does not serve (a copy left by an
    /// earlier configuration must not be confirmed gone).
    pub unserved: Option<Vec<ObservedAddr>>,
}

/// One served interface as the kernel showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevView {
    Read(Vec<ObservedAddr>),
    /// The interface does not exist: its addresses went with it.
    Vanished,
    /// The kernel could not be read; nothing about it is known.
    Unreadable(String),
}

/// The adds of one (interface, address) the daemon knows of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddTrack {
    /// An add task runs (as far as the daemon has heard).
    pub in_flight: bool,
    /// That task's DAD passed and its first NA is out; it only sends the
    /// remaining NAs.
    pub announced: bool,
    /// The read number current when the last add of this key ended.
    pub ended_at: Option<u64>,
}

/// Everything a pass decides from.
pub struct Inputs<'a> {
    pub desired: &'a DesiredState,
    /// (network, interface) pairs this agent serves.
    pub networks: &'a [(String, String)],
    /// Whether this pass may add: the lease is valid, the agent is not
    /// fenced, and the desired state was fetched after the lease began.
    pub may_add: bool,
    pub obs: &'a Observation,
    pub adds: &'a HashMap<Key, AddTrack>,
    /// Floating IPs whose next try after a failure is not due yet.
    pub backing_off: &'a HashSet<Uuid>,
    /// Kernel lifetime for new addresses.
    pub lifetime_s: Option<u32>,
}

/// A report a pass makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Say {
    pub id: Uuid,
    pub revision: i64,
    pub state: ReportedState,
    pub detail: Option<String>,
}

/// A managed address to delete, and the removals that deleting it
/// confirms once the kernel no longer holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub addr: ObservedAddr,
    pub confirms: Vec<(Uuid, i64)>,
}

/// An add to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddJob {
    pub key: Key,
    pub addr: FloatingAddr,
    pub desired: DesiredAddress,
    /// A copy is in the kernel and still tentative (an earlier run's DAD):
    /// wait for its verdict instead of restarting DAD.
    pub adopt_tentative: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Delete these first (design §4: removals before additions).
    pub remove: Vec<Removal>,
    /// Then start these.
    pub add: Vec<AddJob>,
    /// Level-triggered observations: sent only when they differ from the
    /// last report for that floating IP.
    pub say: Vec<Say>,
    /// Served interfaces whose addresses could not be read.
    pub unreadable: Vec<(String, String)>,
}

/// The interface a network is served on.
fn dev_of<'n>(networks: &'n [(String, String)], network: &str) -> Option<&'n str> {
    networks
        .iter()
        .find(|(n, _)| n == network)
        .map(|(_, d)| d.as_str())
}

/// The (interface, address) keys the desired state wants on this host: an
/// add in flight for any other key is stopped before the kernel is read.
pub fn wanted_keys(desired: &DesiredState, networks: &[(String, String)]) -> HashSet<Key> {
    desired
        .addresses
        .iter()
        .filter_map(|a| Some((dev_of(networks, &a.network)?.to_owned(), a.address)))
        .collect()
}

/// The address a desired entry asks for, if it is one this agent applies.
fn floating(d: &DesiredAddress) -> Result<FloatingAddr, String> {
    if d.prefix_len < MIN_PREFIX_LEN {
        return Err(format!(
            "fipd asked for {}/{}: a prefix shorter than /{MIN_PREFIX_LEN} would make most of the address space on-link; refused",
            d.address, d.prefix_len
        ));
    }
    FloatingAddr::new(d.address, d.prefix_len).map_err(|e| e.to_string())
}

/// Decides one pass.
pub fn decide(inp: &Inputs<'_>) -> Decision {
    let mut out = Decision::default();
    let track = |k: &Key| inp.adds.get(k).copied().unwrap_or_default();
    let served: Vec<&str> = inp.networks.iter().map(|(n, _)| n.as_str()).collect();

    // Desired entries this agent can apply, per interface.
    let mut want: BTreeMap<String, Vec<DesiredAddr>> = BTreeMap::new();
    let mut meta: HashMap<Key, &DesiredAddress> = HashMap::new();
    for d in &inp.desired.addresses {
        let say_error = |detail: String| Say {
            id: d.floating_ip_id,
            revision: d.revision,
            state: ReportedState::Error,
            detail: Some(detail),
        };
        let Some(dev) = dev_of(inp.networks, &d.network) else {
            out.say.push(say_error(format!(
                "network {} is not served by this agent (it serves: {})",
                d.network,
                served.join(", ")
            )));
            continue;
        };
        let addr = match floating(d) {
            Ok(a) => a,
            Err(e) => {
                out.say.push(say_error(e));
                continue;
            }
        };
        match inp.obs.devs.get(dev) {
            Some(DevView::Read(_)) => {}
            Some(DevView::Vanished) => {
                out.say
                    .push(say_error(format!("interface {dev} does not exist")));
                continue;
            }
            // Unknown: neither add nor report until the kernel answers.
            Some(DevView::Unreadable(_)) | None => continue,
        }
        want.entry(dev.to_owned()).or_default().push(DesiredAddr {
            dev: dev.to_owned(),
            addr,
            lifetime_s: inp.lifetime_s,
        });
        meta.insert((dev.to_owned(), d.address), d);
    }
    let wanted_ids: HashSet<Uuid> = inp
        .desired
        .addresses
        .iter()
        .map(|a| a.floating_ip_id)
        .collect();

    // Per interface: the plan, then what of it this pass may do.
    let mut removing: BTreeMap<Key, usize> = BTreeMap::new();
    for (dev, view) in &inp.obs.devs {
        let observed = match view {
            DevView::Read(v) => v,
            DevView::Vanished => continue,
            DevView::Unreadable(e) => {
                out.unreadable.push((dev.clone(), e.clone()));
                continue;
            }
        };
        let wanted = want.get(dev).map(Vec::as_slice).unwrap_or(&[]);
        let p = plan(wanted, observed);
        for o in &p.to_remove {
            let key = (o.dev.clone(), o.addr);
            // A wanted address with an add in flight belongs to that task:
            // a dadfailed copy is its DAD verdict, which it reads (with the
            // defender) and deletes itself.
            if track(&key).in_flight {
                continue;
            }
            removing.insert(key, out.remove.len());
            out.remove.push(Removal {
                addr: o.clone(),
                confirms: Vec::new(),
            });
        }
        for d in &p.to_add {
            let key = (d.dev.clone(), d.addr.addr());
            let Some(m) = meta.get(&key) else { continue };
            if !inp.may_add || track(&key).in_flight || inp.backing_off.contains(&m.floating_ip_id)
            {
                continue;
            }
            out.add.push(AddJob {
                key,
                addr: d.addr,
                desired: (*m).clone(),
                adopt_tentative: false,
            });
        }
        for k in &p.unchanged {
            let key = (k.desired.dev.clone(), k.desired.addr.addr());
            let Some(m) = meta.get(&key) else { continue };
            let t = track(&key);
            if !inp.may_add || (t.in_flight && !t.announced) {
                // Nothing to say yet: the add in flight reports its verdict.
                continue;
            }
            match k.state {
                // An earlier run's DAD is still going: wait for its verdict
                // rather than restart it.
                ReportedState::Tentative if !t.in_flight => out.add.push(AddJob {
                    key,
                    addr: k.desired.addr,
                    desired: (*m).clone(),
                    adopt_tentative: true,
                }),
                ReportedState::Tentative => {}
                // Already right: adopted as is (no DAD, no NA).
                _ => out.say.push(Say {
                    id: m.floating_ip_id,
                    revision: m.revision,
                    state: ReportedState::Active,
                    detail: None,
                }),
            }
        }
        for b in &p.blocked {
            let key = (b.desired.dev.clone(), b.desired.addr.addr());
            let Some(m) = meta.get(&key) else { continue };
            let detail = match b.reason {
                BlockReason::Foreign => format!(
                    "{} is on {} of this host but not managed by fip-agent (no IFA_PROTO 0xf1 mark); not touching it",
                    key.1, key.0
                ),
                BlockReason::ConflictingDesired => {
                    "the desired state lists this address twice with different settings".into()
                }
            };
            out.say.push(Say {
                id: m.floating_ip_id,
                revision: m.revision,
                state: ReportedState::Error,
                detail: Some(detail),
            });
        }
    }

    // Removals fipd asked for: confirmed `absent` only from this read, and
    // only when no add of the address can have changed the kernel since.
    for r in &inp.desired.removals {
        if wanted_ids.contains(&r.floating_ip_id) {
            continue;
        }
        let absent = |detail: Option<String>| Say {
            id: r.floating_ip_id,
            revision: r.revision,
            state: ReportedState::Absent,
            detail,
        };
        let held_unmanaged = |dev: &str| {
            Say {
            id: r.floating_ip_id,
            revision: r.revision,
            state: ReportedState::Error,
            detail: Some(format!(
                "{} is on {dev} of this host but not managed by fip-agent; it cannot confirm the removal",
                r.address
            )),
        }
        };
        let Some(dev) = dev_of(inp.networks, &r.network) else {
            // Not served (now): a copy may be left from an earlier
            // configuration, on any interface.
            let Some(all) = &inp.obs.unserved else {
                continue;
            };
            match all.iter().find(|o| o.addr == r.address) {
                Some(o) if o.managed => {
                    let key = (o.dev.clone(), o.addr);
                    let i = *removing.entry(key).or_insert_with(|| {
                        out.remove.push(Removal {
                            addr: o.clone(),
                            confirms: Vec::new(),
                        });
                        out.remove.len() - 1
                    });
                    out.remove[i].confirms.push((r.floating_ip_id, r.revision));
                }
                Some(o) => out.say.push(held_unmanaged(&o.dev)),
                None => out.say.push(absent(Some(format!(
                    "network {} is not served here",
                    r.network
                )))),
            }
            continue;
        };
        let key = (dev.to_owned(), r.address);
        if meta.contains_key(&key) {
            // The same address is wanted here again (another floating IP).
            continue;
        }
        let t = track(&key);
        if t.in_flight || t.ended_at.is_some_and(|e| e >= inp.obs.seq) {
            continue;
        }
        match inp.obs.devs.get(dev) {
            Some(DevView::Read(observed)) => match observed.iter().find(|o| o.addr == r.address) {
                Some(o) if o.managed => {
                    let i = *removing.entry(key).or_insert_with(|| {
                        out.remove.push(Removal {
                            addr: o.clone(),
                            confirms: Vec::new(),
                        });
                        out.remove.len() - 1
                    });
                    out.remove[i].confirms.push((r.floating_ip_id, r.revision));
                }
                Some(_) => out.say.push(held_unmanaged(dev)),
                None => out.say.push(absent(None)),
            },
            Some(DevView::Vanished) => out
                .say
                .push(absent(Some(format!("interface {dev} does not exist")))),
            Some(DevView::Unreadable(_)) | None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::netlink::AddrFlags;
    use fip_types::{DadMode, RemovalRequest};
    use rtnetlink::packet_route::address::AddressFlags as F;

    const X: &str = "2001:db8:1::100";
    const Y: &str = "2001:db8:1::200";

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn nets() -> Vec<(String, String)> {
        vec![("public".into(), "eth0".into())]
    }

    fn addr(i: u128, a: &str, rev: i64) -> DesiredAddress {
        DesiredAddress {
            floating_ip_id: id(i),
            address: a.parse().unwrap(),
            network: "public".into(),
            prefix_len: 64,
            dad: DadMode::Strict,
            na_count: 3,
            na_interval_ms: 1000,
            revision: rev,
        }
    }

    fn removal(i: u128, a: &str, rev: i64) -> RemovalRequest {
        RemovalRequest {
            floating_ip_id: id(i),
            address: a.parse().unwrap(),
            network: "public".into(),
            revision: rev,
        }
    }

    fn state(addresses: Vec<DesiredAddress>, removals: Vec<RemovalRequest>) -> DesiredState {
        DesiredState {
            host: "a".into(),
            revision: 1,
            addresses,
            removals,
        }
    }

    fn held(a: &str, flags: F, managed: bool) -> ObservedAddr {
        ObservedAddr {
            dev: "eth0".into(),
            addr: a.parse().unwrap(),
            prefix_len: 64,
            flags: AddrFlags(flags.bits()),
            managed,
            valid_lft: None,
            preferred_lft: None,
        }
    }

    fn read(seq: u64, v: Vec<ObservedAddr>) -> Observation {
        Observation {
            seq,
            devs: BTreeMap::from([("eth0".into(), DevView::Read(v))]),
            unserved: None,
        }
    }

    fn key(a: &str) -> Key {
        ("eth0".into(), a.parse().unwrap())
    }

    struct Case {
        desired: DesiredState,
        obs: Observation,
        adds: HashMap<Key, AddTrack>,
        may_add: bool,
        backing_off: HashSet<Uuid>,
    }

    impl Case {
        fn new(desired: DesiredState, obs: Observation) -> Self {
            Self {
                desired,
                obs,
                adds: HashMap::new(),
                may_add: true,
                backing_off: HashSet::new(),
            }
        }

        fn decide(&self) -> Decision {
            let n = nets();
            decide(&Inputs {
                desired: &self.desired,
                networks: &n,
                may_add: self.may_add,
                obs: &self.obs,
                adds: &self.adds,
                backing_off: &self.backing_off,
                lifetime_s: Some(10),
            })
        }
    }

    fn says(d: &Decision, state: ReportedState) -> Vec<Uuid> {
        d.say
            .iter()
            .filter(|s| s.state == state)
            .map(|s| s.id)
            .collect()
    }

    #[test]
    fn a_removal_of_an_address_not_held_is_confirmed() {
        let d = Case::new(state(vec![], vec![removal(1, X, 2)]), read(5, vec![])).decide();
        assert_eq!(says(&d, ReportedState::Absent), [id(1)]);
        assert!(d.remove.is_empty() && d.add.is_empty());
    }

    #[test]
    fn a_held_address_is_removed_and_confirmed_only_after_its_deletion() {
        let d = Case::new(
            state(vec![], vec![removal(1, X, 2)]),
            read(5, vec![held(X, F::Permanent, true)]),
        )
        .decide();
        assert!(says(&d, ReportedState::Absent).is_empty());
        assert_eq!(d.remove.len(), 1);
        assert_eq!(d.remove[0].confirms, [(id(1), 2)]);
    }

    /// Issue 10 item 1: an add still in flight may put the address into
    /// the kernel after this read: the read proves nothing.
    #[test]
    fn no_removal_is_confirmed_while_an_add_of_that_address_is_in_flight() {
        let mut c = Case::new(state(vec![], vec![removal(1, X, 2)]), read(5, vec![]));
        c.adds.insert(
            key(X),
            AddTrack {
                in_flight: true,
                ..AddTrack::default()
            },
        );
        let d = c.decide();
        assert!(d.say.is_empty(), "{d:?}");
        assert!(d.remove.is_empty());
    }

    /// Issue 10 item 1: an add that ended at or after the read started
    /// may have put the address in after the read.
    #[test]
    fn no_removal_is_confirmed_from_a_read_older_than_the_last_add() {
        for (ended, confirmed) in [(4, true), (5, false), (6, false)] {
            let mut c = Case::new(state(vec![], vec![removal(1, X, 2)]), read(5, vec![]));
            c.adds.insert(
                key(X),
                AddTrack {
                    ended_at: Some(ended),
                    ..AddTrack::default()
                },
            );
            let d = c.decide();
            assert_eq!(
                !says(&d, ReportedState::Absent).is_empty(),
                confirmed,
                "add ended at {ended}, read 5"
            );
        }
    }

    #[test]
    fn an_address_wanted_again_here_is_not_confirmed_removed() {
        // Moved away and back before this host acted: same floating IP.
        let d = Case::new(
            state(vec![addr(1, X, 3)], vec![removal(1, X, 2)]),
            read(5, vec![held(X, F::Permanent, true)]),
        )
        .decide();
        assert!(says(&d, ReportedState::Absent).is_empty());
        assert!(d.remove.is_empty());
        assert_eq!(says(&d, ReportedState::Active), [id(1)]);
    }

    #[test]
    fn an_unmanaged_copy_is_never_confirmed_removed_nor_touched() {
        let d = Case::new(
            state(vec![], vec![removal(1, X, 2)]),
            read(5, vec![held(X, F::Permanent, false)]),
        )
        .decide();
        assert!(d.remove.is_empty());
        assert_eq!(says(&d, ReportedState::Error), [id(1)]);
    }

    /// Issue 10 item 5: an interface that vanished took its addresses
    /// with it; one that cannot be read confirms nothing.
    #[test]
    fn a_vanished_interface_confirms_and_an_unreadable_one_does_not() {
        let mut obs = read(5, vec![]);
        obs.devs.insert("eth0".into(), DevView::Vanished);
        let d = Case::new(state(vec![addr(2, Y, 1)], vec![removal(1, X, 2)]), obs).decide();
        assert_eq!(says(&d, ReportedState::Absent), [id(1)]);
        assert_eq!(says(&d, ReportedState::Error), [id(2)], "cannot add there");
        assert!(d.add.is_empty());

        let mut obs = read(5, vec![]);
        obs.devs
            .insert("eth0".into(), DevView::Unreadable("EIO".into()));
        let d = Case::new(state(vec![addr(2, Y, 1)], vec![removal(1, X, 2)]), obs).decide();
        assert!(d.say.is_empty() && d.add.is_empty() && d.remove.is_empty());
        assert_eq!(d.unreadable, [("eth0".to_owned(), "EIO".to_owned())]);
    }

    #[test]
    fn a_removal_on_an_unserved_network_looks_at_every_interface() {
        let mut r = removal(1, X, 2);
        r.network = "old".into();
        let st = state(vec![], vec![r]);
        // Not read yet: nothing is confirmed.
        let d = Case::new(st.clone(), read(5, vec![])).decide();
        assert!(d.say.is_empty());
        // A managed copy on another interface is removed, then confirmed.
        let mut obs = read(5, vec![]);
        let mut o = held(X, F::Permanent, true);
        o.dev = "eth9".into();
        obs.unserved = Some(vec![o.clone()]);
        let d = Case::new(st.clone(), obs).decide();
        assert_eq!(d.remove.len(), 1);
        assert_eq!(d.remove[0].addr, o);
        assert_eq!(d.remove[0].confirms, [(id(1), 2)]);
        // Nowhere: confirmed.
        let mut obs = read(5, vec![]);
        obs.unserved = Some(vec![]);
        let d = Case::new(st, obs).decide();
        assert_eq!(says(&d, ReportedState::Absent), [id(1)]);
    }

    /// Issue 10 item 3: after a fence, nothing is added (nor adopted)
    /// until a fresh desired state arrives; removals still go on.
    #[test]
    fn nothing_is_added_or_adopted_unless_the_pass_may_add() {
        let mut c = Case::new(
            state(vec![addr(1, X, 1), addr(2, Y, 1)], vec![]),
            read(5, vec![held(Y, F::Permanent, true)]),
        );
        c.may_add = false;
        let d = c.decide();
        assert!(d.add.is_empty() && d.say.is_empty(), "{d:?}");
        c.may_add = true;
        let d = c.decide();
        assert_eq!(d.add.len(), 1);
        assert_eq!(says(&d, ReportedState::Active), [id(2)]);
    }

    #[test]
    fn unwanted_managed_addresses_are_removed_even_when_the_pass_may_not_add() {
        let mut c = Case::new(
            state(vec![], vec![]),
            read(5, vec![held(X, F::Permanent, true)]),
        );
        c.may_add = false;
        assert_eq!(c.decide().remove.len(), 1);
    }

    #[test]
    fn adds_in_flight_or_backing_off_are_not_started_again() {
        let mut c = Case::new(state(vec![addr(1, X, 1)], vec![]), read(5, vec![]));
        c.adds.insert(
            key(X),
            AddTrack {
                in_flight: true,
                ..AddTrack::default()
            },
        );
        assert!(c.decide().add.is_empty());
        c.adds.clear();
        c.backing_off.insert(id(1));
        assert!(c.decide().add.is_empty());
        c.backing_off.clear();
        let d = c.decide();
        assert_eq!(d.add.len(), 1);
        assert!(!d.add[0].adopt_tentative);
        assert_eq!(d.add[0].addr.prefix_len(), 64);
    }

    #[test]
    fn a_tentative_copy_from_an_earlier_run_is_waited_for_not_restarted() {
        let d = Case::new(
            state(vec![addr(1, X, 1)], vec![]),
            read(5, vec![held(X, F::Tentative, true)]),
        )
        .decide();
        assert_eq!(d.add.len(), 1);
        assert!(d.add[0].adopt_tentative);
        assert!(d.remove.is_empty());
    }

    #[test]
    fn a_dadfailed_copy_belongs_to_its_add_in_flight() {
        let mut c = Case::new(
            state(vec![addr(1, X, 1)], vec![]),
            read(5, vec![held(X, F::Dadfailed | F::Tentative, true)]),
        );
        c.adds.insert(
            key(X),
            AddTrack {
                in_flight: true,
                ..AddTrack::default()
            },
        );
        let d = c.decide();
        assert!(d.remove.is_empty() && d.add.is_empty());
        c.adds.clear();
        let d = c.decide();
        assert_eq!(d.remove.len(), 1, "no add owns it: remove, then add again");
        assert_eq!(d.add.len(), 1);
    }

    #[test]
    fn an_add_that_announced_lets_the_address_be_adopted_at_a_new_revision() {
        let mut c = Case::new(
            state(vec![addr(1, X, 4)], vec![]),
            read(5, vec![held(X, F::Permanent, true)]),
        );
        c.adds.insert(
            key(X),
            AddTrack {
                in_flight: true,
                announced: false,
                ended_at: None,
            },
        );
        assert!(
            c.decide().say.is_empty(),
            "its verdict is the task's to report"
        );
        c.adds.get_mut(&key(X)).unwrap().announced = true;
        let d = c.decide();
        assert_eq!(d.say[0].revision, 4);
        assert_eq!(d.say[0].state, ReportedState::Active);
    }

    /// Issue 10 item 6: fipd is not trusted with the prefix length.
    #[test]
    fn prefixes_shorter_than_16_are_refused() {
        let mut a = addr(1, X, 1);
        a.prefix_len = 8;
        let d = Case::new(state(vec![a], vec![]), read(5, vec![])).decide();
        assert!(d.add.is_empty());
        assert_eq!(says(&d, ReportedState::Error), [id(1)]);
        assert!(d.say[0].detail.as_ref().unwrap().contains("/8"));
    }

    #[test]
    fn unserved_networks_and_foreign_copies_are_reported_as_errors() {
        let mut a = addr(1, X, 1);
        a.network = "storage".into();
        let d = Case::new(
            state(vec![a, addr(2, Y, 1)], vec![]),
            read(5, vec![held(Y, F::Permanent, false)]),
        )
        .decide();
        assert_eq!(says(&d, ReportedState::Error), [id(1), id(2)]);
        assert!(d.say[0].detail.as_ref().unwrap().contains("storage"));
        assert!(d.say[1].detail.as_ref().unwrap().contains("not managed"));
        assert!(d.add.is_empty() && d.remove.is_empty());
    }

    #[test]
    fn wanted_keys_are_the_served_desired_addresses() {
        let mut a = addr(2, Y, 1);
        a.network = "storage".into();
        let k = wanted_keys(&state(vec![addr(1, X, 1), a], vec![]), &nets());
        assert_eq!(k, HashSet::from([key(X)]));
    }

    /// Every combination of removal request × kernel state × add history,
    /// against the confirmation rule: confirm exactly when the read shows
    /// the address gone (or its interface gone), no add is in flight and
    /// none ended at or after the read began; a managed copy is deleted
    /// first, an unmanaged one blocks with an error, an unreadable
    /// interface says nothing.
    #[test]
    fn every_removal_case_follows_the_confirmation_rule() {
        #[derive(Clone, Copy, Debug)]
        enum K {
            Absent,
            Managed,
            Unmanaged,
            Vanished,
            Unreadable,
        }
        #[derive(Clone, Copy, Debug)]
        enum A {
            None,
            InFlight,
            EndedBefore,
            EndedAt,
        }
        for k in [
            K::Absent,
            K::Managed,
            K::Unmanaged,
            K::Vanished,
            K::Unreadable,
        ] {
            for a in [A::None, A::InFlight, A::EndedBefore, A::EndedAt] {
                let mut obs = read(
                    7,
                    match k {
                        K::Managed => vec![held(X, F::Permanent, true)],
                        K::Unmanaged => vec![held(X, F::Permanent, false)],
                        _ => vec![],
                    },
                );
                match k {
                    K::Vanished => {
                        obs.devs.insert("eth0".into(), DevView::Vanished);
                    }
                    K::Unreadable => {
                        obs.devs
                            .insert("eth0".into(), DevView::Unreadable("x".into()));
                    }
                    _ => {}
                }
                let mut c = Case::new(state(vec![], vec![removal(1, X, 3)]), obs);
                let t = match a {
                    A::None => None,
                    A::InFlight => Some(AddTrack {
                        in_flight: true,
                        ..AddTrack::default()
                    }),
                    A::EndedBefore => Some(AddTrack {
                        ended_at: Some(6),
                        ..AddTrack::default()
                    }),
                    A::EndedAt => Some(AddTrack {
                        ended_at: Some(7),
                        ..AddTrack::default()
                    }),
                };
                if let Some(t) = t {
                    c.adds.insert(key(X), t);
                }
                let d = c.decide();
                let add_quiet = matches!(a, A::None | A::EndedBefore);
                let absent = !says(&d, ReportedState::Absent).is_empty();
                let error = !says(&d, ReportedState::Error).is_empty();
                let deleted = d.remove.iter().any(|r| r.confirms == [(id(1), 3)]);
                let want_absent = add_quiet && matches!(k, K::Absent | K::Vanished);
                let want_delete = add_quiet && matches!(k, K::Managed);
                let want_error = add_quiet && matches!(k, K::Unmanaged);
                assert_eq!(
                    (absent, deleted, error),
                    (want_absent, want_delete, want_error),
                    "kernel {k:?}, add {a:?}: {d:?}"
                );
            }
        }
    }
}
