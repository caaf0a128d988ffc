-- Failed attempts per key (an account or a client address) in a fixed
-- window, kept in the database so every instance counts the same attempts.
-- Timestamps are milliseconds since the Unix epoch.
CREATE TABLE throttle (
    key          TEXT   PRIMARY KEY,
    window_start BIGINT NOT NULL,
    failures     BIGINT NOT NULL
);
CREATE INDEX throttle_window ON throttle (window_start);
