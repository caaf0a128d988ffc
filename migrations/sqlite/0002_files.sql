-- Stored content (one row per distinct root CID) and the files that name it.

CREATE TABLE blobs (
    cid        TEXT   PRIMARY KEY,
    car_cid    TEXT   NOT NULL,
    size       BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE files (
    id          INTEGER PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    cid         TEXT   NOT NULL REFERENCES blobs (cid),
    name        TEXT   NOT NULL,
    mime        TEXT   NOT NULL,
    size        BIGINT NOT NULL,
    uploaded_at BIGINT NOT NULL
);
CREATE INDEX files_user_newest ON files (user_id, uploaded_at DESC, id DESC);
CREATE INDEX files_cid ON files (cid);
