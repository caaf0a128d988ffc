-- Folder uploads (docs/API.md "POST /upload_file"): a file row whose
-- content is a UnixFS directory records how many files the folder holds;
-- NULL for a single file.
ALTER TABLE files ADD COLUMN folder_files BIGINT;
