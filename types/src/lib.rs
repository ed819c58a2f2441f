//! Wire types shared by `fipd` and `fip-agent`: the agent protocol
//! (lease, desired state, reports). Both sides depend on this crate only,
//! so the agent never links the server's database code.
//!
//! With the `openapi` feature the types also describe themselves for the
//! server's OpenAPI document.

use std::net::Ipv6Addr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// How the kernel should run Duplicate Address Detection for an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DadMode {
    /// RFC 4862: unusable until DAD passes.
    #[default]
    Strict,
    /// RFC 4429: usable at once; DAD still runs and can still fail.
    Optimistic,
    /// No DAD (`nodad`), for operators who fence by other means.
    Off,
}

/// What an agent reports about one floating IP on its host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReportedState {
    /// The agent is about to add the address.
    Applying,
    /// In the kernel, DAD running.
    Tentative,
    /// DAD passed and the first NA is out.
    Active,
    /// Another node defends the address; the copy was deleted.
    DadFailed,
    /// Not in the kernel (removal confirmed).
    Absent,
    /// The agent could not apply the address; see `detail`.
    Error,
}

impl DadMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Strict => "strict",
            Self::Optimistic => "optimistic",
            Self::Off => "off",
        }
    }
}

impl ReportedState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applying => "applying",
            Self::Tentative => "tentative",
            Self::Active => "active",
            Self::DadFailed => "dad_failed",
            Self::Absent => "absent",
            Self::Error => "error",
        }
    }
}

/// One served network of a host: which interface it is on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ServedNetwork {
    /// The network's name in fipd.
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 255, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")
    )]
    pub network: String,
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 15, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")
    )]
    pub interface: String,
    /// The interface's MAC, `aa:bb:cc:dd:ee:ff`.
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 17, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")
    )]
    pub mac: Option<String>,
}

/// At most 100 findings of at most 1,024 printable characters (what fipd
/// checks, api/src/app/agent.rs).
#[cfg(feature = "openapi")]
fn findings_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(1024))
                .pattern(Some(r"^[^\x00-\x1F\x7F-\x9F]*$")),
        )
        .max_items(Some(100))
        .description(Some(
            "Warnings from the agent's preflight check of its interfaces.",
        ))
        .build()
}

/// `POST /v1/agent/lease`: renew the host's lease and describe the agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 64, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")
    )]
    pub agent_version: String,
    #[cfg_attr(feature = "openapi", schema(max_items = 64))]
    pub networks: Vec<ServedNetwork>,
    /// Warnings from the agent's preflight check of its interfaces.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = findings_schema))]
    pub findings: Vec<String>,
    /// The longest kernel lifetime (valid_lft), in ms, that any address
    /// this agent manages has now or will be given before its next
    /// successful renewal. Every copy it holds therefore expires in the
    /// kernel by itself no later than this long after the lease runs out,
    /// even if the agent hangs; fipd uses it to decide when a host that
    /// stopped renewing can no longer hold anything (docs/protocol.md).
    /// Absent: the agent does not say, and fipd never assumes its copies
    /// expired.
    #[serde(default)]
    pub kernel_lifetime_max_ms: Option<u64>,
    /// How long, in ms, this agent's self-fence may take to remove what it
    /// holds now (it grows with the number of addresses: the kernel
    /// deletes them one by one). fipd assumes the host's removals no
    /// earlier than this long after its lease ran out, nor before the
    /// fence grace (docs/protocol.md). Absent: the grace alone.
    #[serde(default)]
    pub fence_max_ms: Option<u64>,
    /// The DAD mode this agent enforces instead of fipd's, if it overrides
    /// it locally.
    #[serde(default)]
    pub dad_override: Option<DadMode>,
}

/// The lease the host now holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LeaseResponse {
    pub host: String,
    pub lease_ttl_ms: u64,
    /// Renew after this long; well before the lease runs out.
    pub renew_after_ms: u64,
    pub lease_expires_at: DateTime<Utc>,
}

/// One address the host should hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DesiredAddress {
    pub floating_ip_id: Uuid,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Ipv6))]
    pub address: Ipv6Addr,
    /// The network's name; the agent maps it to an interface.
    pub network: String,
    /// The pool's prefix length, so the kernel installs the on-link route.
    pub prefix_len: u8,
    pub dad: DadMode,
    pub na_count: u32,
    pub na_interval_ms: u64,
    /// The floating IP's revision this entry belongs to; echo it in reports.
    pub revision: i64,
}

/// An address the host must remove and confirm (a move away or a delete).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RemovalRequest {
    pub floating_ip_id: Uuid,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Ipv6))]
    pub address: Ipv6Addr,
    pub network: String,
    /// Report `absent` at this revision once the address is gone.
    pub revision: i64,
}

/// `GET /v1/agent/desired-state`: everything the host should hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DesiredState {
    pub host: String,
    /// The host's desired-state revision; pass it back as `after`.
    pub revision: i64,
    pub addresses: Vec<DesiredAddress>,
    pub removals: Vec<RemovalRequest>,
}

/// One observation in `POST /v1/agent/reports`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub floating_ip_id: Uuid,
    pub revision: i64,
    pub state: ReportedState,
    pub dad_ms: Option<u64>,
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 17, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")
    )]
    pub defender_mac: Option<String>,
    pub na_sent: Option<u32>,
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 1024, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")
    )]
    pub detail: Option<String>,
    pub observed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReportBatch {
    #[cfg_attr(feature = "openapi", schema(max_items = 10000))]
    pub reports: Vec<Report>,
}

/// How many reports changed stored state (older revisions do not).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ReportResult {
    pub accepted: usize,
    pub ignored: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reported_states_use_snake_case_on_the_wire() {
        let s = serde_json::to_string(&ReportedState::DadFailed).unwrap();
        assert_eq!(s, "\"dad_failed\"");
        assert_eq!(ReportedState::DadFailed.as_str(), "dad_failed");
    }

    #[test]
    fn reports_reject_unknown_fields() {
        let r = serde_json::from_str::<Report>(
            r#"{"floating_ip_id":"00000000-0000-0000-0000-000000000000","revision":1,
                "state":"active","dad_ms":1,"defender_mac":null,"na_sent":1,"detail":null,
                "observed_at":"2026-01-01T00:00:00Z","extra":1}"#,
        );
        assert!(r.is_err());
    }
}
