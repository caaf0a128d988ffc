-- Accounts, devices, uptime ledger and bandwidth reports.
-- Portable types only (BIGINT, TEXT, DOUBLE PRECISION) so PostgreSQL can follow.
-- Timestamps are milliseconds since the Unix epoch.

CREATE TABLE users (
    id                 INTEGER PRIMARY KEY,
    username           TEXT    NOT NULL,
    email              TEXT    NOT NULL,
    password_hash      TEXT    NOT NULL,
    peer_id            TEXT    NOT NULL,
    -- bumped to revoke every token issued before
    token_version      BIGINT  NOT NULL DEFAULT 0,
    -- MB pledged at onboarding; 0 before
    storage_rented_mb  DOUBLE PRECISION NOT NULL DEFAULT 0,
    onboarded_at       BIGINT,
    -- uptime measured by the server from accepted heartbeats
    uptime_ms          BIGINT  NOT NULL DEFAULT 0,
    last_heartbeat_at  BIGINT,
    -- bytes of accepted file uploads / bytes served for download links
    files_uploaded_bytes   BIGINT NOT NULL DEFAULT 0,
    files_downloaded_bytes BIGINT NOT NULL DEFAULT 0,
    created_at         BIGINT  NOT NULL
);
CREATE UNIQUE INDEX users_username_ci ON users (lower(username));
CREATE UNIQUE INDEX users_email_ci    ON users (lower(email));
CREATE UNIQUE INDEX users_peer_id     ON users (peer_id);

-- One row per credited uptime interval: coins are the sum of this ledger.
CREATE TABLE coin_ledger (
    id                 INTEGER PRIMARY KEY,
    user_id            BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credited_ms        BIGINT  NOT NULL,
    storage_rented_mb  DOUBLE PRECISION NOT NULL,
    coin_rate          DOUBLE PRECISION NOT NULL,
    coins              DOUBLE PRECISION NOT NULL,
    created_at         BIGINT  NOT NULL
);
CREATE INDEX coin_ledger_user_time ON coin_ledger (user_id, created_at);

-- The latest bandwidth report of each account's peer node. Totals are the
-- node's cumulative counters; when a counter goes down (node restart) the
-- previous total is banked so it is never lost.
CREATE TABLE peer_bandwidth (
    user_id     BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    total_in    BIGINT NOT NULL,
    total_out   BIGINT NOT NULL,
    rate_in     DOUBLE PRECISION NOT NULL,
    rate_out    DOUBLE PRECISION NOT NULL,
    banked_in   BIGINT NOT NULL DEFAULT 0,
    banked_out  BIGINT NOT NULL DEFAULT 0,
    reported_at BIGINT NOT NULL
);
