-- Share links (docs/API.md "POST /share_file"): a file whose owner turned
-- sharing on is served at /ipfs/<cid> to anyone, without a token (1 = on).
ALTER TABLE files ADD COLUMN public BIGINT NOT NULL DEFAULT 0;
CREATE INDEX files_public ON files (cid) WHERE public = 1;
