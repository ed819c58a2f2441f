//! The allocatable address space of a pool: its prefix, allocation ranges,
//! reserved addresses and the addresses no pool may ever hand out.
//!
//! Everything here is arithmetic on `u128`; nothing enumerates the space, so
//! a /64 (2^64 addresses) costs the same as a /120.

use std::collections::BTreeSet;
use std::net::Ipv6Addr;

use super::Ipv6Prefix;

const IID_MASK: u128 = (1 << 64) - 1;

/// Interface-ID intervals that are never allocated, relative to the /64 an
/// address falls in. A pool longer than /64 is a slice of a /64 link subnet,
/// so the link's reservations apply to it too.
///
/// - IID 0: the subnet-router anycast address (RFC 4291 §2.6.1).
/// - `fdff:ffff:ffff:ff80`–`fdff:ffff:ffff:ffff`: RFC 2526 reserved subnet
///   anycast addresses for EUI-64-format interface IDs (the u/l bit is 0).
/// - `ffff:ffff:ffff:ff80`–`ffff:ffff:ffff:ffff`: the numerically highest 128
///   IDs, which RFC 2526 reserves for non-EUI-64 formats and which many
///   operators read as "the top of the /64"; we refuse both to be safe.
const RESERVED_IIDS: [(u128, u128); 3] = [
    (0, 0),
    (0xfdff_ffff_ffff_ff80, 0xfdff_ffff_ffff_ffff),
    (0xffff_ffff_ffff_ff80, 0xffff_ffff_ffff_ffff),
];

/// An inclusive range of addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrRange {
    pub first: u128,
    pub last: u128,
}

impl AddrRange {
    pub fn size(&self) -> u128 {
        self.last - self.first + 1
    }
}

/// Why ranges or reserved addresses were refused; [`PoolSpaceError::field`]
/// names the offending field for the API's error message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolSpaceError {
    #[error("first must not be greater than last")]
    RangeInverted(usize),
    #[error("must lie inside the pool's cidr {1}")]
    RangeOutside(usize, String),
    #[error("overlaps ranges[{0}]")]
    RangesOverlap(usize, usize),
    #[error("must not be empty when given; omit it to use the whole cidr")]
    NoRanges,
    #[error("must lie inside the pool's cidr {1}")]
    ReservedOutside(usize, String),
}

impl PoolSpaceError {
    pub fn field(&self) -> String {
        match self {
            Self::RangeInverted(i) | Self::RangeOutside(i, _) => format!("ranges[{i}]"),
            Self::RangesOverlap(_, j) => format!("ranges[{j}]"),
            Self::NoRanges => "ranges".into(),
            Self::ReservedOutside(i, _) => format!("reserved[{i}]"),
        }
    }
}

/// A validated pool address space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSpace {
    prefix: Ipv6Prefix,
    /// Sorted by `first`, non-overlapping, inside `prefix`.
    ranges: Vec<AddrRange>,
    reserved: BTreeSet<u128>,
}

impl PoolSpace {
    /// Validates ranges and reserved addresses against the prefix. Without
    /// ranges the whole prefix is allocatable.
    pub fn new(
        prefix: Ipv6Prefix,
        ranges: Option<&[(Ipv6Addr, Ipv6Addr)]>,
        reserved: &[Ipv6Addr],
    ) -> Result<Self, PoolSpaceError> {
        let mut checked = Vec::new();
        match ranges {
            None => checked.push(AddrRange {
                first: prefix.network(),
                last: prefix.last(),
            }),
            Some([]) => return Err(PoolSpaceError::NoRanges),
            Some(given) => {
                let mut indexed = Vec::with_capacity(given.len());
                for (i, &(first, last)) in given.iter().enumerate() {
                    let (first, last) = (u128::from(first), u128::from(last));
                    if first > last {
                        return Err(PoolSpaceError::RangeInverted(i));
                    }
                    if !prefix.contains(first) || !prefix.contains(last) {
                        return Err(PoolSpaceError::RangeOutside(i, prefix.to_string()));
                    }
                    indexed.push((i, AddrRange { first, last }));
                }
                indexed.sort_by_key(|(_, r)| r.first);
                for w in indexed.windows(2) {
                    if w[1].1.first <= w[0].1.last {
                        let (a, b) = (w[0].0.min(w[1].0), w[0].0.max(w[1].0));
                        return Err(PoolSpaceError::RangesOverlap(a, b));
                    }
                }
                checked = indexed.into_iter().map(|(_, r)| r).collect();
            }
        }
        let mut set = BTreeSet::new();
        for (i, &addr) in reserved.iter().enumerate() {
            let a = u128::from(addr);
            if !prefix.contains(a) {
                return Err(PoolSpaceError::ReservedOutside(i, prefix.to_string()));
            }
            set.insert(a);
        }
        Ok(Self {
            prefix,
            ranges: checked,
            reserved: set,
        })
    }

