-- The audit trail: one row per accepted supervisor's or admin's write (Effect::Audit),
-- keyed like every history row by (log_index, seq) so a replayed batch adds nothing.
CREATE TABLE audit (
    log_index BIGINT NOT NULL,
    seq INTEGER NOT NULL,
    -- the routing clock when the write was applied (Unix ms)
    at_ms BIGINT NOT NULL,
    -- the API token's configured name (never the token)
    actor TEXT NOT NULL,
    -- supervisor, admin
    role TEXT NOT NULL,
    -- the command's kind: reassign, change_priority, apply_config...
    action TEXT NOT NULL,
    -- what it was about, as kind:id words (call:c1 queue:support); empty for whole-config writes
    target TEXT NOT NULL,
    -- the accepted result: done, pulled, after_current_call...
    outcome TEXT NOT NULL,
    PRIMARY KEY (log_index, seq)
);
CREATE INDEX audit_at ON audit (at_ms);
CREATE INDEX audit_actor_at ON audit (actor, at_ms);
