//! Request and response bodies of the API, with their OpenAPI schemas, and
//! the conversions from stored rows.

use std::net::Ipv6Addr;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::app::floating_ips::MAX_STANDBYS;
use crate::app::pools::{Pool as AppPool, PoolUsage as AppPoolUsage};
use crate::domain::{Description, FloatingIpStatus, HostName, Name, ProjectId};
use crate::store::{
    BindingRow, EventRow, FloatingIpRow, HostRow, InstanceRow, NetworkRow, TokenRow,
};

fn ts(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// A page of results. Pass `next_page_token` back as `page_token` for the
/// next page; it is absent on the last page.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: Option<String>,
}

impl<T> Page<T> {
    pub fn new<R>(rows: Vec<R>, next: Option<String>, f: impl FnMut(R) -> T) -> Self {
        Self {
            items: rows.into_iter().map(f).collect(),
            next_page_token: next,
        }
    }
}

/// A page size: 1 to 1000, 100 when left out. Its bounds are checked where
/// the query is read, and the OpenAPI document states them from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct Limit(i64);

impl Limit {
    pub const DEFAULT: i64 = 100;
    pub const MAX: i64 = 1000;

    /// The page size asked for, or the default.
    pub fn or_default(limit: Option<Self>) -> i64 {
        limit.map_or(Self::DEFAULT, |l| l.0)
    }
}

impl TryFrom<i64> for Limit {
    type Error = String;
    fn try_from(n: i64) -> Result<Self, String> {
        if (1..=Self::MAX).contains(&n) {
            Ok(Self(n))
        } else {
            Err(format!("must be between 1 and {}", Self::MAX))
        }
    }
}

impl utoipa::PartialSchema for Limit {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(1))
            .maximum(Some(Self::MAX))
            .default(Some(Self::DEFAULT.into()))
            .description(Some("Page size."))
            .into()
    }
}

impl utoipa::ToSchema for Limit {}

/// Paging parameters of lists ordered by ID: the token is the last ID of
/// the previous page.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    #[param(inline)]
    pub limit: Option<Limit>,
    /// `next_page_token` of the previous page.
    pub page_token: Option<Uuid>,
}

/// Paging parameters of an event log: the token is the last event's ID.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventPageParams {
    #[param(inline)]
    pub limit: Option<Limit>,
    /// `next_page_token` of the previous page.
    pub page_token: Option<u64>,
}

/// Paging parameters of the quota list: the token is the last project ID.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct QuotaPageParams {
    #[param(inline)]
    pub limit: Option<Limit>,
    /// `next_page_token` of the previous page.
    #[param(inline)]
    pub page_token: Option<ProjectId>,
}

// ---- networks ---------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkCreate {
    /// Unique name.
    #[schema(inline)]
    pub name: Name,
    #[schema(inline)]
    pub description: Option<Description>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkUpdate {
    #[schema(inline)]
    pub name: Option<Name>,
    #[schema(inline)]
    pub description: Option<Description>,
}

