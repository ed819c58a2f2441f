//! The user-visible status of a floating IP (design brief §3).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `DOWN`: not associated, or associated and not yet applied.
/// `PENDING`: a change is on its way to hosts.
/// `ACTIVE`: present, DAD passed and announced on the intended host at the
/// current revision. `ERROR`: DAD conflict or agent error (see `status_detail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum FloatingIpStatus {
    Down,
    Pending,
    Active,
    Error,
}

impl FloatingIpStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Down => "DOWN",
            Self::Pending => "PENDING",
            Self::Active => "ACTIVE",
            Self::Error => "ERROR",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "DOWN" => Some(Self::Down),
            "PENDING" => Some(Self::Pending),
            "ACTIVE" => Some(Self::Active),
            "ERROR" => Some(Self::Error),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_through_its_stored_form() {
        for s in [
            FloatingIpStatus::Down,
            FloatingIpStatus::Pending,
            FloatingIpStatus::Active,
            FloatingIpStatus::Error,
        ] {
            assert_eq!(FloatingIpStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(FloatingIpStatus::parse("down"), None);
    }
}
