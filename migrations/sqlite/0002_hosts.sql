-- Hosts and their agents' leases; standby instances for failover.
-- Kept in step with ../postgres/0002_hosts.sql.

CREATE TABLE hosts (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    -- SHA-256 of the agent token; the secret itself is shown once.
    token_hash       TEXT NOT NULL,
    agent_version    TEXT,
    -- JSON [{"network", "interface", "mac"}] and ["finding", ...] from the agent.
    networks         TEXT NOT NULL,
    findings         TEXT NOT NULL,
    lease_expires_at BIGINT,
    last_seen_at     BIGINT,
    -- Set when the lease ran out, cleared on renewal.
    lost_at          BIGINT,
    -- Set when lease + grace ran out and the host's addresses were treated
    -- as gone; cleared on renewal.
    fenced_at        BIGINT,
    -- Revision of the host's desired state, bumped whenever its content
    -- (digest) changes, so agents can long-poll with a cursor.
    desired_revision BIGINT NOT NULL,
    desired_digest   TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    -- Fencing follows loss; a live host is neither.
    CONSTRAINT hosts_fenced_after_lost CHECK (fenced_at IS NULL OR lost_at IS NOT NULL),
    -- A host that never renewed a lease cannot have been seen or lost.
    CONSTRAINT hosts_lost_needs_lease CHECK (lost_at IS NULL OR lease_expires_at IS NOT NULL)
);
-- Instances and bindings name hosts by name.
CREATE UNIQUE INDEX hosts_name_key ON hosts (name);
CREATE UNIQUE INDEX hosts_token_hash_key ON hosts (token_hash);

-- JSON list of instance IDs to fail over to, in order of preference.
ALTER TABLE floating_ips ADD COLUMN standby_instance_ids TEXT NOT NULL DEFAULT '[]';
