-- 022: a batch is accepted as one record; its job expands it into codes.
--
-- qr_intake_batch (010) inserted the 1000 codes of a 1000-item batch, with
-- their four indexes, before the 202: about 1 MB of write-ahead log and
-- 5000 index and heap records in the request's transaction, whose commit
-- also waited on the flush of whatever other batches had logged meanwhile.
-- Now the request commits the batch row and one qr_batch_records row that
-- holds the validated codes as arrays (ids, short codes and payloads all
-- decided by the server before it answers), and the batch's job (kind
-- qr.intake) expands the record into qr_codes before it renders.
--
-- Until it is expanded, the record answers for its codes: qr_batch_item_rows
-- (GET /v1/batches/{id}, the webhook's batch), qr_code_get (GET
-- /v1/qr-codes/{id}), qr_code_download_row (downloads) and qr_resolve_short
-- (/s/{short_code}) look in qr_codes first and then in the record, in one
-- statement, so a reader sees either the record or the codes, never both
-- or neither. Everything else that reads or changes codes by id or by
-- workspace (PATCH, DELETE, analytics, lists) first expands what it needs
-- (qr_expand_for_code, qr_expand_workspace): the record is seldom there
-- for long, since the accepting process expands it right after the 202.
--
-- Finding a record without an index per code:
--  - a batch code's id is its kind's prefix, the 16 characters of its
--    batch id after "batch_", and 4 base62 characters of its position
--    (qr_… 23 and sqr_… 24 characters, as before), so the id names its
--    batch (qr_code_batch_of);
--  - a batch's dynamic codes share a 6-character short_prefix reserved for
--    the batch in a unique index on qr_batches, followed by 6 random
--    characters, distinct within the batch: 12 characters, where a single
--    create's are 8. So batch short codes are unique by construction,
--    against each other and against single codes, before any of them is
--    inserted, and the prefix finds the batch. Knowing one short code, a
--    sibling is one of 62^6 guesses per code of the batch.
--
-- Exactly once: qr_expand_batch locks the record, inserts its codes and
-- deletes it in one transaction; a second expansion (the job after the
-- accepting process, or a new owner after a crash) finds no record. The
-- codes keep the batch's created_at (as the record served them), and the
-- scans counted while they were a record (qr_scans by code id) become their
-- scan_count: scan flushes (qr_record_scans) and expansions exclude each
-- other with an advisory lock, so a flush either updates expanded codes
-- or is summed by the expansion that follows it.

ALTER TABLE qr_batches ADD COLUMN short_prefix text;
CREATE UNIQUE INDEX qr_batches_short_prefix ON qr_batches (short_prefix);

-- The accepted, not yet expanded codes of a batch: element i of each array
-- is code i (names, folder_ids and tags may hold NULL; tags are text[]
-- literals). lz4: the arrays are compressed at a fraction of pglz's cost.
CREATE TABLE qr_batch_records (
  batch_id     text   PRIMARY KEY,
  workspace_id bigint NOT NULL,
  mode         text   NOT NULL,
  ids          text[] COMPRESSION lz4 NOT NULL,
  idxs         int[]  COMPRESSION lz4 NOT NULL,
  kinds        text[] COMPRESSION lz4 NOT NULL,
  types        text[] COMPRESSION lz4 NOT NULL,
  names        text[] COMPRESSION lz4 NOT NULL,
  targets      jsonb[] COMPRESSION lz4 NOT NULL,
  payloads     text[] COMPRESSION lz4 NOT NULL,
  short_codes  text[] COMPRESSION lz4 NOT NULL,
  folder_ids   text[] COMPRESSION lz4 NOT NULL,
  tags         text[] COMPRESSION lz4 NOT NULL
);
CREATE INDEX qr_batch_records_ws ON qr_batch_records (workspace_id, mode);

-- The batch id a batch code's id names (NULL for a malformed id).
CREATE FUNCTION qr_code_batch_of(code text) RETURNS text IMMUTABLE LANGUAGE sql AS $$
  SELECT CASE WHEN length(code) BETWEEN 20 AND 40 THEN 'batch_' || substr(code, length(code) - 19, 16) END
$$;

-- Accepts a batch: the batch row, its record, its failed items, its job.
-- b: {id, workspace_id, mode, design, template_id, total, short_prefix,
-- items} (items: the failed ones, {idx, name, type, error}); the arrays as
-- in qr_intake_batch (010). A short_prefix taken already is a
-- unique_violation on qr_batches_short_prefix: the server draws another.
CREATE FUNCTION qr_accept_batch(b jsonb, ids text[], idxs int[], kinds text[], types text[], names text[],
                                targets jsonb[], payloads text[], short_codes text[], folder_ids text[],
                                tags text[]) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  nvalid int := coalesce(cardinality(ids), 0);
  ntotal int := (b->>'total')::int;
  row qr_batches;
