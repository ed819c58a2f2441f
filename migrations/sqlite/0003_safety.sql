-- Fencing that respects the agents' kernel lifetimes, bounded event logs,
-- per-project quotas and an index for the release scan (docs/protocol.md).
-- Kept in step with ../postgres/0003_safety.sql. SQLite cannot add a CHECK
-- constraint to an existing table; fipd writes only known values, and the
-- PostgreSQL schema enforces the same rules.

-- The latest instant (ms) until which a kernel lifetime set by this host's
-- agent can keep an address alive; NULL while the agent has not said.
ALTER TABLE hosts ADD COLUMN backstop_at BIGINT;
-- The agent's local DAD override, if any.
ALTER TABLE hosts ADD COLUMN dad_override TEXT;

-- A repeated step (a DAD retry loop) is one event with a count.
ALTER TABLE events ADD COLUMN repeats BIGINT NOT NULL DEFAULT 1;
ALTER TABLE events ADD COLUMN last_at BIGINT;
CREATE INDEX events_at_idx ON events (at);

-- The release scan looks only at deleted, not yet released floating IPs.
CREATE INDEX floating_ips_unreleased_idx ON floating_ips (id)
    WHERE deleted_at IS NOT NULL AND released_at IS NULL;

-- Per-project quotas: NULL uses fipd's configured default, -1 is
-- unlimited. The row is also the lock that serialises creates.
CREATE TABLE project_quotas (
    project_id   TEXT PRIMARY KEY,
    floating_ips BIGINT,
    instances    BIGINT,
    updated_at   BIGINT NOT NULL,
    CONSTRAINT project_quotas_known CHECK (
        (floating_ips IS NULL OR floating_ips >= -1) AND (instances IS NULL OR instances >= -1))
);
