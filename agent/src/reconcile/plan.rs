//! The pure reconcile plan: desired addresses vs. what the kernel holds → remove, add, unchanged.
//!
//! No I/O here, so every rule is unit-tested without root. The plan is
//! level-triggered: `desired` is the *whole* desired state of the host and
//! `observed` the whole kernel state, so a managed address missing from
//! `desired` is removed, whatever happened before.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;

use serde::Serialize;

use crate::addr::FloatingAddr;
use crate::net::netlink::AddrFlags;
use fip_types::ReportedState;

use crate::reconcile::status::state_of;

/// An address the controller wants on an interface of this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesiredAddr {
    pub dev: String,
    pub addr: FloatingAddr,
    /// Lease-tied lifetime; refreshed on every pass while desired.
    pub lifetime_s: Option<u32>,
}

/// An address the kernel holds, managed (carries our mark) or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservedAddr {
    pub dev: String,
    pub addr: Ipv6Addr,
    pub prefix_len: u8,
    pub flags: AddrFlags,
    pub managed: bool,
    pub valid_lft: Option<u32>,
    pub preferred_lft: Option<u32>,
}

/// A desired address already in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kept {
    pub desired: DesiredAddr,
    /// `active`, or `tentative` while an earlier DAD run is still going
    /// (waiting beats restarting DAD).
    pub state: ReportedState,
    /// Re-set lifetimes in place (no DAD) because the desired entry has one.
    pub refresh_lifetime: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockReason {
    /// The address is on the interface but not ours: never touched, so the
    /// desired address cannot be applied until an operator resolves it.
    Foreign,
    /// The desired state names the same address twice with different content.
    ConflictingDesired,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocked {
    pub desired: DesiredAddr,
    pub reason: BlockReason,
}

/// What to do, in the order `apply` does it: removals, then additions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub to_remove: Vec<ObservedAddr>,
    pub to_add: Vec<DesiredAddr>,
    pub unchanged: Vec<Kept>,
    pub blocked: Vec<Blocked>,
}

impl Plan {
    pub fn is_noop(&self) -> bool {
        self.to_remove.is_empty()
            && self.to_add.is_empty()
            && self.blocked.is_empty()
            && self.unchanged.iter().all(|k| !k.refresh_lifetime)
    }
}

type Key = (String, Ipv6Addr);

