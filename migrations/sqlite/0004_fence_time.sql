-- The instant (ms) until which this host's agent may still be removing
-- its addresses after its lease ran out (its self-fence takes longer the
-- more it holds); fipd assumes no removal before it. NULL: the agent has
-- not said, and the fence grace alone applies (docs/protocol.md).
ALTER TABLE hosts ADD COLUMN fence_done_at BIGINT;
