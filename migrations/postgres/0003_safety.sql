-- Fencing that respects the agents' kernel lifetimes, bounded event logs,
-- per-project quotas and an index for the release scan (docs/protocol.md).
-- Kept in step with ../sqlite/0003_safety.sql.

-- The latest instant (ms, on the database's clock) until which a kernel
-- lifetime set by this host's agent can keep an address alive; NULL while
-- the agent has not said. With DAD off, fipd never treats the host's
-- addresses as gone before this instant.
ALTER TABLE hosts ADD COLUMN backstop_at BIGINT;
-- The DAD mode the agent enforces locally when it overrides fipd's
-- (`strict`, `optimistic`, `off`); NULL when it follows fipd.
ALTER TABLE hosts ADD COLUMN dad_override TEXT;
ALTER TABLE hosts ADD CONSTRAINT hosts_dad_override_known
    CHECK (dad_override IS NULL OR dad_override IN ('strict', 'optimistic', 'off'));

-- A repeated step (a DAD retry loop) is one event with a count, so a
-- floating IP stuck in a conflict does not grow its log forever.
ALTER TABLE events ADD COLUMN repeats BIGINT NOT NULL DEFAULT 1;
ALTER TABLE events ADD COLUMN last_at BIGINT;
ALTER TABLE events ADD CONSTRAINT events_repeats_positive CHECK (repeats >= 1);
-- Retention by age deletes oldest first.
CREATE INDEX events_at_idx ON events (at);

-- The controller scans deleted, not yet released floating IPs on every
-- pass; this keeps that scan proportional to them, not to every row.
CREATE INDEX floating_ips_unreleased_idx ON floating_ips (id)
    WHERE deleted_at IS NOT NULL AND released_at IS NULL;

-- Per-project quotas: NULL uses fipd's configured default, -1 is
-- unlimited. A row also serves as the lock that makes concurrent creates
-- count one after the other.
CREATE TABLE project_quotas (
    project_id   TEXT COLLATE "C" PRIMARY KEY,
    floating_ips BIGINT,
    instances    BIGINT,
    updated_at   BIGINT NOT NULL,
    CONSTRAINT project_quotas_known CHECK (
        (floating_ips IS NULL OR floating_ips >= -1) AND (instances IS NULL OR instances >= -1))
);
