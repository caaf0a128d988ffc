-- Resumable uploads (tus 1.0, docs/API.md "/uploads"). An upload's state
-- lives here so any instance can resume it: the bytes of its complete 1 MiB
-- leaves are blob-store objects `tus<id>p<name>` (one per PATCH that completed
-- a leaf), their SHA-256 digests are `leaves` (hex, in order),
-- and the bytes after the last complete leaf are `tail` (under 1 MiB).
-- Written per backend: BLOB here, BYTEA in PostgreSQL.
CREATE TABLE uploads (
    id          TEXT    PRIMARY KEY,
    user_id     BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- NULL while the length is deferred
    length      BIGINT,
    received    BIGINT  NOT NULL DEFAULT 0,
    -- each part object: its leaf count and name, then a comma ("8:1f2e,3:9a0b,")
    parts       TEXT    NOT NULL,
    leaves      TEXT    NOT NULL,
    tail        BLOB    NOT NULL,
    metadata    TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    mime        TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL,
    -- set once the last byte arrived and the file was stored
    cid         TEXT,
    car_cid     TEXT,
    -- the request (PATCH, DELETE) working on the upload, on any instance,
    -- until lease_until (ms; renewed while it works, so a dead instance's
    -- lease runs out)
    lease       TEXT,
    lease_until BIGINT
);
CREATE INDEX uploads_user ON uploads (user_id);
CREATE INDEX uploads_expiry ON uploads (expires_at);
