-- Serving from the network (docs/NETWORK.md, PEERVAULT_KEEP_LOCAL_COPY):
-- whether the coordinator still keeps an object's bytes itself, and the
-- coordinator instance each node last polled (it delivers there).
ALTER TABLE blobs ADD COLUMN local_copy BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE nodes ADD COLUMN instance TEXT;
