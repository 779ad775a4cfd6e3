-- 033_mint_lots_states: minting as tieback describes it (issue 21).
--
--   - lots: a batch-mode request may split its units into up to 100 lots
--     (_lots: [{lot_code, qty}]); lot k's units are the k-th contiguous
--     slice of the job's id range, recorded in pp_mint_lots (one row per
--     lot, not per unit: the units' COPY is unchanged);
--   - blocking reasons: a batch that cannot be minted answers
--     {ok: false, blocking_reasons: [{code, message}], ...} (submit and
--     preflight_mint_batch share the checks, pp_mint_blocking);
--   - _product_batch_id, tieback's name of the batch (_batch_id kept), and
--     mint_batch_id in the answers (a mint request is one mint batch, made
--     by one job: the same id as mint_job_id);
--   - job states QUEUED -> RESERVED (claimed by a writer, chunk plan fixed)
--     -> PROCESSING (units being written) -> COMPLETED | FAILED; a job's
--     chunks are its cycles; a cycle that fails is retried up to 3 times,
--     then the job fails keeping the cycles already committed
--     (pp_mint_cycle_failed).

ALTER TABLE pp_mint_jobs DROP CONSTRAINT pp_mint_jobs_status_check;
UPDATE pp_mint_jobs SET status = 'PROCESSING' WHERE status = 'RUNNING';
ALTER TABLE pp_mint_jobs ADD CONSTRAINT pp_mint_jobs_status_check
  CHECK (status IN ('QUEUED', 'RESERVED', 'PROCESSING', 'COMPLETED', 'FAILED'));
DROP INDEX pp_mint_jobs_pending_gtin;
CREATE INDEX pp_mint_jobs_pending_gtin ON pp_mint_jobs (gtin)
  WHERE status IN ('QUEUED', 'RESERVED', 'PROCESSING') AND serials IS NOT NULL;
-- failed attempts per cycle (chunk number as text -> count)
ALTER TABLE pp_mint_jobs ADD COLUMN cycle_failures jsonb NOT NULL DEFAULT '{}';
ALTER TABLE pp_mint_jobs ADD COLUMN has_lots boolean NOT NULL DEFAULT false;

-- The lots of a job minted with _lots, in order: lot k has the units
-- first_unit_id .. first_unit_id + quantity - 1.
CREATE TABLE pp_mint_lots (
  job_id        uuid   NOT NULL REFERENCES pp_mint_jobs(id),
  first_unit_id bigint NOT NULL,
  quantity      int    NOT NULL CHECK (quantity >= 1),
  lot           text   COLLATE "C" NOT NULL,   -- AI 10
  gtin          text   COLLATE "C" NOT NULL,   -- the job's, for lookups by identity
  PRIMARY KEY (job_id, first_unit_id)
);
CREATE INDEX pp_mint_lots_identity ON pp_mint_lots (gtin, lot);

-- The lot (AI 10) of a unit of job j.
CREATE FUNCTION pp_unit_lot(j pp_mint_jobs, unit bigint) RETURNS text STABLE LANGUAGE sql AS $$
  SELECT CASE WHEN NOT j.has_lots THEN j.lot ELSE
    (SELECT l.lot FROM pp_mint_lots l WHERE l.job_id = j.id AND l.first_unit_id <= unit
      ORDER BY l.first_unit_id DESC LIMIT 1) END
$$;

-- The arguments of a mint request, checked for shape (400 otherwise).
CREATE TYPE pp_mint_args AS (
  brand uuid, product uuid, batch uuid, mode text, activation text, qty int, serials text[], lots jsonb, key text);

CREATE FUNCTION pp_mint_parse(a jsonb) RETURNS pp_mint_args LANGUAGE plpgsql AS $$
DECLARE
  r pp_mint_args;
  bad text;
  pb uuid := pp_uuid(a, '_product_batch_id', false);
  bb uuid := pp_uuid(a, '_batch_id', false);
  total numeric;
