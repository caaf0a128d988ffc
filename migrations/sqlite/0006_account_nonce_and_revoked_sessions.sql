-- Every account has a random nonce that its tokens carry: a token can never
-- pass for another account, even one that later gets the same id or is
-- restored from a backup. (Ids are never reused either: SQLite's users
-- table is rebuilt with AUTOINCREMENT by Db::connect, which must switch
-- foreign keys off around the rebuild, something a migration cannot do.)
ALTER TABLE users ADD COLUMN nonce TEXT NOT NULL DEFAULT '';
UPDATE users SET nonce = lower(hex(randomblob(16)));

-- Sessions ended before their token expired (log out): the token's id until it expires.
CREATE TABLE revoked_tokens (
    jti        TEXT   PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revoked_tokens_expiry ON revoked_tokens (expires_at);
