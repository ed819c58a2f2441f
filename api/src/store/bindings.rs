//! SQL for per-host bindings: what the controller wants on each host and
//! what that host's agent last reported. This is where the DAD-safe order
//! of a move (design brief §4) lives: a host's desired state gains a
//! floating IP only once every other host that may hold it has confirmed
//! removal (or was fenced).

use sqlx::FromRow;

use super::{Conn, Store, StoreResult};

#[derive(Debug, Clone, FromRow)]
pub struct BindingRow {
    pub floating_ip_id: String,
    pub host: String,
    pub desired: String,
    pub desired_revision: i64,
    pub delivered_revision: Option<i64>,
    pub reported_state: Option<String>,
    pub reported_revision: Option<i64>,
    pub dad_ms: Option<i64>,
    pub defender_mac: Option<String>,
    pub na_sent: Option<i64>,
    pub detail: Option<String>,
    pub reported_at: Option<i64>,
    pub updated_at: i64,
}

const COLUMNS: &str = "floating_ip_id, host, desired, desired_revision, delivered_revision, \
     reported_state, reported_revision, dad_ms, defender_mac, na_sent, detail, reported_at, updated_at";

/// `o` has confirmed removal: its agent reported the address absent at or
/// after the revision that asked for the removal (fencing records the same).
const CONFIRMED: &str = "(o.desired = 'absent' AND COALESCE(o.reported_state, '') = 'absent' \
     AND COALESCE(o.reported_revision, 0) >= o.desired_revision)";

/// The move gate for binding `b`: no other host may still hold the address.
fn gate_open() -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM bindings o WHERE o.floating_ip_id = b.floating_ip_id \
         AND o.host <> b.host AND NOT {CONFIRMED})"
    )
}

/// Points the floating IP at `host` (or at no host) at `revision`: the new
/// host's binding becomes `present`, every other present binding `absent`.
/// A binding never delivered to its agent is dropped when it becomes absent
/// (that host cannot hold the address); one on a fenced host is confirmed at
/// once (its lease ran out and its addresses count as gone).
///
/// Returns the hosts that must now remove the address and confirm.
pub async fn set(
    conn: &mut Conn,
    fip_id: &str,
    host: Option<&str>,
    revision: i64,
    now: i64,
) -> StoreResult<Vec<String>> {
    sqlx::query(
        "UPDATE bindings SET desired = 'absent', desired_revision = $2, updated_at = $3 \
         WHERE floating_ip_id = $1 AND desired = 'present' AND ($4 IS NULL OR host <> $4)",
    )
    .bind(fip_id)
    .bind(revision)
    .bind(now)
    .bind(host)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "DELETE FROM bindings WHERE floating_ip_id = $1 AND desired = 'absent' \
         AND delivered_revision IS NULL",
    )
    .bind(fip_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE bindings SET reported_state = 'absent', reported_revision = desired_revision, \
         detail = 'host fenced: lease expired', reported_at = $2 \
         WHERE floating_ip_id = $1 AND desired = 'absent' \
         AND host IN (SELECT name FROM hosts WHERE fenced_at IS NOT NULL)",
    )
    .bind(fip_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if let Some(host) = host {
        sqlx::query(
            "INSERT INTO bindings (floating_ip_id, host, desired, desired_revision, updated_at) \
             VALUES ($1, $2, 'present', $3, $4) \
             ON CONFLICT (floating_ip_id, host) DO UPDATE \
             SET desired = 'present', desired_revision = $3, updated_at = $4",
        )
        .bind(fip_id)
        .bind(host)
        .bind(revision)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(sqlx::query_scalar(&format!(
        "SELECT o.host FROM bindings o WHERE o.floating_ip_id = $1 AND o.desired = 'absent' \
         AND o.desired_revision = $2 AND NOT {CONFIRMED} ORDER BY o.host"
    ))
    .bind(fip_id)
    .bind(revision)
    .fetch_all(conn)
    .await?)
}

/// Hosts that may still hold the floating IP's address: it was delivered
/// to their agent and they have not confirmed removal since.
pub async fn holders(conn: &mut Conn, fip_id: &str) -> StoreResult<Vec<String>> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT o.host FROM bindings o WHERE o.floating_ip_id = $1 \
         AND o.delivered_revision IS NOT NULL AND NOT {CONFIRMED} ORDER BY o.host"
    ))
    .bind(fip_id)
    .fetch_all(conn)
    .await?)
}

