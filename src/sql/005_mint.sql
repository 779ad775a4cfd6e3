-- 005_mint: minting units of a product batch (GS1 identities), the mint
-- jobs that write them, and the lookups of the resolver and passports.
--
-- Identity modes:
--   serial  every unit gets its own AI 21 serial, unique within the GTIN
--           (generated: 12 Crockford base-32 characters; or brought by the
--           caller in _serials). Digital Link /01/{gtin}/10/{lot}/21/{serial}.
--   batch   the lot is the identity: every unit of the job carries the same
--           /01/{gtin}/10/{lot} (AI 10 only, no AI 21). The job still
--           records one row per unit (label) for the manifest and exports.
--
-- Units are written by the pp.mint job with COPY, one transaction per chunk
-- (chunks may be written by parallel writers). A job's units have the
-- contiguous ids first_unit_id .. first_unit_id + requested_quantity - 1,
-- reserved when the request is accepted, so:
--   - a chunk is committed iff its first id exists: a taken-over job writes
--     only the chunks that are missing: no unit lost or doubled;
--   - the units of a job are an id range of the primary key: no job index
--     to maintain during the load, and a unit finds its job by range.
-- pp_units has only two indexes (the primary key, appended in order, and
-- the unique (gtin, serial) that enforces serial uniqueness), no foreign
-- key and no trigger: nothing runs per row but the two index inserts.

-- Units reserved by accepted mint requests of the batch: a request that
-- would take it over the batch's quantity (when set) is refused. Updated
-- under the batch's row lock, so concurrent requests never over-mint.
ALTER TABLE pp_batches ADD COLUMN units_reserved bigint NOT NULL DEFAULT 0;

-- The next unit id to hand out (one row; UPDATE ... RETURNING reserves a
-- range under its row lock).
CREATE TABLE pp_unit_ids (
  one     boolean PRIMARY KEY DEFAULT true CHECK (one),
  next_id bigint  NOT NULL
);
INSERT INTO pp_unit_ids VALUES (true, 1);

