//! What the kernel's flags say about an address the agent holds, in the
//! words of the agent protocol (`fip_types::ReportedState`).

use fip_types::ReportedState;

use crate::net::netlink::AddrFlags;

/// The state implied by the kernel's flags for an address it holds: a
/// dadfailed copy is `DadFailed`, one still in DAD (optimistic or not)
/// `Tentative`, anything else `Active`.
pub fn state_of(f: AddrFlags) -> ReportedState {
    if f.dadfailed() {
        ReportedState::DadFailed
    } else if f.tentative() {
        ReportedState::Tentative
    } else {
        ReportedState::Active
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_route::address::AddressFlags as F;

    fn flags(f: F) -> AddrFlags {
        AddrFlags(f.bits())
    }

    #[test]
    fn dadfailed_wins_over_tentative() {
        assert_eq!(
            state_of(flags(F::Dadfailed | F::Tentative)),
            ReportedState::DadFailed
        );
    }

    #[test]
    fn tentative_and_optimistic_are_tentative() {
        assert_eq!(state_of(flags(F::Tentative)), ReportedState::Tentative);
        assert_eq!(
            state_of(flags(F::Tentative | F::Optimistic)),
            ReportedState::Tentative
        );
    }

    #[test]
    fn plain_and_nodad_addresses_are_active() {
        assert_eq!(state_of(flags(F::Permanent)), ReportedState::Active);
        assert_eq!(state_of(flags(F::Nodad)), ReportedState::Active);
    }
}
