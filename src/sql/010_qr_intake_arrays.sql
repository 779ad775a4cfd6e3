-- Batch intake from arrays: the codes of a batch arrive as one binary-format
-- array per column instead of one JSON document.
--
-- qr_create_batch(b jsonb) had PostgreSQL parse the whole 260 KB document
-- of a 1000-item batch into jsonb (5-8 ms), take it apart again with
-- jsonb_to_recordset (~3 ms) and copy the batch's design out of it once per
-- code. Binary arrays are read element by element by length; the design is
-- the batch row's, once.
--
-- b: {id, workspace_id, mode, design, template_id, total, items} where items
-- are the failed ones ({idx, name, type, error}); the codes are the arrays,
-- element i of each being code i (names, folder_ids and tags may hold NULL;
-- tags are text[] literals).
--
-- qr_create_batch(jsonb) stays for a server of the previous version during
-- a rolling upgrade; this version no longer calls it.
CREATE FUNCTION qr_intake_batch(b jsonb, ids text[], idxs int[], kinds text[], types text[], names text[],
                                targets jsonb[], payloads text[], short_codes text[], folder_ids text[],
                                tags text[]) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  nvalid int := coalesce(cardinality(ids), 0);
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
  IF nvalid > 0 THEN
    INSERT INTO qr_codes (id, workspace_id, mode, batch_id, batch_idx, kind, type, name, target, payload,
                          short_code, design, folder_id, tags)
    SELECT x.id, row.workspace_id, row.mode, row.id, x.idx, x.kind, x.type, coalesce(x.name, ''), x.target,
           x.payload, x.short_code, row.design, x.folder_id, coalesce(x.tags::text[], '{}')
    FROM unnest(ids, idxs, kinds, types, names, targets, payloads, short_codes, folder_ids, tags)
         AS x(id, idx, kind, type, name, target, payload, short_code, folder_id, tags);
    INSERT INTO bd_jobs (kind, ref) VALUES ('qr.batch', row.id);
  END IF;
  IF jsonb_array_length(b->'items') > 0 THEN
    INSERT INTO qr_batch_items (batch_id, idx, name, type, qr_code_id, error)
    SELECT row.id, x.idx, x.name, x.type, NULL, x.error
    FROM jsonb_to_recordset(b->'items') AS x(idx int, name text, type text, error text);
  END IF;
  RETURN qr_batch_json(row, false);
END
$$;