CREATE TABLE pp_mint_jobs (
  id                 uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  brand_id           uuid        NOT NULL REFERENCES pp_brands(id),
  product_id         uuid        NOT NULL REFERENCES pp_products(id),
  batch_id           uuid        NOT NULL REFERENCES pp_batches(id),
  gtin               text        NOT NULL,                  -- the product's GTIN-14 (AI 01)
  lot                text        NOT NULL,                  -- the batch number when minted (AI 10)
  identity_mode      text        NOT NULL CHECK (identity_mode IN ('batch', 'serial')),
  serial_source      text        NOT NULL CHECK (serial_source IN ('generated', 'provided', 'none')),
  requested_quantity int         NOT NULL CHECK (requested_quantity BETWEEN 1 AND 1000000),
  first_unit_id      bigint      NOT NULL UNIQUE,           -- units are first_unit_id + 0 .. quantity - 1
  chunk_units        int,                                   -- units per COPY, fixed at the first start
  serials            text[],                                -- provided serials, in unit order
  idempotency_key    text,
  status             text        NOT NULL DEFAULT 'QUEUED'
                     CHECK (status IN ('QUEUED', 'RUNNING', 'COMPLETED', 'FAILED')),
  minted_count       int         NOT NULL DEFAULT 0,        -- final count (live progress is read from pp_units)
  errors             jsonb       NOT NULL DEFAULT '[]',
  created_by         text        NOT NULL,
  created_at         timestamptz NOT NULL DEFAULT now(),
  started_at         timestamptz,
  completed_at       timestamptz,
  updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX pp_mint_jobs_idem ON pp_mint_jobs (brand_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX pp_mint_jobs_batch ON pp_mint_jobs (batch_id, created_at);
CREATE INDEX pp_mint_jobs_pending_gtin ON pp_mint_jobs (gtin) WHERE status IN ('QUEUED', 'RUNNING') AND serials IS NOT NULL;

CREATE TABLE pp_units (
  id     bigint PRIMARY KEY,   -- in its job's reserved range
  gtin   text   COLLATE "C" NOT NULL, -- AI 01, GTIN-14
  serial text   COLLATE "C"           -- AI 21; NULL in batch identity mode
);
-- (byte-wise collation: serials are identifiers, and the unique index is
-- maintained with memcmp instead of locale comparisons during the load)
CREATE UNIQUE INDEX pp_units_gtin_serial ON pp_units (gtin, serial) WHERE serial IS NOT NULL;

-- The job of a unit id (the job with the greatest first_unit_id <= id).
CREATE FUNCTION pp_unit_job(unit bigint) RETURNS uuid STABLE LANGUAGE sql AS $$
  SELECT id FROM pp_mint_jobs WHERE first_unit_id <= unit ORDER BY first_unit_id DESC LIMIT 1
$$;

-- A value (lot or serial) as it appears in a Digital Link path: set-82
-- characters that are not URI-unreserved are percent-encoded (as gs1.h's
-- bd_gs1_dl_format does).
CREATE FUNCTION pp_dl_escape(v text) RETURNS text IMMUTABLE LANGUAGE plpgsql AS $$
DECLARE
  out text := '';
  ch text;
BEGIN
  IF v !~ '[^A-Za-z0-9._~-]' THEN RETURN v; END IF;
  FOREACH ch IN ARRAY regexp_split_to_array(v, '') LOOP
    IF ch ~ '[A-Za-z0-9._~-]' THEN out := out || ch;
    ELSE out := out || '%' || upper(encode(convert_to(ch, 'UTF8'), 'hex')); END IF;
  END LOOP;
  RETURN out;
END $$;

CREATE FUNCTION pp_dl_uri(base text, gtin text, lot text, serial text) RETURNS text IMMUTABLE LANGUAGE sql AS $$
  SELECT base || '/01/' || gtin || CASE WHEN serial IS NULL THEN '/10/' || pp_dl_escape(lot)
    ELSE '/10/' || pp_dl_escape(lot) || '/21/' || pp_dl_escape(serial) END
$$;

-- The passport id of an identity: "{gtin14}", "{gtin14}~10~{lot}" or
-- "{gtin14}~21~{serial}" ('~' is not in GS1 set 82, so it never occurs in
-- a value), values percent-encoded as in a Digital Link.
CREATE FUNCTION pp_passport_id(gtin text, lot text, serial text) RETURNS text IMMUTABLE LANGUAGE sql AS $$
  SELECT gtin || CASE WHEN serial IS NOT NULL THEN '~21~' || pp_dl_escape(serial)
    WHEN lot IS NOT NULL THEN '~10~' || pp_dl_escape(lot) ELSE '' END
$$;

-- Units of a job committed so far: a chunk is committed iff its first unit
-- exists (each chunk is one COPY), so one index probe per chunk.
CREATE FUNCTION pp_mint_units_done(j pp_mint_jobs) RETURNS int STABLE LANGUAGE sql AS $$
  SELECT coalesce(sum(least(j.chunk_units, j.requested_quantity - k * j.chunk_units)), 0)::int
    FROM generate_series(0, (j.requested_quantity - 1) / j.chunk_units) k
   WHERE j.chunk_units IS NOT NULL
     AND EXISTS (SELECT 1 FROM pp_units u WHERE u.id = j.first_unit_id + k::bigint * j.chunk_units)
$$;

CREATE FUNCTION pp_mint_job_json(j pp_mint_jobs) RETURNS jsonb STABLE LANGUAGE sql AS $$
  WITH m AS (
    SELECT CASE WHEN j.status IN ('COMPLETED', 'FAILED') THEN j.minted_count
      ELSE pp_mint_units_done(j) END AS n)
  SELECT jsonb_build_object('id', j.id, 'mint_job_id', j.id, 'brand_id', j.brand_id, 'product_id', j.product_id,
    'batch_id', j.batch_id, 'gtin', j.gtin, 'lot', j.lot, 'identity_mode', j.identity_mode,
    'serial_source', j.serial_source, 'status', j.status, 'requested_quantity', j.requested_quantity,
    'minted_count', m.n, 'progress', round(100.0 * m.n / j.requested_quantity, 2),
    'error_count', jsonb_array_length(j.errors), 'errors', j.errors,
    'created_at', bd_iso(j.created_at), 'started_at', bd_iso(j.started_at),
    'completed_at', bd_iso(j.completed_at), 'updated_at', bd_iso(j.updated_at))
  FROM m
$$;

-- Raises 409 with a detail.
CREATE FUNCTION pp_conflict(message text, detail text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '%', message USING ERRCODE = '23505', DETAIL = detail;
END $$;

CREATE FUNCTION rpc_submit_mint_request(sub text, a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  brand uuid := pp_uuid(a, '_brand_id');
  product uuid := pp_uuid(a, '_product_id');
  batch uuid := pp_uuid(a, '_batch_id');
  mode text;
  qty int;
  v_serials text[];
  key text := pp_text(a, '_idempotency_key', false, 200);
  p pp_products;
  b pp_batches;
  j pp_mint_jobs;
  bad text;
  first_id bigint;
BEGIN
  PERFORM pp_require(brand, sub, 'editor');
  -- arguments
  IF a ? '_identity_mode' AND jsonb_typeof(a->'_identity_mode') <> 'null' THEN
    IF jsonb_typeof(a->'_identity_mode') <> 'string' OR a->>'_identity_mode' NOT IN ('batch', 'serial') THEN
      PERFORM pp_invalid('_identity_mode must be batch or serial');
    END IF;
    mode := a->>'_identity_mode';
  ELSE
    mode := 'serial';
  END IF;
  IF a ? '_requested_quantity' AND jsonb_typeof(a->'_requested_quantity') <> 'null' THEN
    IF jsonb_typeof(a->'_requested_quantity') <> 'number' OR (a->>'_requested_quantity') !~ '^\d+$'
       OR (a->>'_requested_quantity')::numeric NOT BETWEEN 1 AND 1000000 THEN
      PERFORM pp_invalid('_requested_quantity must be an integer from 1 to 1000000');
    END IF;
    qty := (a->>'_requested_quantity')::int;
  END IF;
  IF a ? '_serials' AND jsonb_typeof(a->'_serials') <> 'null' THEN
    IF mode <> 'serial' THEN PERFORM pp_invalid('_serials can only be given in serial identity mode'); END IF;
    IF jsonb_typeof(a->'_serials') <> 'array' OR jsonb_array_length(a->'_serials') = 0 THEN
      PERFORM pp_invalid('_serials must be a non-empty array of strings');
    END IF;
    IF jsonb_array_length(a->'_serials') > 1000000 THEN
      PERFORM pp_invalid('_serials may hold at most 1000000 serials');
    END IF;
    SELECT string_agg(format('_serials[%s]', o - 1), ', ') INTO bad
      FROM (SELECT o FROM jsonb_array_elements(a->'_serials') WITH ORDINALITY e(v, o)
            WHERE jsonb_typeof(v) <> 'string' ORDER BY o LIMIT 10) x;
    IF bad IS NOT NULL THEN PERFORM pp_invalid('serials must be strings: ' || bad); END IF;
    SELECT array_agg(v ORDER BY o) INTO v_serials FROM jsonb_array_elements_text(a->'_serials') WITH ORDINALITY e(v, o);
    -- GS1 AI 21: 1..20 characters of character set 82
    SELECT string_agg(format('_serials[%s] %s', o - 1, to_jsonb(v)), ', ') INTO bad
      FROM (SELECT v, o FROM unnest(v_serials) WITH ORDINALITY e(v, o)
            WHERE v !~ '^[!"%&''()*+,./0-9:;<=>?A-Z_a-z-]{1,20}$' ORDER BY o LIMIT 10) x;
    IF bad IS NOT NULL THEN
      PERFORM pp_invalid('serials must be 1 to 20 characters of GS1 character set 82 (A-Z a-z 0-9 ! " % & '' ( ) * + , - . / : ; < = > ? _): ' || bad);
    END IF;
    SELECT string_agg(to_jsonb(v)::text, ', ') INTO bad
      FROM (SELECT v FROM unnest(v_serials) v GROUP BY v HAVING count(*) > 1 ORDER BY v LIMIT 10) x;
    IF bad IS NOT NULL THEN PERFORM pp_invalid('duplicate serials in _serials: ' || bad); END IF;
    IF qty IS NOT NULL AND qty <> cardinality(v_serials) THEN
      PERFORM pp_invalid(format('_requested_quantity (%s) differs from the number of _serials (%s)', qty, cardinality(v_serials)));
    END IF;
    qty := cardinality(v_serials);
  END IF;
  IF qty IS NULL THEN PERFORM pp_invalid('_requested_quantity is required'); END IF;

  -- one submission per GTIN at a time: the product's row lock orders them,
  -- so the checks against existing and pending serials below cannot race
  SELECT * INTO p FROM pp_products WHERE id = product AND brand_id = brand FOR UPDATE;
  IF p.id IS NULL THEN
    RAISE EXCEPTION 'Not found' USING ERRCODE = 'P0002', DETAIL = 'no such product in this brand';
  END IF;

  IF key IS NOT NULL THEN
    SELECT * INTO j FROM pp_mint_jobs WHERE brand_id = brand AND idempotency_key = key;
    IF j.id IS NOT NULL THEN
      IF j.product_id <> product OR j.batch_id <> batch OR j.requested_quantity <> qty OR j.identity_mode <> mode
         OR (v_serials IS NULL) <> (j.serial_source <> 'provided')
         OR (j.serials IS NOT NULL AND j.serials IS DISTINCT FROM v_serials) THEN
        PERFORM pp_conflict('Idempotency key reused', '_idempotency_key was used for a different mint request');
      END IF;
      RETURN jsonb_build_object('ok', true, 'mint_job_id', j.id, 'status', 'QUEUED', 'is_duplicate', true,
                                'current_status', j.status);
    END IF;
  END IF;

  SELECT * INTO b FROM pp_batches WHERE id = batch AND product_id = product FOR UPDATE;
  IF b.id IS NULL THEN
    RAISE EXCEPTION 'Not found' USING ERRCODE = 'P0002', DETAIL = 'no such batch of this product';
  END IF;
  IF b.status <> 'active' THEN
    PERFORM pp_conflict('Batch not active', format('the batch is %s: only active batches can be minted', b.status));
  END IF;
  IF b.batch_number !~ '^[!"%&''()*+,./0-9:;<=>?A-Z_a-z-]{1,20}$' THEN
    PERFORM pp_invalid('the batch number is not a valid GS1 AI 10 lot (1 to 20 characters of GS1 character set 82)');
  END IF;
  IF b.quantity IS NOT NULL AND b.units_reserved + qty > b.quantity THEN
    PERFORM pp_conflict('Quantity exceeded', format('minting %s units would exceed the batch quantity %s (%s already minted or reserved)',
                        qty, b.quantity, b.units_reserved));
  END IF;

  IF v_serials IS NOT NULL THEN
    SELECT string_agg(to_jsonb(s)::text, ', ') INTO bad FROM (
      SELECT u.serial s FROM pp_units u WHERE u.gtin = p.gtin AND u.serial = ANY(v_serials) ORDER BY 1 LIMIT 10) x;
    IF bad IS NOT NULL THEN
      PERFORM pp_conflict('Serial already minted', 'serials already minted for GTIN ' || p.gtin || ': ' || bad);
    END IF;
    SELECT string_agg(to_jsonb(s)::text, ', ') INTO bad FROM (
      SELECT DISTINCT s FROM pp_mint_jobs o, unnest(o.serials) s
       WHERE o.gtin = p.gtin AND o.status IN ('QUEUED', 'RUNNING') AND o.serials IS NOT NULL
         AND s = ANY(v_serials) ORDER BY 1 LIMIT 10) x;
    IF bad IS NOT NULL THEN
      PERFORM pp_conflict('Serial already requested', 'serials requested by a pending mint job for GTIN ' || p.gtin || ': ' || bad);
    END IF;
  END IF;

  UPDATE pp_batches SET units_reserved = units_reserved + qty WHERE id = b.id;
  UPDATE pp_unit_ids SET next_id = next_id + qty RETURNING next_id - qty INTO first_id;
  INSERT INTO pp_mint_jobs (brand_id, product_id, batch_id, gtin, lot, identity_mode, serial_source,
                            requested_quantity, first_unit_id, serials, idempotency_key, created_by)
  VALUES (brand, product, batch, p.gtin, b.batch_number, mode,
          CASE WHEN mode = 'batch' THEN 'none' WHEN v_serials IS NULL THEN 'generated' ELSE 'provided' END,
          qty, first_id, v_serials, key, sub)
  RETURNING * INTO j;
  INSERT INTO bd_jobs (kind, ref) VALUES ('pp.mint', j.id);
  PERFORM pg_notify('bd_jobs', 'pp.mint');
  RETURN jsonb_build_object('ok', true, 'mint_job_id', j.id, 'status', 'QUEUED', 'is_duplicate', false);
END $$;

-- A mint job of the brand the caller may read, or 403/404.
CREATE FUNCTION pp_readable_job(sub text, a jsonb) RETURNS pp_mint_jobs LANGUAGE plpgsql STABLE AS $$
DECLARE
  brand uuid := pp_uuid(a, '_brand_id');
  job uuid := pp_uuid(a, '_mint_job_id');
  j pp_mint_jobs;
BEGIN
  PERFORM pp_require(brand, sub, 'viewer');
  SELECT * INTO j FROM pp_mint_jobs WHERE id = job AND brand_id = brand;
  IF j.id IS NULL THEN
    RAISE EXCEPTION 'Not found' USING ERRCODE = 'P0002', DETAIL = 'no such mint job in this brand';
  END IF;
  RETURN j;
END $$;

CREATE FUNCTION rpc_get_mint_job(sub text, a jsonb) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN pp_mint_job_json(pp_readable_job(sub, a));
END $$;

-- Units in order, keyset-paginated: _limit 1..1000 (100), _cursor from the
-- previous page's next_cursor (opaque). base is the resolver's public URL.
CREATE FUNCTION rpc_list_mint_units(sub text, a jsonb, base text) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
  j pp_mint_jobs := pp_readable_job(sub, a);
  lim int := coalesce(pp_int(a, '_limit'), 100);
  v_after bigint := 0;
  v_rows jsonb;
  v_n int;
  v_last bigint;
BEGIN
  IF lim NOT BETWEEN 1 AND 1000 THEN PERFORM pp_invalid('_limit must be from 1 to 1000'); END IF;
  IF a ? '_cursor' AND jsonb_typeof(a->'_cursor') <> 'null' THEN
    IF jsonb_typeof(a->'_cursor') <> 'string' OR (a->>'_cursor') !~ '^u[0-9]{1,7}$' THEN
      PERFORM pp_invalid('_cursor is not a cursor returned by list_mint_units');
    END IF;
    v_after := substr(a->>'_cursor', 2)::bigint;
  END IF;
  SELECT coalesce(jsonb_agg(jsonb_build_object('seq', u.id - j.first_unit_id + 1, 'gtin', u.gtin, 'lot', j.lot,
           'serial', u.serial, 'digital_link', pp_dl_uri(base, u.gtin, j.lot, u.serial),
           'passport_url', base || '/passports/' || pp_passport_id(u.gtin, j.lot, u.serial)) ORDER BY u.id), '[]'),
         count(*), max(u.id - j.first_unit_id + 1)
    INTO v_rows, v_n, v_last
    FROM (SELECT * FROM pp_units u WHERE u.id >= j.first_unit_id + v_after
            AND u.id < j.first_unit_id + j.requested_quantity ORDER BY u.id LIMIT lim + 1) u;
  IF v_n > lim THEN
    v_rows := v_rows - lim;
    v_last := v_last - 1;
  END IF;
  RETURN jsonb_build_object('mint_job_id', j.id, 'status', j.status, 'data', v_rows, 'has_more', v_n > lim,
                            'next_cursor', CASE WHEN v_n > lim THEN 'u' || v_last END);
END $$;

-- Job side ------------------------------------------------------------------

-- Claims the job for running: returns what the writers need, the chunk
-- size (the given one at the first start, the job's own afterwards) and
-- the chunks not yet committed by earlier owners.
CREATE FUNCTION pp_mint_start(job uuid, chunk int) RETURNS TABLE (status text, gtin text, identity_mode text,
  provided boolean, first_unit_id bigint, quantity int, chunk_units int, missing bigint[]) LANGUAGE plpgsql AS $$
DECLARE j pp_mint_jobs;
BEGIN
  UPDATE pp_mint_jobs x SET status = CASE WHEN x.status = 'QUEUED' THEN 'RUNNING' ELSE x.status END,
         chunk_units = coalesce(x.chunk_units, chunk), started_at = coalesce(x.started_at, now()), updated_at = now()
   WHERE x.id = job RETURNING * INTO j;
  IF j.id IS NULL THEN RETURN; END IF;
  RETURN QUERY SELECT j.status, j.gtin, j.identity_mode, j.serials IS NOT NULL, j.first_unit_id, j.requested_quantity,
    j.chunk_units, coalesce((SELECT array_agg(k ORDER BY k) FROM generate_series(0::bigint, (j.requested_quantity - 1) / j.chunk_units) k
      WHERE NOT EXISTS (SELECT 1 FROM pp_units u WHERE u.id = j.first_unit_id + k * j.chunk_units)), '{}');
END $$;

-- Ends a job: COMPLETED with every unit, or FAILED with an error; units not
-- written go back to the batch's quantity.
CREATE FUNCTION pp_mint_finish(job uuid, error text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  j pp_mint_jobs;
  n int;
BEGIN
  SELECT * INTO j FROM pp_mint_jobs WHERE id = job FOR UPDATE;
  IF j.status IN ('COMPLETED', 'FAILED') THEN RETURN; END IF;
  n := pp_mint_units_done(j);
  IF error IS NULL AND n = j.requested_quantity THEN
    UPDATE pp_mint_jobs SET status = 'COMPLETED', minted_count = n, serials = NULL, completed_at = now(),
           updated_at = now() WHERE id = job;
  ELSE
    UPDATE pp_batches SET units_reserved = units_reserved - (j.requested_quantity - n) WHERE id = j.batch_id;
    UPDATE pp_mint_jobs SET status = 'FAILED', minted_count = n, completed_at = now(), updated_at = now(),
           errors = errors || jsonb_build_array(jsonb_build_object('message', coalesce(error, 'units missing'),
                                                                   'at_unit', n + 1))
     WHERE id = job;
  END IF;
END $$;

-- Resolver and passports ----------------------------------------------------

-- The passport document of an identity (gtin, lot or NULL, serial or NULL), or NULL.
CREATE FUNCTION pp_passport(_g text, _lot text, _serial text, base text) RETURNS jsonb STABLE LANGUAGE plpgsql AS $$
DECLARE
  p pp_products;
  b pp_batches;
  j pp_mint_jobs;
  u pp_units;
  br pp_brands;
BEGIN
  IF _serial IS NOT NULL THEN
    SELECT * INTO u FROM pp_units x WHERE x.gtin = _g AND x.serial = _serial;
    IF u.id IS NULL THEN RETURN NULL; END IF;
    SELECT * INTO j FROM pp_mint_jobs WHERE id = pp_unit_job(u.id);
    SELECT * INTO b FROM pp_batches WHERE id = j.batch_id;
    SELECT * INTO p FROM pp_products WHERE id = j.product_id;
  ELSE
    SELECT * INTO p FROM pp_products WHERE gtin = _g;
    IF p.id IS NULL THEN RETURN NULL; END IF;
    IF _lot IS NOT NULL THEN
      SELECT * INTO b FROM pp_batches WHERE product_id = p.id AND batch_number = _lot;
      IF b.id IS NULL THEN RETURN NULL; END IF;
    END IF;
  END IF;
  SELECT * INTO br FROM pp_brands WHERE id = p.brand_id;
  RETURN jsonb_build_object(
    'id', pp_passport_id(p.gtin, coalesce(j.lot, b.batch_number), u.serial),
    'level', CASE WHEN u.id IS NOT NULL THEN 'unit' WHEN b.id IS NOT NULL THEN 'batch' ELSE 'product' END,
    'gtin', p.gtin, 'lot', coalesce(j.lot, b.batch_number), 'serial', u.serial,
    'digital_link', base || '/01/' || p.gtin
      || CASE WHEN coalesce(j.lot, b.batch_number) IS NOT NULL THEN '/10/' || pp_dl_escape(coalesce(j.lot, b.batch_number)) ELSE '' END
      || CASE WHEN u.serial IS NOT NULL THEN '/21/' || pp_dl_escape(u.serial) ELSE '' END,
    'brand', jsonb_build_object('id', br.id, 'name', br.name),
    'product', jsonb_build_object('id', p.id, 'name', p.name, 'gtin', p.gtin, 'attributes', p.attributes),
    'batch', CASE WHEN b.id IS NULL THEN NULL ELSE jsonb_build_object('id', b.id, 'batch_number', b.batch_number,
      'status', b.status, 'production_date', b.production_date, 'facility_ref', b.facility_ref,
      'attributes', b.attributes) END,
    'minted_at', bd_iso(j.created_at));
END $$;