    pub fn prefix(&self) -> Ipv6Prefix {
        self.prefix
    }

    pub fn ranges(&self) -> &[AddrRange] {
        &self.ranges
    }

    pub fn reserved(&self) -> impl Iterator<Item = u128> + '_ {
        self.reserved.iter().copied()
    }

    /// Whether `addr` lies in one of the allocation ranges.
    pub fn in_ranges(&self, addr: u128) -> bool {
        self.ranges
            .iter()
            .any(|r| (r.first..=r.last).contains(&addr))
    }

    /// Never allocatable by structure: the link's reserved anycast addresses,
    /// and the pool's own subnet-router anycast address (for /126 and
    /// shorter; RFC 6164 lets both addresses of a /127 be used).
    pub fn is_structurally_excluded(&self, addr: u128) -> bool {
        let iid = addr & IID_MASK;
        RESERVED_IIDS.iter().any(|&(a, b)| (a..=b).contains(&iid))
            || (self.prefix.prefix_len() <= 126 && addr == self.prefix.network())
    }

    /// Why `addr` cannot be allocated, if it cannot: outside the ranges, a
    /// reserved anycast address, or on the pool's reserved list.
    pub fn refusal(&self, addr: u128) -> Option<&'static str> {
        if !self.in_ranges(addr) {
            Some("outside the pool's allocation ranges")
        } else if self.is_structurally_excluded(addr) {
            Some("a reserved anycast address (RFC 4291 subnet-router or RFC 2526)")
        } else if self.reserved.contains(&addr) {
            Some("on the pool's reserved list")
        } else {
            None
        }
    }

    pub fn is_allocatable(&self, addr: u128) -> bool {
        self.refusal(addr).is_none()
    }

    /// Number of allocatable addresses. A /64 holds more than `u64::MAX`
    /// addresses, hence `u128` (and a decimal string on the wire).
    pub fn capacity(&self) -> u128 {
        let mut total = 0u128;
        for r in &self.ranges {
            let mut excluded = 0u128;
            for &(a, b) in &RESERVED_IIDS {
                excluded += count_iid_in(r.first, r.last, a, b);
            }
            let net = self.prefix.network();
            if self.prefix.prefix_len() <= 126
                && (r.first..=r.last).contains(&net)
                && !iid_reserved(net)
            {
                excluded += 1;
            }
            excluded += self
                .reserved
                .range(r.first..=r.last)
                .filter(|&&x| !self.is_structurally_excluded(x))
                .count() as u128;
            total += r.size() - excluded;
        }
        total
    }

    /// The smallest allocatable address in `[from, to]`, skipping excluded
    /// ones arithmetically. `from..=to` must lie within one range.
    pub fn next_allowed(&self, from: u128, to: u128) -> Option<u128> {
        let mut x = from;
        loop {
            if x > to {
                return None;
            }
            let iid = x & IID_MASK;
            if let Some(&(_, b)) = RESERVED_IIDS.iter().find(|&&(a, b)| (a..=b).contains(&iid)) {
                // Jump past the whole reserved block of this /64.
                let skip = (x & !IID_MASK) | b;
                x = skip.checked_add(1)?;
                continue;
            }
            if (self.prefix.prefix_len() <= 126 && x == self.prefix.network())
                || self.reserved.contains(&x)
            {
                x = x.checked_add(1)?;
                continue;
            }
            return Some(x);
        }
    }

    /// The address at position `rnd` (modulo the total size) when the
    /// ranges are laid end to end: a uniform draw for a uniform `rnd`.
    pub fn point_at(&self, rnd: u128) -> u128 {
        let total: u128 = self.ranges.iter().map(AddrRange::size).sum();
        let mut off = rnd % total;
        for r in &self.ranges {
            if off < r.size() {
                return r.first + off;
            }
            off -= r.size();
        }
        unreachable!("offset is below the total size")
    }

    /// A uniformly drawn allocatable address; `None` when the draw hit an
    /// excluded address, so the caller draws again.
    pub fn random_candidate(&self, rnd: u128) -> Option<u128> {
        let addr = self.point_at(rnd);
        self.is_allocatable(addr).then_some(addr)
    }

    /// The ranges split at `start`, in the order a wrapping scan from `start`
    /// visits them: the rest of start's range, the later ranges, the earlier
    /// ranges, then the beginning of start's range.
    pub fn scan_segments(&self, start: u128) -> Vec<AddrRange> {
        let Some(pos) = self
            .ranges
            .iter()
            .position(|r| (r.first..=r.last).contains(&start))
        else {
            return self.ranges.clone();
        };
        let home = self.ranges[pos];
        let mut out = vec![AddrRange {
            first: start,
            last: home.last,
        }];
        out.extend(&self.ranges[pos + 1..]);
        out.extend(&self.ranges[..pos]);
        if start > home.first {
            out.push(AddrRange {
                first: home.first,
                last: start - 1,
            });
        }
        out
    }
}

