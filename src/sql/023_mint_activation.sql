-- 023_mint_activation: activation modes of mint jobs (issue 21).
--
--   active_at_mint  (the default) every unit is `active` once written;
--   first_scan      every unit is written `minted` and becomes `active` on
--                   its first resolver hit, exactly once.
--
-- A unit's status is not a column of pp_units: the mint job's COPY stays
-- (id, gtin, serial) and writes no more bytes per unit than before. It is
--   'minted'  iff its job's activation_mode is 'first_scan' and the unit
--             has no row in pp_unit_activations,
--   'active'  otherwise
-- (pp_unit_status). Activating is one INSERT of the unit's id into
-- pp_unit_activations (pp_unit_activate): its primary key makes the first
-- scan win under any concurrency, and every later scan finds the row.

ALTER TABLE pp_mint_jobs ADD COLUMN activation_mode text NOT NULL DEFAULT 'active_at_mint'
  CHECK (activation_mode IN ('active_at_mint', 'first_scan'));

-- Units of first_scan jobs that have been activated (one row per unit, ever).
CREATE TABLE pp_unit_activations (
  unit_id      bigint      PRIMARY KEY,           -- pp_units.id
  activated_at timestamptz NOT NULL DEFAULT now()
);

-- The status of a unit of job j: 'minted' or 'active'.
CREATE FUNCTION pp_unit_status(j pp_mint_jobs, unit bigint) RETURNS text STABLE LANGUAGE sql AS $$
  SELECT CASE WHEN j.activation_mode = 'first_scan'
                   AND NOT EXISTS (SELECT 1 FROM pp_unit_activations a WHERE a.unit_id = unit)
              THEN 'minted' ELSE 'active' END
$$;

-- Activates a unit on a resolver hit: 'activated' when this call made a
-- minted unit active, 'already_active' when an earlier one did, 'active'
-- when the unit's job is active_at_mint (nothing to do), NULL when there is
-- no such unit.
CREATE FUNCTION pp_unit_activate(unit bigint) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  mode text;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pp_units WHERE id = unit) THEN RETURN NULL; END IF;
  SELECT m.activation_mode INTO mode FROM pp_mint_jobs m WHERE m.first_unit_id <= unit
   ORDER BY m.first_unit_id DESC LIMIT 1;
  IF mode IS DISTINCT FROM 'first_scan' THEN RETURN 'active'; END IF;
  INSERT INTO pp_unit_activations (unit_id) VALUES (unit) ON CONFLICT (unit_id) DO NOTHING;
  RETURN CASE WHEN FOUND THEN 'activated' ELSE 'already_active' END;
END $$;

-- As 005's, with _activation_mode (active_at_mint | first_scan), which is
-- also part of what an idempotency key stands for.
CREATE OR REPLACE FUNCTION rpc_submit_mint_request(sub text, a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  brand uuid := pp_uuid(a, '_brand_id');
  product uuid := pp_uuid(a, '_product_id');
  batch uuid := pp_uuid(a, '_batch_id');
  mode text;
  v_activation text;
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
  IF a ? '_activation_mode' AND jsonb_typeof(a->'_activation_mode') <> 'null' THEN
    IF jsonb_typeof(a->'_activation_mode') <> 'string' OR a->>'_activation_mode' NOT IN ('active_at_mint', 'first_scan') THEN
      PERFORM pp_invalid('_activation_mode must be active_at_mint or first_scan');
    END IF;
    v_activation := a->>'_activation_mode';
  ELSE
    v_activation := 'active_at_mint';
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
         OR j.activation_mode <> v_activation
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
                            requested_quantity, first_unit_id, serials, idempotency_key, created_by, activation_mode)
  VALUES (brand, product, batch, p.gtin, b.batch_number, mode,
          CASE WHEN mode = 'batch' THEN 'none' WHEN v_serials IS NULL THEN 'generated' ELSE 'provided' END,
          qty, first_id, v_serials, key, sub, v_activation)
  RETURNING * INTO j;
  INSERT INTO bd_jobs (kind, ref) VALUES ('pp.mint', j.id);
  PERFORM pg_notify('bd_jobs', 'pp.mint');
  RETURN jsonb_build_object('ok', true, 'mint_job_id', j.id, 'status', 'QUEUED', 'is_duplicate', false);
END $$;

-- As 005's; every unit also has its status ('minted' | 'active', as
-- pp_unit_status) and activated_at (its first scan; null unless activated).
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
  SELECT coalesce(jsonb_agg(jsonb_build_object('seq', u.id - j.first_unit_id + 1, 'gtin', u.gtin, 'lot', j.lot,
           'serial', u.serial, 'status', u.status, 'activated_at', bd_iso(u.activated_at),
           'digital_link', pp_dl_uri(base, u.gtin, j.lot, u.serial),
           'passport_url', base || '/passports/' || pp_passport_id(u.gtin, j.lot, u.serial)) ORDER BY u.id), '[]'),
         count(*), max(u.id - j.first_unit_id + 1)
    INTO v_rows, v_n, v_last
    FROM (SELECT u.*, act.activated_at,
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

-- As 005's, with the activation_mode.
CREATE OR REPLACE FUNCTION pp_mint_job_json(j pp_mint_jobs) RETURNS jsonb STABLE LANGUAGE sql AS $$
  WITH m AS (
    SELECT CASE WHEN j.status IN ('COMPLETED', 'FAILED') THEN j.minted_count
      ELSE pp_mint_units_done(j) END AS n)
  SELECT jsonb_build_object('id', j.id, 'mint_job_id', j.id, 'brand_id', j.brand_id, 'product_id', j.product_id,
    'batch_id', j.batch_id, 'gtin', j.gtin, 'lot', j.lot, 'identity_mode', j.identity_mode,
    'serial_source', j.serial_source, 'activation_mode', j.activation_mode, 'status', j.status,
    'requested_quantity', j.requested_quantity,
    'minted_count', m.n, 'progress', round(100.0 * m.n / j.requested_quantity, 2),
    'error_count', jsonb_array_length(j.errors), 'errors', j.errors,
    'created_at', bd_iso(j.created_at), 'started_at', bd_iso(j.started_at),
    'completed_at', bd_iso(j.completed_at), 'updated_at', bd_iso(j.updated_at))
  FROM m
$$;