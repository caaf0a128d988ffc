-- Traffic per account per UTC day, written by the same code paths that
-- update the counters: uploads, bytes served for download links, and the
-- growth of the peer node's reported totals.
CREATE TABLE traffic_daily (
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    day        BIGINT NOT NULL, -- days since 1970-01-01 (UTC)
    files_up   BIGINT NOT NULL DEFAULT 0,
    files_down BIGINT NOT NULL DEFAULT 0,
    peer_in    BIGINT NOT NULL DEFAULT 0,
    peer_out   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, day)
);
