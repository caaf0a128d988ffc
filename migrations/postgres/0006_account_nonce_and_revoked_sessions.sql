-- Every account has a random nonce that its tokens carry: a token can never
-- pass for a later account, even one restored from a backup. (Identity ids
-- are never reused on PostgreSQL; SQLite's table is rebuilt with AUTOINCREMENT.)
ALTER TABLE users ADD COLUMN nonce TEXT NOT NULL DEFAULT '';
UPDATE users SET nonce = replace(CAST(gen_random_uuid() AS TEXT), '-', '');
ALTER TABLE users ALTER COLUMN nonce DROP DEFAULT;

-- Sessions ended before their token expired (log out): the token's id until it expires.
CREATE TABLE revoked_tokens (
    jti        TEXT   PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revoked_tokens_expiry ON revoked_tokens (expires_at);