BEGIN
  r.brand := pp_uuid(a, '_brand_id');
  r.product := pp_uuid(a, '_product_id');
  IF pb IS NOT NULL AND bb IS NOT NULL AND pb <> bb THEN
    PERFORM pp_invalid('_product_batch_id and _batch_id name different batches');
  END IF;
  r.batch := coalesce(pb, bb);
  IF r.batch IS NULL THEN PERFORM pp_invalid('_product_batch_id (or _batch_id) is required'); END IF;
  r.key := pp_text(a, '_idempotency_key', false, 200);
  IF a ? '_identity_mode' AND jsonb_typeof(a->'_identity_mode') <> 'null' THEN
    IF jsonb_typeof(a->'_identity_mode') <> 'string' OR a->>'_identity_mode' NOT IN ('batch', 'serial') THEN
      PERFORM pp_invalid('_identity_mode must be batch or serial');
    END IF;
    r.mode := a->>'_identity_mode';
  END IF;
  IF a ? '_activation_mode' AND jsonb_typeof(a->'_activation_mode') <> 'null' THEN
    IF jsonb_typeof(a->'_activation_mode') <> 'string' OR a->>'_activation_mode' NOT IN ('active_at_mint', 'first_scan') THEN
      PERFORM pp_invalid('_activation_mode must be active_at_mint or first_scan');
    END IF;
    r.activation := a->>'_activation_mode';
  ELSE
    r.activation := 'active_at_mint';
  END IF;
  IF a ? '_requested_quantity' AND jsonb_typeof(a->'_requested_quantity') <> 'null' THEN
    IF jsonb_typeof(a->'_requested_quantity') <> 'number' OR (a->>'_requested_quantity') !~ '^\d+$'
       OR (a->>'_requested_quantity')::numeric NOT BETWEEN 1 AND 1000000 THEN
      PERFORM pp_invalid('_requested_quantity must be an integer from 1 to 1000000');
    END IF;
    r.qty := (a->>'_requested_quantity')::int;
  END IF;
  IF a ? '_lots' AND jsonb_typeof(a->'_lots') <> 'null' THEN
    -- batch mode only (the mode it implies when not given)
    IF r.mode = 'serial' THEN PERFORM pp_invalid('_lots can only be given in batch identity mode'); END IF;
    r.mode := 'batch';
    IF jsonb_typeof(a->'_lots') <> 'array' OR jsonb_array_length(a->'_lots') NOT BETWEEN 1 AND 100 THEN
      PERFORM pp_invalid('_lots must be an array of 1 to 100 lots {lot_code, qty}');
    END IF;
    SELECT string_agg(format('_lots[%s]', o - 1), ', ') INTO bad
      FROM (SELECT o FROM jsonb_array_elements(a->'_lots') WITH ORDINALITY e(v, o)
            WHERE jsonb_typeof(v) <> 'object' OR jsonb_typeof(v->'lot_code') IS DISTINCT FROM 'string'
               OR jsonb_typeof(v->'qty') IS DISTINCT FROM 'number' OR (v->>'qty') !~ '^\d+$'
               OR (v->>'qty')::numeric NOT BETWEEN 1 AND 1000000
               OR EXISTS (SELECT 1 FROM jsonb_object_keys(v) k WHERE k NOT IN ('lot_code', 'qty'))
            ORDER BY o LIMIT 10) x;
    IF bad IS NOT NULL THEN
      PERFORM pp_invalid('each lot is {lot_code: string, qty: integer 1-1000000}: ' || bad);
    END IF;
    SELECT string_agg(to_jsonb(l)::text, ', ') INTO bad FROM (
      SELECT v->>'lot_code' l FROM jsonb_array_elements(a->'_lots') v GROUP BY 1 HAVING count(*) > 1 ORDER BY 1 LIMIT 10) x;
    IF bad IS NOT NULL THEN PERFORM pp_invalid('duplicate lot codes in _lots: ' || bad); END IF;
    SELECT sum((v->>'qty')::numeric) INTO total FROM jsonb_array_elements(a->'_lots') v;
    IF r.qty IS NOT NULL AND r.qty <> total THEN
      PERFORM pp_invalid(format('the quantities of _lots (%s) do not sum to _requested_quantity (%s)', total, r.qty));
    END IF;
    IF total > 1000000 THEN PERFORM pp_invalid('the quantities of _lots sum to more than 1000000'); END IF;
    r.qty := total::int;
    r.lots := a->'_lots';
  END IF;
  r.mode := coalesce(r.mode, 'serial');
  IF a ? '_serials' AND jsonb_typeof(a->'_serials') <> 'null' THEN
    IF r.mode <> 'serial' THEN PERFORM pp_invalid('_serials can only be given in serial identity mode'); END IF;
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
    SELECT array_agg(v ORDER BY o) INTO r.serials FROM jsonb_array_elements_text(a->'_serials') WITH ORDINALITY e(v, o);
    -- GS1 AI 21: 1..20 characters of character set 82
    SELECT string_agg(format('_serials[%s] %s', o - 1, to_jsonb(v)), ', ') INTO bad
      FROM (SELECT v, o FROM unnest(r.serials) WITH ORDINALITY e(v, o)
            WHERE v !~ '^[!"%&''()*+,./0-9:;<=>?A-Z_a-z-]{1,20}$' ORDER BY o LIMIT 10) x;
    IF bad IS NOT NULL THEN
      PERFORM pp_invalid('serials must be 1 to 20 characters of GS1 character set 82 (A-Z a-z 0-9 ! " % & '' ( ) * + , - . / : ; < = > ? _): ' || bad);
    END IF;
    SELECT string_agg(to_jsonb(v)::text, ', ') INTO bad
      FROM (SELECT v FROM unnest(r.serials) v GROUP BY v HAVING count(*) > 1 ORDER BY v LIMIT 10) x;
    IF bad IS NOT NULL THEN PERFORM pp_invalid('duplicate serials in _serials: ' || bad); END IF;
    IF r.qty IS NOT NULL AND r.qty <> cardinality(r.serials) THEN
      PERFORM pp_invalid(format('_requested_quantity (%s) differs from the number of _serials (%s)', r.qty, cardinality(r.serials)));
    END IF;
    r.qty := cardinality(r.serials);
  END IF;
  RETURN r;