/// One L2 segment where DAD happens; floating IPs move only within one.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Network {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<NetworkRow> for Network {
    fn from(r: NetworkRow) -> Self {
        Self {
            id: r.id.parse().unwrap_or_default(),
            name: r.name,
            description: r.description,
            created_at: ts(r.created_at),
            updated_at: ts(r.updated_at),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct NetworkListParams {
    #[param(inline)]
    pub limit: Option<Limit>,
    /// `next_page_token` of the previous page.
    pub page_token: Option<Uuid>,
    /// Only the network with this name.
    #[param(inline)]
    pub name: Option<Name>,
}

// ---- pools ------------------------------------------------------------------

/// An inclusive address range.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddrRange {
    #[schema(value_type = String, format = Ipv6, example = "2001:db8:100::10")]
    pub first: Ipv6Addr,
    #[schema(value_type = String, format = Ipv6, example = "2001:db8:100::ff")]
    pub last: Ipv6Addr,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolCreate {
    pub network_id: Uuid,
    /// IPv6 prefix, /16 to /127, no host bits.
    #[schema(example = "2001:db8:100::/64")]
    pub cidr: String,
    /// Allocation ranges inside `cidr`; default: the whole prefix.
    #[schema(min_items = 1)]
    pub ranges: Option<Vec<AddrRange>>,
    /// Addresses never to allocate (gateways, VRRP, ...).
    #[schema(value_type = Option<Vec<String>>)]
    pub reserved: Option<Vec<Ipv6Addr>>,
    #[schema(inline)]
    pub description: Option<Description>,
}

/// An IPv6 prefix on a network that floating IPs are allocated from.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Pool {
    pub id: Uuid,
    pub network_id: Uuid,
    pub cidr: String,
    pub ranges: Vec<AddrRange>,
    #[schema(value_type = Vec<String>)]
    pub reserved: Vec<Ipv6Addr>,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<AppPool> for Pool {
    fn from(p: AppPool) -> Self {
        Self {
            id: p.row.id.parse().unwrap_or_default(),
            network_id: p.row.network_id.parse().unwrap_or_default(),
            cidr: p.space.prefix().to_string(),
            ranges: p
                .space
                .ranges()
                .iter()
                .map(|r| AddrRange {
                    first: r.first.into(),
                    last: r.last.into(),
                })
                .collect(),
            reserved: p.space.reserved().map(Ipv6Addr::from).collect(),
            description: p.row.description,
            created_at: ts(p.row.created_at),
            updated_at: ts(p.row.updated_at),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PoolListParams {
    #[param(inline)]
    pub limit: Option<Limit>,
    /// `next_page_token` of the previous page.
    pub page_token: Option<Uuid>,
    pub network_id: Option<Uuid>,
}

/// How much of a pool is in use. Counts that can exceed 2^64 are decimal strings.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PoolUsage {
    pub pool_id: Uuid,
    /// Live floating IPs.
    pub allocated: i64,
    /// Deleted floating IPs whose address is not reusable yet (a host may
    /// still hold it, or it is in quarantine).
    pub held: i64,
    /// Allocatable addresses in total (decimal string; a /64 exceeds u64).
    #[schema(example = "18446744073709551359")]
    pub capacity: String,
    /// `capacity - allocated - held` (decimal string).
    pub available: String,
}

impl PoolUsage {
    pub fn new(id: Uuid, u: AppPoolUsage) -> Self {
        let used = u128::try_from(u.allocated + u.held).unwrap_or(0);
        Self {
            pool_id: id,
            allocated: u.allocated,
            held: u.held,
            capacity: u.capacity.to_string(),
            available: u.capacity.saturating_sub(used).to_string(),
        }
    }
}

// ---- floating IPs -------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FloatingIpCreate {
    /// Allocate from this network's pools (first with room). One of
    /// `network_id` and `pool_id` is required.
    pub network_id: Option<Uuid>,
    /// Allocate from this pool.
    pub pool_id: Option<Uuid>,
    /// A specific address; default: a random free one.
    #[schema(value_type = Option<String>, format = Ipv6)]
    pub address: Option<Ipv6Addr>,
    /// Owning project; required with the admin token, implied by a project token.
    #[schema(inline)]
    pub project_id: Option<ProjectId>,
    #[schema(inline)]
    pub description: Option<Description>,
    /// Associate with this instance at once.
    pub instance_id: Option<Uuid>,
}

impl FloatingIpCreate {
    /// A create names at least one of these (not as `null`); openapi.rs
    /// states it in the document.
    pub const ONE_OF_REQUIRED: [&'static str; 2] = ["network_id", "pool_id"];
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FloatingIpUpdate {
    /// An instance ID associates; `null` disassociates; absent leaves it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Uuid>, nullable)]
    pub instance_id: Option<Option<Uuid>>,
    #[schema(inline)]
    pub description: Option<Description>,
    #[schema(schema_with = standby_list_schema)]
    pub standby_instance_ids: Option<Vec<Uuid>>,
}

/// What the application layer accepts as standbys: each instance once, at
/// most [`MAX_STANDBYS`].
fn standby_list_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
    ArrayBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::Array,
            Type::Null,
        ]))
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
        )
        .unique_items(true)
        .max_items(Some(MAX_STANDBYS))
        .description(Some(
            "Instances to fail over to, in order, when the active host is lost (each once).",
        ))
        .build()
}

/// Per-host placement of a floating IP: wanted and observed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Binding {
    pub host: String,
    /// `present` or `absent`.
    pub desired: String,
    /// The floating IP's revision that set `desired`.
    pub desired_revision: i64,
    /// What the host's agent last reported: `applying`, `tentative`,
    /// `active`, `dad_failed`, `absent` or `error`.
    pub state: Option<String>,
    pub reported_revision: Option<i64>,
    /// How long the last DAD took on this host.
    pub dad_ms: Option<i64>,
    /// The MAC that defended the address when DAD failed.
    pub defender_mac: Option<String>,
    pub na_sent: Option<i64>,
    pub detail: Option<String>,
    pub reported_at: Option<DateTime<Utc>>,
}