/// Marks present bindings of `host` whose gate is open as delivered at the
/// floating IP's current revision; returns the newly delivered ones. Runs
/// in the same transaction as the read of the desired state, so a move
/// that commits first makes this skip the row, and one that commits later
/// sees the delivery and waits for this host's confirmation.
///
/// The rows are locked in floating-IP order first, as [`lock_many`] locks
/// them for a batch of reports: two statements that lock several bindings
/// of one host in different orders could deadlock.
pub async fn mark_delivered(
    conn: &mut Conn,
    store: &Store,
    host: &str,
) -> StoreResult<Vec<(String, i64)>> {
    let lock = match store.backend() {
        super::Backend::Postgres => " FOR UPDATE OF c",
        super::Backend::Sqlite => "",
    };
    Ok(sqlx::query_as(&format!(
        "UPDATE bindings AS b SET delivered_revision = \
           (SELECT f.revision FROM floating_ips f WHERE f.id = b.floating_ip_id) \
         WHERE b.host = $1 AND b.desired = 'present' \
           AND b.floating_ip_id IN (SELECT c.floating_ip_id FROM bindings c \
               JOIN floating_ips f ON f.id = c.floating_ip_id \
               WHERE c.host = $1 AND c.desired = 'present' \
                 AND COALESCE(c.delivered_revision, -1) <> f.revision \
               ORDER BY c.floating_ip_id{lock}) \
           AND COALESCE(b.delivered_revision, -1) <> \
               (SELECT f.revision FROM floating_ips f WHERE f.id = b.floating_ip_id) \
           AND {} \
         RETURNING floating_ip_id, delivered_revision",
        gate_open()
    ))
    .bind(host)
    .fetch_all(conn)
    .await?)
}

/// One entry of a host's desired state.
#[derive(Debug, Clone, FromRow)]
pub struct DesiredRow {
    pub floating_ip_id: String,
    pub address: String,
    pub network: String,
    pub cidr: String,
    pub revision: i64,
}

/// The addresses `host` should hold: present, delivered, gate open.
pub async fn desired(conn: &mut Conn, host: &str) -> StoreResult<Vec<DesiredRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT f.id AS floating_ip_id, f.address, n.name AS network, p.cidr, f.revision \
         FROM bindings b JOIN floating_ips f ON f.id = b.floating_ip_id \
         JOIN networks n ON n.id = f.network_id JOIN pools p ON p.id = f.pool_id \
         WHERE b.host = $1 AND b.desired = 'present' AND b.delivered_revision IS NOT NULL \
           AND f.deleted_at IS NULL AND {} \
         ORDER BY f.id",
        gate_open()
    ))
    .bind(host)
    .fetch_all(conn)
    .await?)
}

/// One removal `host` must perform and confirm.
#[derive(Debug, Clone, FromRow)]
pub struct RemovalRow {
    pub floating_ip_id: String,
    pub address: String,
    pub network: String,
    pub revision: i64,
}

/// The removals `host` has not confirmed yet.
pub async fn removals(conn: &mut Conn, host: &str) -> StoreResult<Vec<RemovalRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT f.id AS floating_ip_id, f.address, n.name AS network, o.desired_revision AS revision \
         FROM bindings o JOIN floating_ips f ON f.id = o.floating_ip_id \
         JOIN networks n ON n.id = f.network_id \
         WHERE o.host = $1 AND o.desired = 'absent' AND NOT {CONFIRMED} ORDER BY f.id"
    ))
    .bind(host)
    .fetch_all(conn)
    .await?)
}

/// The bindings of `host` for the given floating IPs, locked in
/// floating-IP order (the order every multi-row locker of bindings keeps,
/// see [`mark_delivered`]).
pub async fn lock_many(
    conn: &mut Conn,
    store: &Store,
    host: &str,
    fip_ids: &[String],
) -> StoreResult<Vec<BindingRow>> {
    let ids = serde_json::to_string(fip_ids).expect("strings serialise");
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM bindings WHERE host = $1 AND floating_ip_id IN ({}) \
         ORDER BY floating_ip_id{}",
        store.json_list(2),
        store.for_update()
    ))
    .bind(host)
    .bind(ids)
    .fetch_all(conn)
    .await?)
}

/// The report fields of one binding, as [`record_reports`] stores them.
#[derive(serde::Serialize)]
struct ReportFields<'a> {
    floating_ip_id: &'a str,
    reported_state: Option<&'a str>,
    reported_revision: Option<i64>,
    dad_ms: Option<i64>,
    defender_mac: Option<&'a str>,
    na_sent: Option<i64>,
    detail: Option<&'a str>,
    reported_at: Option<i64>,
}

