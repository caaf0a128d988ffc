-- The blocks of a shared DAG (docs/API.md "Share links"): every block CID
-- of the content a file shares, so that /ipfs/<block> finds the shared
-- root it belongs to without a token. Filled when sharing is turned on;
-- a row serves only while some file of its root is shared (the lookup
-- joins files.public), so turning sharing off needs no change here.
CREATE TABLE dag_blocks (
    block TEXT NOT NULL,
    root  TEXT NOT NULL REFERENCES blobs (cid) ON DELETE CASCADE,
    PRIMARY KEY (block, root)
);
CREATE INDEX dag_blocks_root ON dag_blocks (root);