impl From<BindingRow> for Binding {
    fn from(b: BindingRow) -> Self {
        Self {
            host: b.host,
            desired: b.desired,
            desired_revision: b.desired_revision,
            state: b.reported_state,
            reported_revision: b.reported_revision,
            dad_ms: b.dad_ms,
            defender_mac: b.defender_mac,
            na_sent: b.na_sent,
            detail: b.detail,
            reported_at: b.reported_at.map(ts),
        }
    }
}

/// A floating IPv6 address.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FloatingIp {
    pub id: Uuid,
    #[schema(value_type = String, format = Ipv6)]
    pub address: Ipv6Addr,
    pub network_id: Uuid,
    pub pool_id: Uuid,
    pub project_id: String,
    pub instance_id: Option<Uuid>,
    /// The host of the associated instance: where the address should be.
    pub host: Option<String>,
    pub status: FloatingIpStatus,
    pub status_detail: Option<String>,
    /// Increments on every change of what is wanted (association,
    /// description, standbys, failover); status changes do not bump it.
    /// Send it back in `If-Match`.
    pub revision: i64,
    pub description: String,
    pub standby_instance_ids: Vec<Uuid>,
    /// Where the address is wanted and what each host's agent reported.
    pub bindings: Vec<Binding>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl FloatingIp {
    /// The representation of a row with its bindings (taken from `all`).
    pub fn with_bindings(r: FloatingIpRow, all: &mut Vec<BindingRow>) -> Self {
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(all)
            .into_iter()
            .partition(|b| b.floating_ip_id == r.id);
        *all = rest;
        let mut f = Self::from(r);
        f.bindings = mine.into_iter().map(Binding::from).collect();
        f
    }
}

