-- Batch intake, faster and without a global lock.
--
-- 1. The foreign keys on the tables a QR batch writes row by row go.
--
-- Each one was a trigger firing once per inserted row: a lookup of the
-- parent with FOR KEY SHARE (a row lock taken a thousand times on the same
-- batch row for a 1000-code batch). Together they were about a third of the
-- intake of a 1000-item batch (median 110 ms with them, 71 ms without, on
-- two cores), and they fired again for every recorded image.
--
-- What they guarded holds by construction:
--  - qr_codes and qr_batch_items rows are written only by qr_create_batch
--    (in the statement that inserts their batch) and by the single-code
--    create, for the workspace of the authenticated key;
--  - qr_images rows only for a code inserted in the same statement, or
--    selected just before (qr_record_renders, a download that stores the
--    image it rendered);
--  - workspaces, batches and codes are never deleted (codes are soft
--    deleted, deleted_at), so no parent can go away under a child.
-- The certificate tables (biz_certificates, biz_certificate_files) were
-- made without them for the same reason.
ALTER TABLE qr_codes DROP CONSTRAINT IF EXISTS qr_codes_workspace_id_fkey,
                     DROP CONSTRAINT IF EXISTS qr_codes_batch_id_fkey;
ALTER TABLE qr_batch_items DROP CONSTRAINT IF EXISTS qr_batch_items_batch_id_fkey;
ALTER TABLE qr_images DROP CONSTRAINT IF EXISTS qr_images_code_id_fkey;

-- 2. qr_create_batch no longer NOTIFYs. A NOTIFY takes PostgreSQL's
-- cluster-wide notify lock at commit and holds it until the commit record
-- is flushed: concurrent intakes (each a megabyte of WAL) queued behind
-- each other's flush, up to 600 ms at 3 batches/s. The server claims the
-- job itself once the batch is stored and NOTIFYs the other processes in a
-- statement of its own (bd_jobs_notify).
CREATE OR REPLACE FUNCTION qr_create_batch(b jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  nvalid int := jsonb_array_length(b->'codes');
  ntotal int := (b->>'total')::int;
  row qr_batches;
BEGIN
  INSERT INTO qr_batches (id, workspace_id, mode, status, total_count, error_count, design, template_id,
                          completed_at)
  VALUES (b->>'id', (b->>'workspace_id')::bigint, b->>'mode',
          CASE WHEN nvalid = 0 THEN 'failed' ELSE 'processing' END,
          ntotal, ntotal - nvalid, b->'design', b->>'template_id',
          CASE WHEN nvalid = 0 THEN now() END)
  RETURNING * INTO row;
  INSERT INTO qr_codes (id, workspace_id, mode, batch_id, batch_idx, kind, type, name, target, payload,
                        short_code, design, folder_id, tags)
  SELECT x.id, row.workspace_id, row.mode, row.id, x.idx, x.kind, x.type, coalesce(x.name, ''), x.target,
         x.payload, x.short_code, b->'design', x.folder_id, coalesce(x.tags, '{}')
  FROM jsonb_to_recordset(b->'codes') AS x(id text, idx int, kind text, type text, name text, target jsonb,
                                           payload text, short_code text, folder_id text, tags text[]);
  INSERT INTO qr_batch_items (batch_id, idx, name, type, qr_code_id, error)
  SELECT row.id, x.idx, x.name, x.type, NULL, x.error
  FROM jsonb_to_recordset(b->'items') AS x(idx int, name text, type text, error text);
  IF nvalid > 0 THEN
    INSERT INTO bd_jobs (kind, ref) VALUES ('qr.batch', row.id);
  END IF;
  RETURN qr_batch_json(row, false);
END
$$;
