-- Each stored object's block index (content::BlockIndex, binary), written in
-- the same transaction as its blob row; NULL for objects stored before it
-- existed (filled in the first time such an object is read).
ALTER TABLE blobs ADD COLUMN block_index BLOB;