impl From<FloatingIpRow> for FloatingIp {
    fn from(r: FloatingIpRow) -> Self {
        let standby: Vec<String> =
            serde_json::from_str(&r.standby_instance_ids).unwrap_or_default();
        Self {
            standby_instance_ids: standby.iter().filter_map(|s| s.parse().ok()).collect(),
            bindings: Vec::new(),
            id: r.id.parse().unwrap_or_default(),
            address: r.address.parse().unwrap_or(Ipv6Addr::UNSPECIFIED),
            network_id: r.network_id.parse().unwrap_or_default(),
            pool_id: r.pool_id.parse().unwrap_or_default(),
            project_id: r.project_id,
            instance_id: r.instance_id.and_then(|i| i.parse().ok()),
            host: r.host,
            status: FloatingIpStatus::parse(&r.status).unwrap_or(FloatingIpStatus::Error),
            status_detail: r.status_detail,
            revision: r.revision,
            description: r.description,
            created_at: ts(r.created_at),
            updated_at: ts(r.updated_at),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FloatingIpListParams {
    #[param(inline)]
    pub limit: Option<Limit>,
    /// `next_page_token` of the previous page.
    pub page_token: Option<Uuid>,
    pub network_id: Option<Uuid>,
    pub pool_id: Option<Uuid>,
    #[param(inline)]
    pub project_id: Option<ProjectId>,
    pub instance_id: Option<Uuid>,
    pub status: Option<FloatingIpStatus>,
    #[param(value_type = Option<String>, format = Ipv6)]
    pub address: Option<Ipv6Addr>,
}

/// One entry of a floating IP's event log.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Event {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// What happened, e.g. `allocated`, `associated`, `deleted`.
    pub kind: String,
    /// The host the event concerns, if any.
    pub host: Option<String>,
    /// The floating IP's revision the event belongs to.
    pub revision: i64,
    /// Event-specific facts (of the last occurrence, when repeated).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    /// How many times this step happened in a row: an agent retrying a
    /// DAD conflict logs one `dad_started` and one `dad_failed` event
    /// with a count rather than two new events per attempt.
    pub repeats: i64,
    /// When the step last happened, if it repeated.
    pub last_at: Option<DateTime<Utc>>,
}

impl From<EventRow> for Event {
    fn from(r: EventRow) -> Self {
        Self {
            id: r.id,
            at: ts(r.at),
            kind: r.kind,
            host: r.host,
            revision: r.revision,
            detail: serde_json::from_str(&r.detail).unwrap_or(serde_json::Value::Null),
            repeats: r.repeats,
            last_at: r.last_at.map(ts),
        }
    }
}

// ---- instances --------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceCreate {
    /// The compute service's ID for the instance; default: a new UUID.
    pub id: Option<Uuid>,
    #[schema(inline)]
    pub name: Name,
    #[schema(inline)]
    pub project_id: Option<ProjectId>,
    /// The host the instance runs on.
    #[schema(inline)]
    pub host: HostName,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceUpdate {
    /// A new host: the instance migrated, its floating IPs follow.
    #[schema(inline)]
    pub host: Option<HostName>,
    #[schema(inline)]
    pub name: Option<Name>,
}

/// A workload placed on a host.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Instance {
    pub id: Uuid,
    pub name: String,
    pub project_id: String,
    pub host: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<InstanceRow> for Instance {
    fn from(r: InstanceRow) -> Self {
        Self {
            id: r.id.parse().unwrap_or_default(),
            name: r.name,
            project_id: r.project_id,
            host: r.host,
            created_at: ts(r.created_at),
            updated_at: ts(r.updated_at),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InstanceListParams {
    #[param(inline)]
    pub limit: Option<Limit>,
    /// `next_page_token` of the previous page.
    pub page_token: Option<Uuid>,
    #[param(inline)]
    pub project_id: Option<ProjectId>,
    #[param(inline)]
    pub host: Option<HostName>,
}

// ---- tokens -----------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenCreate {
    #[schema(inline)]
    pub project_id: ProjectId,
    #[schema(inline)]
    pub description: Option<Description>,
}

/// A project token (the secret is shown only at creation).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Token {
    pub id: Uuid,
    pub project_id: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
}

impl From<TokenRow> for Token {
    fn from(r: TokenRow) -> Self {
        Self {
            id: r.id.parse().unwrap_or_default(),
            project_id: r.project_id,
            description: r.description,
            created_at: ts(r.created_at),
        }
    }
}

/// A new project token with its secret, shown this once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenCreated {
    #[serde(flatten)]
    pub info: Token,
    /// The bearer secret. Store it now: only its hash is kept.
    pub token: String,
}

// ---- hosts ------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostCreate {
    /// The host's name, as instances name it.
    #[schema(inline)]
    pub name: HostName,
}

/// A compute node running one agent.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Host {
    pub id: Uuid,
    pub name: String,
    /// `alive` (lease valid), `lost` (lease expired) or `never_seen`.
    pub state: String,
    pub agent_version: Option<String>,
    /// The networks the agent serves, with interface and MAC.
    pub networks: Vec<fip_types::ServedNetwork>,
    /// Warnings from the agent's preflight check.
    pub findings: Vec<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl Host {
    pub fn new(r: HostRow, now: i64) -> Self {
        Self {
            id: r.id.parse().unwrap_or_default(),
            state: crate::app::hosts::HostState::of(&r, now)
                .as_str()
                .to_owned(),
            name: r.name,
            agent_version: r.agent_version,
            networks: serde_json::from_str(&r.networks).unwrap_or_default(),
            findings: serde_json::from_str(&r.findings).unwrap_or_default(),
            lease_expires_at: r.lease_expires_at.map(ts),
            last_seen_at: r.last_seen_at.map(ts),
            created_at: ts(r.created_at),
        }
    }
}

/// A new host with its agent token, shown this once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HostCreated {
    #[serde(flatten)]
    pub host: Host,
    /// The agent's bearer token. Store it now: only its hash is kept.
    pub token: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DesiredStateParams {
    /// Answer once the host's desired-state revision is above this (default 0).
    pub after: Option<i64>,
    /// Longest wait in ms for a newer revision (default 30000).
    #[param(maximum = 60000)]
    pub wait_ms: Option<u64>,
}

// ---- quotas -----------------------------------------------------------------

/// One resource's limit and current use in a project.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QuotaUsage {
    /// At most this many; `null` is unlimited.
    pub limit: Option<i64>,
    /// How many the project has now.
    pub used: i64,
    /// The limit is fipd's default, not one set for this project.
    pub default: bool,
}

impl From<crate::app::quotas::Usage> for QuotaUsage {
    fn from(u: crate::app::quotas::Usage) -> Self {
        Self {
            limit: u.limit,
            used: u.used,
            default: u.default,
        }
    }
}

/// A project's quota: what it may create, and what it has.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Quota {
    pub project_id: String,
    pub floating_ips: QuotaUsage,
    pub instances: QuotaUsage,
}

impl From<crate::app::quotas::QuotaView> for Quota {
    fn from(v: crate::app::quotas::QuotaView) -> Self {
        Self {
            project_id: v.project_id.to_string(),
            floating_ips: v.floating_ips.into(),
            instances: v.instances.into(),
        }
    }
}

/// A project's own limits. For each: a number (0 or more), `null` for
/// unlimited, or leave it out to use fipd's default.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaUpdate {
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>, nullable, minimum = 0)]
    pub floating_ips: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>, nullable, minimum = 0)]
    pub instances: Option<Option<i64>>,
}