/// Diffs `desired` against `observed`.
///
/// Rules, per (interface, address):
/// - desired, absent → add;
/// - desired, managed and healthy (same prefix length, not dadfailed) →
///   unchanged, lifetime refreshed if the desired entry has one;
/// - desired, managed but dadfailed or with another prefix length → remove,
///   then add (a dadfailed copy never recovers; the kernel would refuse a
///   second copy with another prefix length);
/// - desired, present but foreign → blocked, never touched;
/// - managed, not desired → remove; foreign, not desired → ignored.
///
/// Every list is sorted by (interface, address), so equal inputs give
/// equal plans whatever their order.
pub fn plan(desired: &[DesiredAddr], observed: &[ObservedAddr]) -> Plan {
    let mut out = Plan::default();

    let mut want: BTreeMap<Key, &DesiredAddr> = BTreeMap::new();
    let mut conflicted: BTreeSet<Key> = BTreeSet::new();
    for d in desired {
        let key = (d.dev.clone(), d.addr.addr());
        match want.get(&key) {
            None => {
                want.insert(key, d);
            }
            // An exact repeat is harmless; differing content is a
            // controller bug we surface rather than guess at.
            Some(prev) if *prev == d => {}
            Some(_) => {
                conflicted.insert(key);
            }
        }
    }
    for key in &conflicted {
        let entries = desired
            .iter()
            .filter(|d| d.dev == key.0 && d.addr.addr() == key.1);
        let mut seen: Vec<&DesiredAddr> = Vec::new();
        for d in entries {
            if !seen.contains(&d) {
                seen.push(d);
                out.blocked.push(Blocked {
                    desired: d.clone(),
                    reason: BlockReason::ConflictingDesired,
                });
            }
        }
        want.remove(key);
    }

    let have: BTreeMap<Key, &ObservedAddr> = observed
        .iter()
        .map(|o| ((o.dev.clone(), o.addr), o))
        .collect();

    for (key, o) in &have {
        // A conflicted key keeps what it has: removing it would act on a
        // desired state we know is wrong.
        if o.managed && !want.contains_key(key) && !conflicted.contains(key) {
            out.to_remove.push((*o).clone());
        }
    }

    for (key, d) in &want {
        match have.get(key) {
            None => out.to_add.push((*d).clone()),
            Some(o) if !o.managed => out.blocked.push(Blocked {
                desired: (*d).clone(),
                reason: BlockReason::Foreign,
            }),
            Some(o) if o.flags.dadfailed() || o.prefix_len != d.addr.prefix_len() => {
                out.to_remove.push((*o).clone());
                out.to_add.push((*d).clone());
            }
            Some(o) => out.unchanged.push(Kept {
                desired: (*d).clone(),
                state: state_of(o.flags),
                refresh_lifetime: d.lifetime_s.is_some(),
            }),
        }
    }

    out.to_remove
        .sort_by(|a, b| (&a.dev, a.addr).cmp(&(&b.dev, b.addr)));
    out.blocked
        .sort_by(|a, b| (&a.desired.dev, a.desired.addr).cmp(&(&b.desired.dev, b.desired.addr)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_route::address::AddressFlags as F;

    const X: &str = "2001:db8:1::100";
    const Y: &str = "2001:db8:1::200";

    fn want(dev: &str, a: &str) -> DesiredAddr {
        DesiredAddr {
            dev: dev.into(),
            addr: a.parse().unwrap(),
            lifetime_s: None,
        }
    }

    fn want_lft(dev: &str, a: &str, l: u32) -> DesiredAddr {
        DesiredAddr {
            lifetime_s: Some(l),
            ..want(dev, a)
        }
    }

    fn seen(dev: &str, a: &str, prefix_len: u8, flags: F, managed: bool) -> ObservedAddr {
        ObservedAddr {
            dev: dev.into(),
            addr: a.parse().unwrap(),
            prefix_len,
            flags: AddrFlags(flags.bits()),
            managed,
            valid_lft: None,
            preferred_lft: None,
        }
    }

    fn ours(a: &str) -> ObservedAddr {
        seen("eth0", a, 128, F::Permanent, true)
    }

    fn foreign(a: &str) -> ObservedAddr {
        seen("eth0", a, 128, F::Permanent, false)
    }

    #[test]
    fn nothing_desired_nothing_observed_is_a_noop() {
        let p = plan(&[], &[]);
        assert_eq!(p, Plan::default());
        assert!(p.is_noop());
    }

    #[test]
    fn desired_and_absent_is_added() {
        let p = plan(&[want("eth0", X)], &[]);
        assert_eq!(p.to_add, vec![want("eth0", X)]);
        assert!(p.to_remove.is_empty() && p.unchanged.is_empty() && p.blocked.is_empty());
    }

    #[test]
    fn desired_and_healthy_managed_is_unchanged() {
        let p = plan(&[want("eth0", X)], &[ours(X)]);
        assert!(p.to_add.is_empty() && p.to_remove.is_empty());
        assert_eq!(
            p.unchanged,
            vec![Kept {
                desired: want("eth0", X),
                state: ReportedState::Active,
                refresh_lifetime: false
            }]
        );
        assert!(p.is_noop());
    }

    #[test]
    fn desired_with_lifetime_refreshes_in_place() {
        let p = plan(&[want_lft("eth0", X, 10)], &[ours(X)]);
        assert!(p.to_add.is_empty() && p.to_remove.is_empty());
        assert!(p.unchanged[0].refresh_lifetime);
        assert!(!p.is_noop());
    }

    #[test]
    fn desired_and_tentative_waits_instead_of_restarting_dad() {
        let p = plan(
            &[want("eth0", X)],
            &[seen("eth0", X, 128, F::Tentative, true)],
        );
        assert!(p.to_add.is_empty() && p.to_remove.is_empty());
        assert_eq!(p.unchanged[0].state, ReportedState::Tentative);
    }

    #[test]
    fn desired_and_optimistic_waits_too() {
        let p = plan(
            &[want("eth0", X)],
            &[seen("eth0", X, 128, F::Tentative | F::Optimistic, true)],
        );
        assert_eq!(p.unchanged[0].state, ReportedState::Tentative);
        assert!(p.to_add.is_empty());
    }

    #[test]
    fn desired_and_nodad_managed_is_unchanged() {
        let p = plan(
            &[want("eth0", X)],
            &[seen("eth0", X, 128, F::Nodad | F::Permanent, true)],
        );
        assert_eq!(p.unchanged[0].state, ReportedState::Active);
    }

    #[test]
    fn desired_and_dadfailed_is_removed_then_added_again() {
        let failed = seen("eth0", X, 128, F::Dadfailed | F::Tentative, true);
        let p = plan(&[want("eth0", X)], std::slice::from_ref(&failed));
        assert_eq!(p.to_remove, vec![failed]);
        assert_eq!(p.to_add, vec![want("eth0", X)]);
        assert!(p.unchanged.is_empty());
    }

    #[test]
    fn desired_with_other_prefix_length_is_replaced() {
        let wide = seen("eth0", X, 64, F::Permanent, true);
        let p = plan(&[want("eth0", X)], std::slice::from_ref(&wide));
        assert_eq!(p.to_remove, vec![wide]);
        assert_eq!(p.to_add, vec![want("eth0", X)]);
    }

    #[test]
    fn managed_but_not_desired_is_removed() {
        let p = plan(&[], &[ours(X)]);
        assert_eq!(p.to_remove, vec![ours(X)]);
        assert!(p.to_add.is_empty());
    }

    #[test]
    fn managed_tentative_not_desired_is_removed() {
        let t = seen("eth0", X, 128, F::Tentative, true);
        assert_eq!(plan(&[], std::slice::from_ref(&t)).to_remove, vec![t]);
    }

    #[test]
    fn managed_dadfailed_not_desired_is_removed() {
        let t = seen("eth0", X, 128, F::Dadfailed | F::Tentative, true);
        assert_eq!(plan(&[], std::slice::from_ref(&t)).to_remove, vec![t]);
    }

    #[test]
    fn foreign_not_desired_is_ignored() {
        let p = plan(&[], &[foreign(X)]);
        assert_eq!(p, Plan::default());
    }

    #[test]
    fn foreign_dadfailed_not_desired_is_ignored() {
        let p = plan(&[], &[seen("eth0", X, 128, F::Dadfailed, false)]);
        assert_eq!(p, Plan::default());
    }

    #[test]
    fn desired_but_foreign_is_blocked_and_untouched() {
        let p = plan(&[want("eth0", X)], &[foreign(X)]);
        assert!(p.to_add.is_empty() && p.to_remove.is_empty());
        assert_eq!(
            p.blocked,
            vec![Blocked {
                desired: want("eth0", X),
                reason: BlockReason::Foreign
            }]
        );
    }

    #[test]
    fn desired_on_another_interface_is_a_different_address() {
        let p = plan(&[want("eth1", X)], &[ours(X)]);
        assert_eq!(p.to_add, vec![want("eth1", X)]);
        assert_eq!(p.to_remove, vec![ours(X)]);
    }

    #[test]
    fn exact_duplicate_desired_entries_count_once() {
        let p = plan(&[want("eth0", X), want("eth0", X)], &[]);
        assert_eq!(p.to_add, vec![want("eth0", X)]);
        assert!(p.blocked.is_empty());
    }

    #[test]
    fn conflicting_desired_entries_are_blocked_and_keep_what_is_there() {
        let a = want("eth0", X);
        let b = want_lft("eth0", X, 30);
        let p = plan(&[a.clone(), b.clone()], &[ours(X)]);
        assert!(p.to_add.is_empty() && p.to_remove.is_empty() && p.unchanged.is_empty());
        assert_eq!(p.blocked.len(), 2);
        assert!(p
            .blocked
            .iter()
            .all(|b| b.reason == BlockReason::ConflictingDesired));
    }

    #[test]
    fn plan_is_independent_of_input_order() {
        let d1 = [want("eth0", X), want("eth0", Y), want("eth1", X)];
        let o1 = [ours("2001:db8::1"), foreign("2001:db8::2"), ours(Y)];
        let mut d2 = d1.clone();
        d2.reverse();
        let mut o2 = o1.clone();
        o2.reverse();
        assert_eq!(plan(&d1, &o1), plan(&d2, &o2));
    }

    #[test]
    fn mixed_state_sorts_every_address_into_one_bucket() {
        let observed = [
            ours(X),                                                  // kept
            ours("2001:db8:1::300"),                                  // stale: remove
            foreign("2001:db8:1::400"),                               // foreign, unwanted: ignore
            foreign(Y),                                               // foreign, wanted: blocked
            seen("eth0", "2001:db8:1::500", 128, F::Dadfailed, true), // retry
        ];
        let desired = [
            want("eth0", X),
            want("eth0", Y),
            want("eth0", "2001:db8:1::500"),
            want("eth0", "2001:db8:1::600"), // new: add
        ];
        let p = plan(&desired, &observed);
        let addrs = |v: &[ObservedAddr]| v.iter().map(|o| o.addr.to_string()).collect::<Vec<_>>();
        assert_eq!(addrs(&p.to_remove), ["2001:db8:1::300", "2001:db8:1::500"]);
        let added: Vec<_> = p.to_add.iter().map(|d| d.addr.addr().to_string()).collect();
        assert_eq!(added, ["2001:db8:1::500", "2001:db8:1::600"]);
        assert_eq!(p.unchanged.len(), 1);
        assert_eq!(p.blocked.len(), 1);
        assert_eq!(p.blocked[0].desired.addr.addr().to_string(), Y);
    }

    /// Every combination of desired entry × kernel state, checked against
    /// the rule table in `plan`'s doc comment.
    #[test]
    fn every_desired_and_observed_combination_follows_the_rule_table() {
        #[derive(Clone, Copy, Debug)]
        enum Obs {
            Absent,
            Healthy,
            Tentative,
            Optimistic,
            Nodad,
            Dadfailed,
            OtherPrefix,
            Foreign,
            ForeignDadfailed,
        }
        #[derive(Clone, Copy, Debug)]
        enum Want {
            No,
            Yes,
            WithLifetime,
        }
        #[derive(Debug, PartialEq)]
        struct Expect {
            remove: bool,
            add: bool,
            kept: Option<(ReportedState, bool)>,
            blocked: bool,
        }
        let obs_all = [
            Obs::Absent,
            Obs::Healthy,
            Obs::Tentative,
            Obs::Optimistic,
            Obs::Nodad,
            Obs::Dadfailed,
            Obs::OtherPrefix,
            Obs::Foreign,
            Obs::ForeignDadfailed,
        ];
        for o in obs_all {
            for w in [Want::No, Want::Yes, Want::WithLifetime] {
                let observed: Vec<ObservedAddr> = match o {
                    Obs::Absent => vec![],
                    Obs::Healthy => vec![ours(X)],
                    Obs::Tentative => vec![seen("eth0", X, 128, F::Tentative, true)],
                    Obs::Optimistic => {
                        vec![seen("eth0", X, 128, F::Tentative | F::Optimistic, true)]
                    }
                    Obs::Nodad => vec![seen("eth0", X, 128, F::Nodad, true)],
                    Obs::Dadfailed => vec![seen("eth0", X, 128, F::Dadfailed | F::Tentative, true)],
                    Obs::OtherPrefix => vec![seen("eth0", X, 64, F::Permanent, true)],
                    Obs::Foreign => vec![foreign(X)],
                    Obs::ForeignDadfailed => vec![seen("eth0", X, 128, F::Dadfailed, false)],
                };
                let desired: Vec<DesiredAddr> = match w {
                    Want::No => vec![],
                    Want::Yes => vec![want("eth0", X)],
                    Want::WithLifetime => vec![want_lft("eth0", X, 10)],
                };
                let lft = matches!(w, Want::WithLifetime);
                let none = Expect {
                    remove: false,
                    add: false,
                    kept: None,
                    blocked: false,
                };
                let expect = match (w, o) {
                    (Want::No, Obs::Absent | Obs::Foreign | Obs::ForeignDadfailed) => none,
                    (Want::No, _) => Expect {
                        remove: true,
                        ..none
                    },
                    (_, Obs::Absent) => Expect { add: true, ..none },
                    (_, Obs::Foreign | Obs::ForeignDadfailed) => Expect {
                        blocked: true,
                        ..none
                    },
                    (_, Obs::Dadfailed | Obs::OtherPrefix) => Expect {
                        remove: true,
                        add: true,
                        ..none
                    },
                    (_, Obs::Healthy | Obs::Nodad) => Expect {
                        kept: Some((ReportedState::Active, lft)),
                        ..none
                    },
                    (_, Obs::Tentative | Obs::Optimistic) => Expect {
                        kept: Some((ReportedState::Tentative, lft)),
                        ..none
                    },
                };
                let p = plan(&desired, &observed);
                let got = Expect {
                    remove: !p.to_remove.is_empty(),
                    add: !p.to_add.is_empty(),
                    kept: p.unchanged.first().map(|k| (k.state, k.refresh_lifetime)),
                    blocked: !p.blocked.is_empty(),
                };
                assert_eq!(got, expect, "desired {w:?}, observed {o:?}");
                // Foreign addresses are never scheduled for removal.
                assert!(p.to_remove.iter().all(|r| r.managed), "{w:?} {o:?}");
            }
        }
    }
}