fn iid_reserved(addr: u128) -> bool {
    let iid = addr & IID_MASK;
    RESERVED_IIDS.iter().any(|&(a, b)| (a..=b).contains(&iid))
}

/// How many addresses in `[lo, hi]` have an interface ID in `[a, b]`.
fn count_iid_in(lo: u128, hi: u128, a: u128, b: u128) -> u128 {
    // f(n) = number of x in [0, n] whose IID lies in [a, b].
    let f = |n: u128| -> u128 {
        let width = b - a + 1;
        let full_blocks = n >> 64;
        let iid = n & IID_MASK;
        let partial = if iid < a { 0 } else { (iid - a + 1).min(width) };
        full_blocks * width + partial
    };
    f(hi) - if lo == 0 { 0 } else { f(lo - 1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(cidr: &str, ranges: Option<&[(&str, &str)]>, reserved: &[&str]) -> PoolSpace {
        try_space(cidr, ranges, reserved).unwrap()
    }

    fn try_space(
        cidr: &str,
        ranges: Option<&[(&str, &str)]>,
        reserved: &[&str],
    ) -> Result<PoolSpace, PoolSpaceError> {
        let ranges: Option<Vec<(Ipv6Addr, Ipv6Addr)>> = ranges.map(|rs| {
            rs.iter()
                .map(|(a, b)| (a.parse().unwrap(), b.parse().unwrap()))
                .collect()
        });
        let reserved: Vec<Ipv6Addr> = reserved.iter().map(|a| a.parse().unwrap()).collect();
        PoolSpace::new(cidr.parse().unwrap(), ranges.as_deref(), &reserved)
    }

    fn a(s: &str) -> u128 {
        s.parse::<Ipv6Addr>().unwrap().into()
    }

    #[test]
    fn a_slash_120_holds_255_addresses() {
        // 256 minus the subnet-router anycast address (IID 0 of its /64).
        assert_eq!(space("2001:db8::/120", None, &[]).capacity(), 255);
    }

    #[test]
    fn a_slash_64_excludes_iid_zero_and_both_rfc2526_blocks() {
        let s = space("2001:db8::/64", None, &[]);
        assert_eq!(s.capacity(), (1u128 << 64) - 1 - 128 - 128);
        assert!(!s.is_allocatable(a("2001:db8::")));
        assert!(!s.is_allocatable(a("2001:db8::fdff:ffff:ffff:ff80")));
        assert!(!s.is_allocatable(a("2001:db8::fdff:ffff:ffff:ffff")));
        assert!(s.is_allocatable(a("2001:db8::fdff:ffff:ffff:ff7f")));
        assert!(!s.is_allocatable(a("2001:db8::ffff:ffff:ffff:ff80")));
        assert!(s.is_allocatable(a("2001:db8::ffff:ffff:ffff:ff7f")));
    }

    #[test]
    fn a_slash_48_counts_exclusions_in_every_slash_64() {
        let s = space("2001:db8::/48", None, &[]);
        assert_eq!(s.capacity(), (1u128 << 80) - (1 << 16) * 257);
    }

    #[test]
    fn a_slash_127_may_use_both_addresses_unless_at_iid_zero() {
        assert_eq!(space("2001:db8::2/127", None, &[]).capacity(), 2);
        assert_eq!(space("2001:db8::/127", None, &[]).capacity(), 1);
    }

    #[test]
    fn the_pool_network_address_is_excluded_for_longer_prefixes() {
        let s = space("2001:db8::100/120", None, &[]);
        assert!(!s.is_allocatable(a("2001:db8::100")));
        assert_eq!(s.capacity(), 255);
    }

    #[test]
    fn reserved_addresses_are_excluded_once() {
        let s = space(
            "2001:db8::/120",
            None,
            &["2001:db8::5", "2001:db8::5", "2001:db8::", "2001:db8::9"],
        );
        // ::0 is already excluded structurally; ::5 is listed twice.
        assert_eq!(s.capacity(), 253);
        assert_eq!(
            s.refusal(a("2001:db8::5")),
            Some("on the pool's reserved list")
        );
    }

    #[test]
    fn ranges_restrict_allocation() {
        let s = space(
            "2001:db8::/64",
            Some(&[
                ("2001:db8::10", "2001:db8::1f"),
                ("2001:db8::100", "2001:db8::100"),
            ]),
            &[],
        );
        assert_eq!(s.capacity(), 17);
        assert!(!s.is_allocatable(a("2001:db8::20")));
        assert!(s.is_allocatable(a("2001:db8::100")));
    }

    #[test]
    fn ranges_outside_the_cidr_are_rejected_by_index() {
        let e = try_space(
            "2001:db8::/120",
            Some(&[("2001:db8::1", "2001:db8::1:0")]),
            &[],
        );
        assert!(matches!(e, Err(PoolSpaceError::RangeOutside(0, _))));
    }

    #[test]
    fn inverted_and_overlapping_ranges_are_rejected() {
        let e = try_space(
            "2001:db8::/120",
            Some(&[("2001:db8::9", "2001:db8::1")]),
            &[],
        );
        assert_eq!(e, Err(PoolSpaceError::RangeInverted(0)));
        let e = try_space(
            "2001:db8::/120",
            Some(&[
                ("2001:db8::20", "2001:db8::30"),
                ("2001:db8::1", "2001:db8::20"),
            ]),
            &[],
        );
        assert_eq!(e, Err(PoolSpaceError::RangesOverlap(0, 1)));
        assert_eq!(
            try_space("2001:db8::/120", Some(&[]), &[]),
            Err(PoolSpaceError::NoRanges)
        );
    }

    #[test]
    fn reserved_addresses_outside_the_cidr_are_rejected() {
        let e = try_space("2001:db8::/120", None, &["2001:db8::1", "2001:db9::1"]);
        assert!(matches!(e, Err(PoolSpaceError::ReservedOutside(1, _))));
    }

    #[test]
    fn next_allowed_skips_reserved_blocks_without_enumerating() {
        let s = space("2001:db8::/63", None, &["2001:db8::1"]);
        assert_eq!(
            s.next_allowed(a("2001:db8::"), a("2001:db8::ff")),
            Some(a("2001:db8::2"))
        );
        // From inside the top block of the first /64 straight to ::1 of the next.
        let from = a("2001:db8::ffff:ffff:ffff:ff90");
        assert_eq!(
            s.next_allowed(from, a("2001:db8:0:1::ff")),
            Some(a("2001:db8:0:1::1"))
        );
        assert_eq!(s.next_allowed(a("2001:db8::1"), a("2001:db8::1")), None);
    }

    #[test]
    fn random_candidates_are_allocatable_or_none() {
        let s = space(
            "2001:db8::/120",
            Some(&[("2001:db8::", "2001:db8::3")]),
            &["2001:db8::2"],
        );
        let picks: Vec<Option<u128>> = (0..8).map(|r| s.random_candidate(r)).collect();
        assert_eq!(picks[0], None); // ::0, subnet-router anycast
        assert_eq!(picks[1], Some(a("2001:db8::1")));
        assert_eq!(picks[2], None); // reserved
        assert_eq!(picks[3], Some(a("2001:db8::3")));
        assert_eq!(picks[4], None); // wraps around
    }

    #[test]
    fn scan_segments_wrap_around_from_the_start_point() {
        let s = space(
            "2001:db8::/64",
            Some(&[
                ("2001:db8::10", "2001:db8::1f"),
                ("2001:db8::100", "2001:db8::10f"),
            ]),
            &[],
        );
        let segs = s.scan_segments(a("2001:db8::18"));
        let got: Vec<(u128, u128)> = segs.iter().map(|r| (r.first, r.last)).collect();
        assert_eq!(
            got,
            vec![
                (a("2001:db8::18"), a("2001:db8::1f")),
                (a("2001:db8::100"), a("2001:db8::10f")),
                (a("2001:db8::10"), a("2001:db8::17")),
            ]
        );
    }
}
