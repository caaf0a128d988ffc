-- Audits, repair and storage coins (docs/NETWORK.md).
--
-- A stored placement is audited when next_audit_at comes (NULL while an
-- audit of it is open: claiming it is one UPDATE, so two coordinators never
-- audit one placement at once). audit_failures counts failures in a row;
-- paid_from is where the interval the next passed audit pays for starts;
-- fetched_at is when the node last read the whole content (a store task
-- is not done before).
ALTER TABLE placements ADD COLUMN next_audit_at BIGINT;
ALTER TABLE placements ADD COLUMN fetched_at BIGINT;
ALTER TABLE placements ADD COLUMN paid_from BIGINT;
ALTER TABLE placements ADD COLUMN audit_failures BIGINT NOT NULL DEFAULT 0;
ALTER TABLE placements ADD COLUMN last_audit_at BIGINT;
ALTER TABLE placements ADD COLUMN last_audit_ok BOOLEAN;
CREATE INDEX placements_audit_due ON placements (state, next_audit_at);

-- One row per audit task: the leaf asked for, the deadline, the outcome
-- (open, passed, failed, late, cancelled).
CREATE TABLE audits (
    id           INTEGER PRIMARY KEY,
    task_id      BIGINT NOT NULL UNIQUE REFERENCES tasks (id) ON DELETE CASCADE,
    placement_id BIGINT NOT NULL REFERENCES placements (id) ON DELETE CASCADE,
    node_user    BIGINT NOT NULL REFERENCES nodes (user_id) ON DELETE CASCADE,
    block        TEXT   NOT NULL,
    deadline     BIGINT NOT NULL,
    outcome      TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    answered_at  BIGINT
);
CREATE INDEX audits_open ON audits (outcome, deadline);
CREATE INDEX audits_node_time ON audits (node_user, created_at);

-- The ledger holds two kinds of coins: uptime (the contract's heartbeats)
-- and storage (a passed audit pays bytes x hours since from_ms).
ALTER TABLE coin_ledger ADD COLUMN kind TEXT NOT NULL DEFAULT 'uptime';
ALTER TABLE coin_ledger ADD COLUMN cid TEXT;
ALTER TABLE coin_ledger ADD COLUMN bytes BIGINT;
ALTER TABLE coin_ledger ADD COLUMN from_ms BIGINT;
