//! Per-address status as the agent reports it to the controller (design §3 "binding").

use std::net::Ipv6Addr;

use serde::Serialize;

use crate::addr::Mac;
use crate::net::netlink::AddrFlags;

/// The binding states of design §3, as reported by the agent.
///
/// These belong in `fip-types` once the wire format is agreed with the API
/// side; they live here until then so the agent does not edit that crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AddrState {
    /// A change was started and has no result yet.
    Applying,
    /// In the kernel, DAD still running.
    Tentative,
    /// In the kernel, DAD passed (and announced, when the agent added it).
    Active,
    /// DAD found another owner; the agent removed its copy.
    DadFailed,
    /// Not in the kernel (confirmed).
    Absent,
    /// The agent could not carry out the change; `detail` says why.
    Error,
}

impl AddrState {
    /// The state implied by the kernel's flags for an address it holds.
    pub fn from_flags(f: AddrFlags) -> Self {
        if f.dadfailed() {
            Self::DadFailed
        } else if f.tentative() {
            Self::Tentative
        } else {
            Self::Active
        }
    }
}

/// The result of applying one plan entry, with timings.
#[derive(Debug, Clone, Serialize)]
pub struct AddressStatus {
    pub dev: String,
    pub address: Ipv6Addr,
    pub prefix_len: u8,
    pub state: AddrState,
    /// How long DAD took, when this pass ran one.
    pub dad_ms: Option<u64>,
    /// Wall time this entry took in the apply step.
    pub elapsed_ms: u64,
    pub defender_mac: Option<Mac>,
    pub na_sent: u32,
    pub detail: Option<String>,
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
            AddrState::from_flags(flags(F::Dadfailed | F::Tentative)),
            AddrState::DadFailed
        );
    }

    #[test]
    fn tentative_and_optimistic_are_tentative() {
        assert_eq!(
            AddrState::from_flags(flags(F::Tentative)),
            AddrState::Tentative
        );
        assert_eq!(
            AddrState::from_flags(flags(F::Tentative | F::Optimistic)),
            AddrState::Tentative
        );
    }

    #[test]
    fn plain_and_nodad_addresses_are_active() {
        assert_eq!(
            AddrState::from_flags(flags(F::Permanent)),
            AddrState::Active
        );
        assert_eq!(AddrState::from_flags(flags(F::Nodad)), AddrState::Active);
    }

    #[test]
    fn states_serialize_in_snake_case() {
        assert_eq!(
            serde_json::to_string(&AddrState::DadFailed).unwrap(),
            "\"dad_failed\""
        );
    }
}