BEGIN
  INSERT INTO qr_batches (id, workspace_id, mode, status, total_count, error_count, design, template_id,
                          completed_at, short_prefix)
  VALUES (b->>'id', (b->>'workspace_id')::bigint, b->>'mode',
          CASE WHEN nvalid = 0 THEN 'failed' ELSE 'processing' END,
          ntotal, ntotal - nvalid, b->'design', b->>'template_id',
          CASE WHEN nvalid = 0 THEN now() END, b->>'short_prefix')
  RETURNING * INTO row;
  IF nvalid > 0 THEN
    INSERT INTO qr_batch_records (batch_id, workspace_id, mode, ids, idxs, kinds, types, names, targets, payloads,
                                  short_codes, folder_ids, tags)
    VALUES (row.id, row.workspace_id, row.mode, ids, idxs, kinds, types, names, targets, payloads, short_codes,
            folder_ids, tags);
    INSERT INTO bd_jobs (kind, ref) VALUES ('qr.intake', row.id);
  END IF;
  IF jsonb_array_length(b->'items') > 0 THEN
    INSERT INTO qr_batch_items (batch_id, idx, name, type, qr_code_id, error)
    SELECT row.id, x.idx, x.name, x.type, NULL, x.error
    FROM jsonb_to_recordset(b->'items') AS x(idx int, name text, type text, error text);
  END IF;
  RETURN qr_batch_json(row, false);
END
$$;

-- Expands a batch's record into its codes, once: the number of codes
-- inserted (0 when there is no record: expanded already, or never one).
CREATE FUNCTION qr_expand_batch(batch text) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
  r qr_batch_records;
  b qr_batches;
  n int;
BEGIN
  -- shared among expansions, exclusive against scan flushes (qr_record_scans)
  PERFORM pg_advisory_xact_lock_shared(hashtextextended('qr_scans flush', 0));
  SELECT * INTO r FROM qr_batch_records WHERE batch_id = batch FOR UPDATE;
  IF NOT FOUND THEN
    RETURN 0;
  END IF;
  SELECT * INTO b FROM qr_batches WHERE id = batch;
  INSERT INTO qr_codes (id, workspace_id, mode, batch_id, batch_idx, kind, type, name, target, payload,
                        short_code, design, folder_id, tags, scan_count, created_at, updated_at)
  SELECT x.id, b.workspace_id, b.mode, b.id, x.idx, x.kind, x.type, coalesce(x.name, ''), x.target,
         x.payload, x.short_code, b.design, x.folder_id, coalesce(x.tags::text[], '{}'),
         coalesce((SELECT sum(s.count) FROM qr_scans s WHERE s.code_id = x.id), 0), b.created_at, b.created_at
  FROM unnest(r.ids, r.idxs, r.kinds, r.types, r.names, r.targets, r.payloads, r.short_codes, r.folder_ids, r.tags)
       AS x(id, idx, kind, type, name, target, payload, short_code, folder_id, tags);
  GET DIAGNOSTICS n = ROW_COUNT;
  DELETE FROM qr_batch_records WHERE batch_id = batch;
  RETURN n;
END
$$;

-- Expands the batch a code id names, when it is still a record of (ws, mode).
CREATE FUNCTION qr_expand_for_code(code text, ws bigint, md text) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM qr_batch_records r WHERE r.batch_id = qr_code_batch_of(code)
             AND r.workspace_id = ws AND r.mode = md) THEN
    RETURN qr_expand_batch(qr_code_batch_of(code));
  END IF;
  RETURN 0;
END
$$;

-- Expands every record of (ws, mode) (before a list of its codes).
CREATE FUNCTION qr_expand_workspace(ws bigint, md text) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
  bid text;
  n int := 0;
BEGIN
  FOR bid IN SELECT batch_id FROM qr_batch_records WHERE workspace_id = ws AND mode = md ORDER BY batch_id LOOP
    n := n + qr_expand_batch(bid);
  END LOOP;
  RETURN n;
END
$$;

-- Records a second's scans (the redirect path's buffer, aggregated): the
-- groups, then the codes' counters. Exclusive against expansions, so a
-- flush's counts reach a code that is still a record through the
-- expansion's sum.
CREATE FUNCTION qr_record_scans(s jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended('qr_scans flush', 0));
  INSERT INTO qr_scans (code_id, scanned_at, last_at, count, device, os, browser, referrer, language, country)
  SELECT x.id, to_timestamp(x.f / 1e6), to_timestamp(x.l / 1e6), x.n, x.device, x.os, x.browser,
         nullif(x.referrer, ''), nullif(x.language, ''), nullif(x.country, '')
  FROM jsonb_to_recordset(s) AS x(id text, f bigint, l bigint, n int, device text, os text, browser text,
                                  language text, country text, referrer text);
  UPDATE qr_codes c SET scan_count = c.scan_count + t.cnt
  FROM (SELECT x.id, sum(x.n) cnt FROM jsonb_to_recordset(s) AS x(id text, n int) GROUP BY x.id) t
  WHERE c.id = t.id;