END $$;

-- Why batch b cannot be minted with these arguments: [{code, message}]
-- ([] when it can). qty NULL (a preflight without a quantity) checks only
-- that units are left.
CREATE FUNCTION pp_mint_blocking(b pp_batches, r pp_mint_args) RETURNS jsonb STABLE LANGUAGE plpgsql AS $$
DECLARE
  out jsonb := '[]';
  bad text;
BEGIN
  IF b.status <> 'active' THEN
    out := out || jsonb_build_object('code', 'BATCH_NOT_ACTIVE',
      'message', format('the batch is %s: only active batches can be minted', b.status));
  END IF;
  IF r.lots IS NULL AND b.batch_number !~ '^[!"%&''()*+,./0-9:;<=>?A-Z_a-z-]{1,20}$' THEN
    out := out || jsonb_build_object('code', 'LOT_INVALID',
      'message', 'the batch number is not a valid GS1 AI 10 lot (1 to 20 characters of GS1 character set 82)');
  END IF;
  IF r.lots IS NOT NULL THEN
    SELECT string_agg(format('_lots[%s] %s', o - 1, to_jsonb(v->>'lot_code')), ', ') INTO bad
      FROM (SELECT v, o FROM jsonb_array_elements(r.lots) WITH ORDINALITY e(v, o)
            WHERE (v->>'lot_code') !~ '^[!"%&''()*+,./0-9:;<=>?A-Z_a-z-]{1,20}$' ORDER BY o LIMIT 10) x;
    IF bad IS NOT NULL THEN
      out := out || jsonb_build_object('code', 'LOT_INVALID',
        'message', 'lot codes must be valid GS1 AI 10 values (1 to 20 characters of GS1 character set 82): ' || bad);
    END IF;
  END IF;
  IF b.quantity IS NOT NULL AND (CASE WHEN r.qty IS NULL THEN b.units_reserved >= b.quantity
                                      ELSE b.units_reserved + r.qty > b.quantity END) THEN
    out := out || jsonb_build_object('code', 'BATCH_QUANTITY_EXCEEDED',
      'message', CASE WHEN r.qty IS NULL
        THEN format('the batch quantity %s is fully minted or reserved', b.quantity)
        ELSE format('minting %s units would exceed the batch quantity %s (%s already minted or reserved)',
                    r.qty, b.quantity, b.units_reserved) END);
  END IF;
  RETURN out;
