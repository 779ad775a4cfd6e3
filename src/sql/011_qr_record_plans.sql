-- 011: qr_record_renders touches rows by key only (codes by id, images by
-- code, the batch by id). PL/pgSQL keeps a plan per session: made while the
-- codes table was empty or freshly analyzed as empty (a new database, or one
-- emptied), the UPDATE of a chunk's codes became a hash join over a
-- sequential scan of every code, and stayed so while the table grew: each
-- call of 128 renders took 0.6-0.8 s of database CPU at 37k codes, and
-- rendering ran at a tenth of its rate until the next ANALYZE. Without
-- sequential scans its plans are index lookups whatever the statistics say.
ALTER FUNCTION qr_record_renders(text, jsonb, bytea) SET enable_seqscan = off;
