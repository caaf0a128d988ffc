-- Resumable uploads on an S3 store (docs/API.md "/uploads"): complete
-- leaves go to the bucket as the parts of one S3 multipart upload, under the
-- key `tus<id>p0`, so the finished file is put together in the bucket, not
-- sent again. `multipart` is that S3 upload's id (NULL until its first part);
-- `multipart_parts` each part's leaf count and ETag (hex), then a comma
-- ("8:22396...,5:9ab0...,"). Leaves that do not yet make a part of S3's
-- least size (5 MiB) stay part objects in `parts` until more arrive.
ALTER TABLE uploads ADD COLUMN multipart TEXT;
ALTER TABLE uploads ADD COLUMN multipart_parts TEXT NOT NULL DEFAULT '';