END $$;

CREATE FUNCTION pp_mint_blocked(b pp_batches, reasons jsonb) RETURNS jsonb IMMUTABLE LANGUAGE sql AS $$
  SELECT jsonb_build_object('ok', false, 'blocking_reasons', reasons, 'product_id', b.product_id,
                            'product_batch_id', b.id)
$$;

CREATE OR REPLACE FUNCTION rpc_submit_mint_request(sub text, a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  r pp_mint_args := pp_mint_parse(a);
  p pp_products;
  b pp_batches;
  j pp_mint_jobs;
  bad text;
  reasons jsonb;
  first_id bigint;
BEGIN
  PERFORM pp_require(r.brand, sub, 'editor');
  IF r.qty IS NULL THEN PERFORM pp_invalid('_requested_quantity is required'); END IF;

  -- one submission per GTIN at a time: the product's row lock orders them,
  -- so the checks against existing and pending serials below cannot race
  SELECT * INTO p FROM pp_products WHERE id = r.product AND brand_id = r.brand FOR UPDATE;
  IF p.id IS NULL THEN
    RAISE EXCEPTION 'Not found' USING ERRCODE = 'P0002', DETAIL = 'no such product in this brand';
  END IF;

  IF r.key IS NOT NULL THEN
    SELECT * INTO j FROM pp_mint_jobs WHERE brand_id = r.brand AND idempotency_key = r.key;
    IF j.id IS NOT NULL THEN
      IF j.product_id <> r.product OR j.batch_id <> r.batch OR j.requested_quantity <> r.qty
         OR j.identity_mode <> r.mode OR j.activation_mode <> r.activation
         OR (r.serials IS NULL) <> (j.serial_source <> 'provided')
         OR (j.serials IS NOT NULL AND j.serials IS DISTINCT FROM r.serials)
         OR j.has_lots <> (r.lots IS NOT NULL)
         OR (j.has_lots AND (SELECT jsonb_agg(jsonb_build_object('lot_code', l.lot, 'qty', l.quantity) ORDER BY l.first_unit_id)
                               FROM pp_mint_lots l WHERE l.job_id = j.id)
                            IS DISTINCT FROM (SELECT jsonb_agg(jsonb_build_object('lot_code', v->>'lot_code', 'qty', (v->>'qty')::int)
                                                               ORDER BY o)
                                                FROM jsonb_array_elements(r.lots) WITH ORDINALITY e(v, o))) THEN
        PERFORM pp_conflict('Idempotency key reused', '_idempotency_key was used for a different mint request');
      END IF;
      RETURN jsonb_build_object('ok', true, 'mint_job_id', j.id, 'mint_batch_id', j.id, 'status', 'QUEUED',
                                'is_duplicate', true, 'current_status', j.status, 'product_id', j.product_id,
                                'product_batch_id', j.batch_id);
    END IF;
  END IF;

  SELECT * INTO b FROM pp_batches WHERE id = r.batch AND product_id = r.product FOR UPDATE;
  IF b.id IS NULL THEN
    RAISE EXCEPTION 'Not found' USING ERRCODE = 'P0002', DETAIL = 'no such batch of this product';
  END IF;
  reasons := pp_mint_blocking(b, r);
  IF jsonb_array_length(reasons) > 0 THEN RETURN pp_mint_blocked(b, reasons); END IF;

  IF r.serials IS NOT NULL THEN
    SELECT string_agg(to_jsonb(s)::text, ', ') INTO bad FROM (
      SELECT u.serial s FROM pp_units u WHERE u.gtin = p.gtin AND u.serial = ANY(r.serials) ORDER BY 1 LIMIT 10) x;
    IF bad IS NOT NULL THEN
      PERFORM pp_conflict('Serial already minted', 'serials already minted for GTIN ' || p.gtin || ': ' || bad);
    END IF;
    SELECT string_agg(to_jsonb(s)::text, ', ') INTO bad FROM (
      SELECT DISTINCT s FROM pp_mint_jobs o, unnest(o.serials) s
       WHERE o.gtin = p.gtin AND o.status IN ('QUEUED', 'RESERVED', 'PROCESSING') AND o.serials IS NOT NULL
         AND s = ANY(r.serials) ORDER BY 1 LIMIT 10) x;
    IF bad IS NOT NULL THEN
      PERFORM pp_conflict('Serial already requested', 'serials requested by a pending mint job for GTIN ' || p.gtin || ': ' || bad);
    END IF;
  END IF;

  UPDATE pp_batches SET units_reserved = units_reserved + r.qty WHERE id = b.id;
  UPDATE pp_unit_ids SET next_id = next_id + r.qty RETURNING next_id - r.qty INTO first_id;
  INSERT INTO pp_mint_jobs (brand_id, product_id, batch_id, gtin, lot, identity_mode, serial_source,
                            requested_quantity, first_unit_id, serials, idempotency_key, created_by, activation_mode,
                            has_lots)
  VALUES (r.brand, r.product, r.batch, p.gtin, b.batch_number, r.mode,
          CASE WHEN r.mode = 'batch' THEN 'none' WHEN r.serials IS NULL THEN 'generated' ELSE 'provided' END,
          r.qty, first_id, r.serials, r.key, sub, r.activation, r.lots IS NOT NULL)
  RETURNING * INTO j;
  IF r.lots IS NOT NULL THEN
    INSERT INTO pp_mint_lots (job_id, first_unit_id, quantity, lot, gtin)
    SELECT j.id, first_id + coalesce(sum((v->>'qty')::int) OVER (ORDER BY o ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0),
           (v->>'qty')::int, v->>'lot_code', p.gtin
      FROM jsonb_array_elements(r.lots) WITH ORDINALITY e(v, o);
  END IF;
  INSERT INTO bd_jobs (kind, ref) VALUES ('pp.mint', j.id);
  PERFORM pg_notify('bd_jobs', 'pp.mint');
  RETURN jsonb_build_object('ok', true, 'mint_job_id', j.id, 'mint_batch_id', j.id, 'status', 'QUEUED',
                            'is_duplicate', false, 'product_id', j.product_id, 'product_batch_id', j.batch_id);
END $$;

-- The checks of submit_mint_request without minting: {ok, blocking_reasons,
-- product_id, product_batch_id, requested_quantity, available_quantity}.
-- Every argument but the brand, product and batch is optional.
CREATE FUNCTION rpc_preflight_mint_batch(sub text, a jsonb) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
  r pp_mint_args := pp_mint_parse(a);
  b pp_batches;
  reasons jsonb;
BEGIN
  PERFORM pp_require(r.brand, sub, 'viewer');
  SELECT x.* INTO b FROM pp_batches x JOIN pp_products p ON p.id = x.product_id
   WHERE x.id = r.batch AND x.product_id = r.product AND p.brand_id = r.brand;
  IF b.id IS NULL THEN
    RAISE EXCEPTION 'Not found' USING ERRCODE = 'P0002', DETAIL = 'no such batch of this product in this brand';
  END IF;
  reasons := pp_mint_blocking(b, r);
  RETURN jsonb_build_object('ok', jsonb_array_length(reasons) = 0, 'blocking_reasons', reasons,
    'product_id', b.product_id, 'product_batch_id', b.id, 'requested_quantity', r.qty,
    'available_quantity', CASE WHEN b.quantity IS NOT NULL THEN greatest(b.quantity - b.units_reserved, 0) END);
END $$;

-- Cycles (chunks) of a job and how many are committed.
CREATE FUNCTION pp_mint_cycles_done(j pp_mint_jobs) RETURNS int STABLE LANGUAGE sql AS $$
  SELECT count(*)::int FROM generate_series(0, (j.requested_quantity - 1) / j.chunk_units) k
   WHERE j.chunk_units IS NOT NULL
     AND EXISTS (SELECT 1 FROM pp_units u WHERE u.id = j.first_unit_id + k::bigint * j.chunk_units)
$$;

-- As 023's, with mint_batch_id, product_batch_id, the lots and the cycles.
CREATE OR REPLACE FUNCTION pp_mint_job_json(j pp_mint_jobs) RETURNS jsonb STABLE LANGUAGE sql AS $$
  WITH m AS (
    SELECT CASE WHEN j.status IN ('COMPLETED', 'FAILED') THEN j.minted_count
      ELSE pp_mint_units_done(j) END AS n)
  SELECT jsonb_build_object('id', j.id, 'mint_job_id', j.id, 'mint_batch_id', j.id, 'brand_id', j.brand_id,
    'product_id', j.product_id, 'batch_id', j.batch_id, 'product_batch_id', j.batch_id, 'gtin', j.gtin, 'lot', j.lot,
    'lots', CASE WHEN j.has_lots THEN (SELECT jsonb_agg(jsonb_build_object('lot_code', l.lot, 'qty', l.quantity,
                   'first_seq', l.first_unit_id - j.first_unit_id + 1) ORDER BY l.first_unit_id)
                 FROM pp_mint_lots l WHERE l.job_id = j.id) END,
    'identity_mode', j.identity_mode, 'serial_source', j.serial_source, 'activation_mode', j.activation_mode,
    'status', j.status, 'requested_quantity', j.requested_quantity,
    'minted_count', m.n, 'progress', round(100.0 * m.n / j.requested_quantity, 2),
    'cycle_units', j.chunk_units,
    'cycles_total', CASE WHEN j.chunk_units IS NOT NULL THEN (j.requested_quantity + j.chunk_units - 1) / j.chunk_units END,
    'cycles_completed', CASE WHEN j.chunk_units IS NULL THEN 0 ELSE pp_mint_cycles_done(j) END,
    'cycle_retries', (SELECT coalesce(sum(v::int), 0) FROM jsonb_each_text(j.cycle_failures) e(k, v)),
    'error_count', jsonb_array_length(j.errors), 'errors', j.errors,
    'created_at', bd_iso(j.created_at), 'started_at', bd_iso(j.started_at),
    'completed_at', bd_iso(j.completed_at), 'updated_at', bd_iso(j.updated_at))
  FROM m
$$;

-- As 005's, but a claimed job is RESERVED (PROCESSING once its writers
-- start: pp_mint_processing).
CREATE OR REPLACE FUNCTION pp_mint_start(job uuid, chunk int) RETURNS TABLE (status text, gtin text, identity_mode text,
  provided boolean, first_unit_id bigint, quantity int, chunk_units int, missing bigint[]) LANGUAGE plpgsql AS $$
DECLARE j pp_mint_jobs;
BEGIN
  UPDATE pp_mint_jobs x SET status = CASE WHEN x.status = 'QUEUED' THEN 'RESERVED' ELSE x.status END,
         chunk_units = coalesce(x.chunk_units, chunk), started_at = coalesce(x.started_at, now()), updated_at = now()
   WHERE x.id = job RETURNING * INTO j;
  IF j.id IS NULL THEN RETURN; END IF;
  RETURN QUERY SELECT j.status, j.gtin, j.identity_mode, j.serials IS NOT NULL, j.first_unit_id, j.requested_quantity,
    j.chunk_units, coalesce((SELECT array_agg(k ORDER BY k) FROM generate_series(0::bigint, (j.requested_quantity - 1) / j.chunk_units) k
      WHERE NOT EXISTS (SELECT 1 FROM pp_units u WHERE u.id = j.first_unit_id + k * j.chunk_units)), '{}');
END $$;

CREATE FUNCTION pp_mint_processing(job uuid) RETURNS void LANGUAGE sql AS $$
  UPDATE pp_mint_jobs SET status = 'PROCESSING', updated_at = now() WHERE id = job AND status = 'RESERVED'
$$;

-- Records a failed attempt of cycle k (0-based) of a job; returns the
-- attempts that cycle has failed so far. The caller fails the job after
-- the 4th (the first attempt and 3 retries).
CREATE FUNCTION pp_mint_cycle_failed(job uuid, k bigint, error text) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
  n int;
  j pp_mint_jobs;
BEGIN
  UPDATE pp_mint_jobs x SET cycle_failures = jsonb_set(x.cycle_failures, ARRAY[k::text],
           to_jsonb(coalesce((x.cycle_failures->>k::text)::int, 0) + 1)), updated_at = now()
   WHERE x.id = job RETURNING * INTO j;
  IF j.id IS NULL THEN RETURN 0; END IF;
  n := (j.cycle_failures->>k::text)::int;
  UPDATE pp_mint_jobs SET errors = errors || jsonb_build_array(jsonb_build_object('message', error,
           'cycle', k + 1, 'attempt', n, 'at_unit', k * coalesce(j.chunk_units, 0) + 1, 'retrying', n <= 3))
   WHERE id = job;
  RETURN n;
END $$;

-- As 023's, with the lot of each unit.
CREATE OR REPLACE FUNCTION rpc_list_mint_units(sub text, a jsonb, base text) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
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
  SELECT coalesce(jsonb_agg(jsonb_build_object('seq', u.id - j.first_unit_id + 1, 'gtin', u.gtin, 'lot', u.lot,
           'serial', u.serial, 'status', u.status, 'activated_at', bd_iso(u.activated_at),
           'digital_link', pp_dl_uri(base, u.gtin, u.lot, u.serial),
           'passport_url', base || '/passports/' || pp_passport_id(u.gtin, u.lot, u.serial)) ORDER BY u.id), '[]'),
         count(*), max(u.id - j.first_unit_id + 1)
    INTO v_rows, v_n, v_last
    FROM (SELECT u.*, act.activated_at, pp_unit_lot(j, u.id) AS lot,
                 CASE WHEN j.activation_mode = 'first_scan' AND act.unit_id IS NULL THEN 'minted' ELSE 'active' END AS status
            FROM (SELECT * FROM pp_units u WHERE u.id >= j.first_unit_id + v_after
                    AND u.id < j.first_unit_id + j.requested_quantity ORDER BY u.id LIMIT lim + 1) u
            LEFT JOIN pp_unit_activations act ON act.unit_id = u.id) u;
  IF v_n > lim THEN
    v_rows := v_rows - lim;
    v_last := v_last - 1;
  END IF;
  RETURN jsonb_build_object('mint_job_id', j.id, 'status', j.status, 'data', v_rows, 'has_more', v_n > lim,
                            'next_cursor', CASE WHEN v_n > lim THEN 'u' || v_last END);
END $$;

-- As 005's; a lot minted with _lots (pp_mint_lots) is known as well: its
-- passport is the minting job's batch, with that lot.
CREATE OR REPLACE FUNCTION pp_passport(_g text, _lot text, _serial text, base text) RETURNS jsonb STABLE LANGUAGE plpgsql AS $$
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
      IF b.id IS NULL THEN
        -- a lot of a job minted with _lots: the batch the job minted
        SELECT m.* INTO j FROM pp_mint_lots l JOIN pp_mint_jobs m ON m.id = l.job_id
         WHERE l.gtin = _g AND l.lot = _lot ORDER BY m.created_at LIMIT 1;
        IF j.id IS NULL THEN RETURN NULL; END IF;
        j.lot := _lot;
        SELECT * INTO b FROM pp_batches WHERE id = j.batch_id;
      END IF;
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
