-- Serving from the network with several coordinators (docs/NETWORK.md): a
-- node delivers to the instance it polls. The instance a retrieve task is
-- for (the one whose download waits); another instance receiving the
-- delivery restores the object into the shared blob store instead, marking
-- the task 'restoring' and counting progress while it reads. A restored
-- copy is kept until local_until (ms) before it may be released again.
ALTER TABLE tasks ADD COLUMN instance TEXT;
ALTER TABLE tasks ADD COLUMN progress BIGINT NOT NULL DEFAULT 0;
ALTER TABLE blobs ADD COLUMN local_until BIGINT NOT NULL DEFAULT 0;
