-- The storage network (docs/NETWORK.md): nodes (one per account, known once
-- they poll for work), placements of stored objects on nodes, and the tasks
-- nodes are given.

CREATE TABLE nodes (
    user_id      BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    node_id      TEXT   NOT NULL UNIQUE,
    last_poll_at BIGINT NOT NULL,
    free_bytes   BIGINT NOT NULL
);

CREATE TABLE placements (
    id          INTEGER PRIMARY KEY,
    cid         TEXT   NOT NULL,
    node_user   BIGINT NOT NULL REFERENCES nodes (user_id) ON DELETE CASCADE,
    size        BIGINT NOT NULL,
    state       TEXT   NOT NULL,
    assigned_at BIGINT NOT NULL,
    stored_at   BIGINT
);
CREATE UNIQUE INDEX placements_one_live_per_node ON placements (cid, node_user) WHERE state IN ('assigned', 'stored');
CREATE INDEX placements_node ON placements (node_user, state);

CREATE TABLE tasks (
    id           INTEGER PRIMARY KEY,
    node_user    BIGINT NOT NULL REFERENCES nodes (user_id) ON DELETE CASCADE,
    placement_id BIGINT REFERENCES placements (id) ON DELETE CASCADE,
    kind         TEXT   NOT NULL,
    cid          TEXT   NOT NULL,
    size         BIGINT NOT NULL,
    state        TEXT   NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX tasks_open ON tasks (node_user, state, id);