END
$$;

-- A batch's items in request order: its codes, its failed items, and the
-- codes of its record while it is one.
CREATE OR REPLACE FUNCTION qr_batch_item_rows(batch text)
RETURNS TABLE (idx int, name text, type text, qr_code_id text, error text) STABLE LANGUAGE sql AS $$
  SELECT batch_idx, nullif(name, ''), type, id, render_error FROM qr_codes WHERE batch_id = batch
  UNION ALL
  SELECT idx, name, type, NULL, error FROM qr_batch_items WHERE batch_id = batch
  UNION ALL
  SELECT x.idx, nullif(x.name, ''), x.type, x.id, NULL::text
  FROM qr_batch_records r, unnest(r.idxs, r.names, r.types, r.ids) AS x(idx, name, type, id)
  WHERE r.batch_id = batch
$$;

-- A code of a record as qr_code_json shows it once expanded.
CREATE FUNCTION qr_record_code_json(code text, ws bigint, md text, base text) RETURNS jsonb STABLE LANGUAGE sql AS $$
  SELECT jsonb_build_object(
    'id', x.id, 'object', 'qr_code', 'kind', x.kind, 'type', x.type, 'name', coalesce(x.name, ''),
    'target', x.target, 'short_code', x.short_code,
    'short_url', CASE WHEN x.short_code IS NULL THEN NULL ELSE base || '/s/' || x.short_code END,
    'image_url', base || '/v1/qr-codes/' || x.id || '/download?format=png',
    'download_url', base || '/v1/qr-codes/' || x.id || '/download',
    'is_active', true, 'scan_count', (SELECT coalesce(sum(s.count), 0) FROM qr_scans s WHERE s.code_id = x.id),
    'design', b.design, 'folder_id', x.folder_id, 'tags', to_jsonb(coalesce(x.tags::text[], '{}')),
    'batch_id', b.id, 'created_at', bd_iso(b.created_at), 'updated_at', bd_iso(b.created_at))
  FROM qr_batch_records r JOIN qr_batches b ON b.id = r.batch_id,
       unnest(r.ids, r.kinds, r.types, r.names, r.targets, r.short_codes, r.folder_ids, r.tags)
       AS x(id, kind, type, name, target, short_code, folder_id, tags)
  WHERE r.batch_id = qr_code_batch_of(code) AND r.workspace_id = ws AND r.mode = md AND x.id = code
$$;

-- GET /v1/qr-codes/{id}: the code, or the record's code.
CREATE FUNCTION qr_code_get(code text, ws bigint, md text, base text) RETURNS jsonb STABLE LANGUAGE sql AS $$
  SELECT coalesce(
    (SELECT qr_code_json(c, base) FROM qr_codes c WHERE c.id = code AND c.workspace_id = ws AND c.mode = md
       AND c.deleted_at IS NULL),
    qr_record_code_json(code, ws, md, base))
$$;

-- Rendering a code rendered nothing a client sees on the code object:
-- updated_at is left as it is (so a code reads the same as a record, once
-- expanded and once rendered). Otherwise as in 007.
CREATE OR REPLACE FUNCTION qr_record_renders(batch text, r jsonb, pngs bytea) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  ndone int;
  nfail int;
  st text;
BEGIN
  INSERT INTO qr_images (code_id, png, sha256)
  SELECT x.id, substring(pngs FROM x.off + 1 FOR x.len), x.sha256
  FROM jsonb_to_recordset(r) AS x(id text, off int, len int, sha256 text, error text)
  WHERE x.error IS NULL
  ON CONFLICT (code_id) DO NOTHING;
  WITH upd AS (
    UPDATE qr_codes c SET render_status = CASE WHEN x.error IS NULL THEN 'done' ELSE 'failed' END,
                          render_error = x.error
    FROM jsonb_to_recordset(r) AS x(id text, error text)
    WHERE c.id = x.id AND c.render_status = 'pending'
    RETURNING c.render_status)
  SELECT count(*) FILTER (WHERE render_status = 'done'), count(*) FILTER (WHERE render_status = 'failed')
  INTO ndone, nfail FROM upd;
  UPDATE qr_batches SET completed_count = completed_count + ndone, error_count = error_count + nfail,
    status = CASE WHEN completed_count + ndone + error_count + nfail >= total_count
                  THEN CASE WHEN completed_count + ndone = 0 THEN 'failed' ELSE 'completed' END
                  ELSE status END,
    completed_at = CASE WHEN completed_count + ndone + error_count + nfail >= total_count THEN now() END,
    updated_at = now()
  WHERE id = batch
  RETURNING status INTO st;
  RETURN st;
END
$$;
ALTER FUNCTION qr_record_renders(text, jsonb, bytea) SET enable_seqscan = off;