/// Stores agents' reports on bindings of `host`, in one statement.
pub async fn record_reports(
    conn: &mut Conn,
    store: &Store,
    host: &str,
    rows: &[BindingRow],
) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let fields: Vec<ReportFields> = rows
        .iter()
        .map(|b| ReportFields {
            floating_ip_id: &b.floating_ip_id,
            reported_state: b.reported_state.as_deref(),
            reported_revision: b.reported_revision,
            dad_ms: b.dad_ms,
            defender_mac: b.defender_mac.as_deref(),
            na_sent: b.na_sent,
            detail: b.detail.as_deref(),
            reported_at: b.reported_at,
        })
        .collect();
    let x = store.json_rows(
        2,
        &[
            ("floating_ip_id", "text"),
            ("reported_state", "text"),
            ("reported_revision", "bigint"),
            ("dad_ms", "bigint"),
            ("defender_mac", "text"),
            ("na_sent", "bigint"),
            ("detail", "text"),
            ("reported_at", "bigint"),
        ],
    );
    sqlx::query(&format!(
        "{x}UPDATE bindings SET reported_state = x.reported_state, \
           reported_revision = x.reported_revision, dad_ms = x.dad_ms, \
           defender_mac = x.defender_mac, na_sent = x.na_sent, detail = x.detail, \
           reported_at = x.reported_at \
         FROM x WHERE bindings.host = $1 AND bindings.floating_ip_id = x.floating_ip_id"
    ))
    .bind(host)
    .bind(serde_json::to_string(&fields).expect("serialisable"))
    .execute(conn)
    .await?;
    Ok(())
}

/// Confirms every pending removal on a fenced host; returns the floating IPs.
pub async fn confirm_fenced(conn: &mut Conn, host: &str, now: i64) -> StoreResult<Vec<String>> {
    Ok(sqlx::query_scalar(&format!(
        "UPDATE bindings AS o SET reported_state = 'absent', reported_revision = o.desired_revision, \
         detail = 'host fenced: lease expired', reported_at = $2 \
         WHERE o.host = $1 AND o.desired = 'absent' AND NOT {CONFIRMED} \
         RETURNING floating_ip_id"
    ))
    .bind(host)
    .bind(now)
    .fetch_all(conn)
    .await?)
}

/// Every host with a binding of any of the floating IPs (see [`hosts_of`]).
pub async fn hosts_of_many(
    conn: &mut Conn,
    store: &Store,
    fip_ids: &[String],
) -> StoreResult<Vec<String>> {
    let ids = serde_json::to_string(fip_ids).expect("strings serialise");
    Ok(sqlx::query_scalar(&format!(
        "SELECT DISTINCT host FROM bindings WHERE floating_ip_id IN ({}) ORDER BY host",
        store.json_list(1)
    ))
    .bind(ids)
    .fetch_all(conn)
    .await?)
}

/// Every host with a binding of the floating IP: the hosts whose desired
/// state a change of it may alter (its holder, hosts asked to remove it,
/// and the next holder waiting for those removals).
pub async fn hosts_of(conn: &mut Conn, fip_id: &str) -> StoreResult<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT host FROM bindings WHERE floating_ip_id = $1 ORDER BY host")
            .bind(fip_id)
            .fetch_all(conn)
            .await?,
    )
}

/// Live floating IPs placed on a lost host that name standby instances:
/// the controller tries to fail each over on every pass.
pub async fn failover_candidates(pool: &sqlx::AnyPool) -> StoreResult<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT b.floating_ip_id FROM bindings b \
         JOIN hosts h ON h.name = b.host \
         JOIN floating_ips f ON f.id = b.floating_ip_id \
         WHERE b.desired = 'present' AND h.lost_at IS NOT NULL AND f.deleted_at IS NULL \
           AND f.standby_instance_ids <> '[]' \
         ORDER BY b.floating_ip_id",
    )
    .fetch_all(pool)
    .await?)
}

/// Floating IPs whose placement names `host` (present bindings).
pub async fn present_on(conn: &mut Conn, host: &str) -> StoreResult<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT floating_ip_id FROM bindings WHERE host = $1 AND desired = 'present' ORDER BY floating_ip_id",
    )
    .bind(host)
    .fetch_all(conn)
    .await?)
}

/// Releases deleted floating IPs that no host holds any more (only `only`,
/// when given); returns them.
pub async fn release_unheld(
    conn: &mut Conn,
    now: i64,
    only: Option<&str>,
) -> StoreResult<Vec<String>> {
    Ok(sqlx::query_scalar(&format!(
        "UPDATE floating_ips SET released_at = $1 \
         WHERE deleted_at IS NOT NULL AND released_at IS NULL AND ($2 IS NULL OR id = $2) \
         AND NOT EXISTS (SELECT 1 FROM bindings o WHERE o.floating_ip_id = floating_ips.id \
                         AND o.delivered_revision IS NOT NULL AND NOT {CONFIRMED}) \
         RETURNING id"
    ))
    .bind(now)
    .bind(only)
    .fetch_all(conn)
    .await?)
}

impl Store {
    /// Bindings of the given floating IPs, for their representation.
    pub async fn bindings_of(&self, fip_ids: &[String]) -> StoreResult<Vec<BindingRow>> {
        if fip_ids.is_empty() {
            return Ok(Vec::new());
        }
        // A JSON array parameter keeps one statement for any page size on
        // both backends.
        let ids = serde_json::to_string(fip_ids).expect("strings serialise");
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM bindings WHERE floating_ip_id IN ({}) \
             ORDER BY floating_ip_id, host",
            self.json_list(1)
        ))
        .bind(ids)
        .fetch_all(self.pool())
        .await?)
    }
}
