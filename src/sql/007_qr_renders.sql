-- Rendered QR images, cheaper to store.
--
-- PNGs are already deflate-compressed: PostgreSQL's pglz tried (and failed)
-- to compress every image over 2 KB before storing it, which was the largest
-- single cost of recording renders. Images now stay inline up to a full page
-- (toast_tuple_target) and larger ones (designed codes with logos) go out of
-- line uncompressed (STORAGE EXTERNAL).
ALTER TABLE qr_images ALTER COLUMN png SET STORAGE EXTERNAL;
ALTER TABLE qr_images SET (toast_tuple_target = 8160);

-- Every code is updated once after it is inserted (render_status): free
-- room on its page lets that be a HOT update (no new entry in any of its
-- four indexes). Applies to pages written from now on.
ALTER TABLE qr_codes SET (fillfactor = 75);

-- The renders of a chunk arrive as one binary bytea holding the PNGs back to
-- back and a small JSON index into it, instead of each PNG hex-encoded inside
-- the JSON (which PostgreSQL lexed character by character).
-- r: [{id, off, len, sha256} | {id, error}]; off and len are byte offsets
-- into pngs. Exactly once per code (the render_status guard); counters move
-- by what actually changed.
DROP FUNCTION qr_record_renders(text, jsonb);
CREATE FUNCTION qr_record_renders(batch text, r jsonb, pngs bytea) RETURNS text LANGUAGE plpgsql AS $$
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
                          render_error = x.error, updated_at = now()
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
