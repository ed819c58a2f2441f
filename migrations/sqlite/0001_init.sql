-- fipd schema, SQLite flavour (the embedded single-node default).
-- Kept in step with ../postgres/0001_init.sql: same tables, columns and rules.
-- Types are limited to TEXT and BIGINT so one portable store layer (sqlx Any)
-- reads both backends: UUIDs are TEXT, instants are BIGINT milliseconds since
-- the Unix epoch, addresses are canonical TEXT plus a 32-hex-digit key whose
-- lexical order is numeric order.

CREATE TABLE networks (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
-- Operators and Terraform address networks by name; two with one name would be ambiguous.
CREATE UNIQUE INDEX networks_name_key ON networks (name);

CREATE TABLE pools (
    id          TEXT PRIMARY KEY,
    network_id  TEXT NOT NULL REFERENCES networks (id),
    cidr        TEXT NOT NULL,
    -- First and last address of the cidr, as address keys; used for overlap checks.
    first_key   TEXT NOT NULL,
    last_key    TEXT NOT NULL,
    -- JSON: [["first","last"], ...] and ["addr", ...]; validated by fipd.
    ranges      TEXT NOT NULL,
    reserved    TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    -- A prefix spans at least one address in increasing order.
    CONSTRAINT pools_span_ordered CHECK (first_key <= last_key),
    CONSTRAINT pools_keys_are_hex CHECK (length(first_key) = 32 AND length(last_key) = 32)
);
CREATE INDEX pools_network_idx ON pools (network_id, first_key);

-- Pools on one network never overlap: an address must belong to exactly one
-- pool, or release and quarantine could hand it out twice. SQLite serialises
-- writers, so a check-then-insert trigger is race-free here.
CREATE TRIGGER pools_no_overlap BEFORE INSERT ON pools
WHEN EXISTS (
    SELECT 1 FROM pools p
    WHERE p.network_id = NEW.network_id
      AND p.first_key <= NEW.last_key
      AND NEW.first_key <= p.last_key
)
BEGIN
    SELECT RAISE(ABORT, 'pool_overlap');
END;

CREATE TABLE instances (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    project_id  TEXT NOT NULL,
    host        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX instances_project_idx ON instances (project_id, id);

CREATE TABLE floating_ips (
    id            TEXT PRIMARY KEY,
    network_id    TEXT NOT NULL REFERENCES networks (id),
    pool_id       TEXT NOT NULL REFERENCES pools (id),
    address       TEXT NOT NULL,
    address_key   TEXT NOT NULL,
    project_id    TEXT NOT NULL,
    description   TEXT NOT NULL,
    instance_id   TEXT REFERENCES instances (id),
    status        TEXT NOT NULL,
    status_detail TEXT,
    revision      BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    -- Set by DELETE: the API answers 404 from then on, but the row keeps the
    -- address out of the pool (see floating_ips_address_key).
    deleted_at    BIGINT,
    -- Set once no host holds the address any more; quarantine counts from here.
    released_at   BIGINT,
    CONSTRAINT floating_ips_status_known CHECK (status IN ('DOWN', 'PENDING', 'ACTIVE', 'ERROR')),
    -- Revisions start at 1 and only grow; If-Match and agent reports compare them.
    CONSTRAINT floating_ips_revision_positive CHECK (revision >= 1),
    -- Not associated means nothing is wanted on any host: DOWN by definition.
    CONSTRAINT floating_ips_unassociated_is_down CHECK (instance_id IS NOT NULL OR status = 'DOWN'),
    -- A deleted floating IP is associated with nothing.
    CONSTRAINT floating_ips_deleted_is_unassociated CHECK (deleted_at IS NULL OR instance_id IS NULL),
    -- Only a deleted floating IP can be released back to the pool.
    CONSTRAINT floating_ips_release_after_delete CHECK (released_at IS NULL OR deleted_at IS NOT NULL)
);
-- One allocation per address per network. Deleted rows stay until their
-- quarantine has passed, so an address is never handed out while a host may
-- still hold it.
CREATE UNIQUE INDEX floating_ips_address_key ON floating_ips (network_id, address_key);
CREATE INDEX floating_ips_pool_idx ON floating_ips (pool_id, address_key);
CREATE INDEX floating_ips_project_idx ON floating_ips (project_id, id);
CREATE INDEX floating_ips_instance_idx ON floating_ips (instance_id);

-- Per floating IP and host: what the controller wants there and what the
-- host's agent last reported (design brief §3).
CREATE TABLE bindings (
    floating_ip_id    TEXT NOT NULL REFERENCES floating_ips (id) ON DELETE CASCADE,
    host              TEXT NOT NULL,
    desired           TEXT NOT NULL,
    desired_revision  BIGINT NOT NULL,
    -- Highest revision of the host's desired state that contained this
    -- floating IP and was handed to its agent. Once delivered, the host may
    -- hold the address until it reports it absent (or its lease expires).
    delivered_revision BIGINT,
    reported_state    TEXT,
    reported_revision BIGINT,
    dad_ms            BIGINT,
    defender_mac      TEXT,
    na_sent           BIGINT,
    detail            TEXT,
    reported_at       BIGINT,
    updated_at        BIGINT NOT NULL,
    PRIMARY KEY (floating_ip_id, host),
    CONSTRAINT bindings_desired_known CHECK (desired IN ('present', 'absent')),
    CONSTRAINT bindings_reported_known CHECK (reported_state IS NULL OR reported_state IN
        ('applying', 'tentative', 'active', 'dad_failed', 'absent', 'error')),
    -- A report always says which revision it describes.
    CONSTRAINT bindings_report_has_revision CHECK ((reported_state IS NULL) = (reported_revision IS NULL))
);
CREATE INDEX bindings_host_idx ON bindings (host);

-- Append-only log per floating IP: how an operator reads what happened.
CREATE TABLE events (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    floating_ip_id TEXT NOT NULL,
    at             BIGINT NOT NULL,
    kind           TEXT NOT NULL,
    host           TEXT,
    revision       BIGINT NOT NULL,
    detail         TEXT NOT NULL
);
CREATE INDEX events_floating_ip_idx ON events (floating_ip_id, id);

-- Project tokens; only a SHA-256 of the secret is stored.
CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL,
    description TEXT NOT NULL,
    token_hash  TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX tokens_hash_key ON tokens (token_hash);

-- Idempotency-Key records: the first response to a POST, replayed for 24 h.
-- status/response are NULL while the first request is still in flight.
CREATE TABLE idempotency_keys (
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       BIGINT,
    response     TEXT,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (scope, key),
    CONSTRAINT idempotency_keys_complete CHECK ((status IS NULL) = (response IS NULL))
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
