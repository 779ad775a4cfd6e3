-- 003_products: brands, members, products and production batches of the
-- /rpc surface (tieback DPP RPC API, PostgREST-style). The RPC logic lives
-- here as rpc_* functions called with (caller's JWT sub, arguments jsonb):
-- one round trip per call. Errors are raised with SQLSTATEs that the server
-- maps to HTTP: 42501 → 403, 22023 → 400, P0002 → 404, 23505 → 409.

CREATE TABLE pp_brands (
  id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id  bigint      NOT NULL REFERENCES bd_tenants(id),
  name       text        NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, name)
);

CREATE TABLE pp_members (
  brand_id   uuid        NOT NULL REFERENCES pp_brands(id),
  user_id    text        NOT NULL,                 -- the JWT's sub
  role       text        NOT NULL CHECK (role IN ('owner', 'admin', 'editor', 'viewer')),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (brand_id, user_id)
);

CREATE TABLE pp_products (
  id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  brand_id   uuid        NOT NULL REFERENCES pp_brands(id),
  name       text        NOT NULL,
  gtin       text        NOT NULL UNIQUE CHECK (gtin ~ '^[0-9]{14}$'), -- normalised GTIN-14
  attributes jsonb       NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pp_products_brand ON pp_products (brand_id, created_at);

CREATE TABLE pp_batches (
  id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  brand_id        uuid        NOT NULL REFERENCES pp_brands(id),
  product_id      uuid        NOT NULL REFERENCES pp_products(id),
  batch_number    text        NOT NULL,
  status          text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'closed', 'recalled')),
  production_date date,
  quantity        int         CHECK (quantity >= 0),
  facility_ref    text,
  attributes      jsonb       NOT NULL DEFAULT '{}',
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT pp_batches_number_unique UNIQUE (product_id, batch_number)
);

-- Raises "Invalid input" (22023) with a detail.
CREATE FUNCTION pp_invalid(detail text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'Invalid input' USING ERRCODE = '22023', DETAIL = detail;
END $$;

-- Checks the caller's role in the brand: viewer < editor < admin < owner.
-- Unknown brand and no membership are the same 403: nothing leaks.
CREATE FUNCTION pp_require(brand uuid, sub text, need text) RETURNS void LANGUAGE plpgsql STABLE AS $$
DECLARE
  r text;
  rank constant jsonb := '{"viewer": 1, "editor": 2, "admin": 3, "owner": 4}';
BEGIN
  SELECT role INTO r FROM pp_members WHERE brand_id = brand AND user_id = sub;
  IF r IS NULL OR (rank->>r)::int < (rank->>need)::int THEN
    RAISE EXCEPTION 'Forbidden' USING ERRCODE = '42501',
      DETAIL = CASE WHEN r IS NULL THEN 'not a member of this brand' ELSE 'the ' || need || ' role is required' END;
  END IF;
END $$;

-- A uuid argument, or "Invalid input".
CREATE FUNCTION pp_uuid(a jsonb, k text, required boolean DEFAULT true) RETURNS uuid LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE v text := a->>k;
BEGIN
  IF v IS NULL THEN
    IF required THEN PERFORM pp_invalid(k || ' is required'); END IF;
    RETURN NULL;
  END IF;
  IF v !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
    PERFORM pp_invalid(k || ' must be a UUID');
  END IF;
  RETURN v::uuid;
END $$;

-- GTIN-8/12/13/14 → GTIN-14 with the GS1 mod-10 check digit verified.
CREATE FUNCTION pp_gtin14(g text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  s text;
  total int := 0;
  i int;
BEGIN
  IF g IS NULL OR g !~ '^[0-9]+$' THEN PERFORM pp_invalid('_gtin must contain digits only'); END IF;
  IF length(g) NOT IN (8, 12, 13, 14) THEN PERFORM pp_invalid('_gtin must have 8, 12, 13 or 14 digits'); END IF;
  s := lpad(g, 14, '0');
  FOR i IN 1..13 LOOP
    total := total + substr(s, i, 1)::int * CASE WHEN i % 2 = 1 THEN 3 ELSE 1 END;
  END LOOP;
  IF (10 - total % 10) % 10 <> substr(s, 14, 1)::int THEN PERFORM pp_invalid('_gtin check digit is wrong'); END IF;
  RETURN s;
END $$;

CREATE FUNCTION pp_product_json(p pp_products) RETURNS jsonb STABLE LANGUAGE sql AS $$
  SELECT jsonb_build_object('id', p.id, 'brand_id', p.brand_id, 'name', p.name, 'gtin', p.gtin,
    'attributes', p.attributes, 'created_at', bd_iso(p.created_at), 'updated_at', bd_iso(p.updated_at))
$$;

CREATE FUNCTION pp_batch_json(b pp_batches) RETURNS jsonb STABLE LANGUAGE sql AS $$
  SELECT jsonb_build_object('id', b.id, 'product_id', b.product_id, 'batch_number', b.batch_number,
    'status', b.status, 'production_date', b.production_date, 'quantity', b.quantity,
    'facility_ref', b.facility_ref, 'attributes', b.attributes,
    'created_at', bd_iso(b.created_at), 'updated_at', bd_iso(b.updated_at))
$$;

CREATE FUNCTION pp_date(a jsonb, k text) RETURNS date LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE v text := a->>k;
BEGIN
  IF v IS NULL THEN RETURN NULL; END IF;
  IF v !~ '^\d{4}-\d{2}-\d{2}$' THEN PERFORM pp_invalid(k || ' must be a date (YYYY-MM-DD)'); END IF;
  BEGIN
    RETURN v::date;
  EXCEPTION WHEN others THEN
    PERFORM pp_invalid(k || ' is not a valid date');
  END;
  RETURN NULL;
END $$;

CREATE FUNCTION pp_int(a jsonb, k text) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF a->k IS NULL OR jsonb_typeof(a->k) = 'null' THEN RETURN NULL; END IF;
  IF jsonb_typeof(a->k) <> 'number' OR (a->>k) !~ '^\d+$' OR (a->>k)::numeric > 2147483647 THEN
    PERFORM pp_invalid(k || ' must be a non-negative integer');
  END IF;
  RETURN (a->>k)::int;
END $$;

CREATE FUNCTION pp_text(a jsonb, k text, required boolean, maxlen int DEFAULT 200) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF a->k IS NULL OR jsonb_typeof(a->k) = 'null' THEN
    IF required THEN PERFORM pp_invalid(k || ' is required'); END IF;
    RETURN NULL;
  END IF;
  IF jsonb_typeof(a->k) <> 'string' OR length(a->>k) = 0 OR length(a->>k) > maxlen THEN
    PERFORM pp_invalid(k || ' must be a non-empty string of at most ' || maxlen || ' characters');
  END IF;
  RETURN a->>k;
END $$;

CREATE FUNCTION pp_object(a jsonb, k text) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF a->k IS NULL OR jsonb_typeof(a->k) = 'null' THEN RETURN NULL; END IF;
  IF jsonb_typeof(a->k) <> 'object' THEN PERFORM pp_invalid(k || ' must be an object'); END IF;
  RETURN a->k;
END $$;

CREATE FUNCTION rpc_create_product(sub text, a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  brand uuid := pp_uuid(a, '_brand_id');
  p pp_products;
BEGIN
  PERFORM pp_require(brand, sub, 'editor');
  INSERT INTO pp_products (brand_id, name, gtin, attributes)
  VALUES (brand, pp_text(a, '_name', true), pp_gtin14(a->>'_gtin'), coalesce(pp_object(a, '_attributes'), '{}'))
  RETURNING * INTO p;
  RETURN pp_product_json(p);
END $$;

CREATE FUNCTION rpc_list_products(sub text, a jsonb) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE brand uuid := pp_uuid(a, '_brand_id');
BEGIN
  PERFORM pp_require(brand, sub, 'viewer');
  RETURN coalesce((SELECT jsonb_agg(pp_product_json(p) ORDER BY p.created_at, p.id) FROM pp_products p
                   WHERE p.brand_id = brand), '[]');
END $$;

-- The product must belong to the brand (else 404: not found in this brand).
CREATE FUNCTION pp_brand_product(brand uuid, product uuid) RETURNS void LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pp_products WHERE id = product AND brand_id = brand) THEN
    RAISE EXCEPTION 'Not found' USING ERRCODE = 'P0002', DETAIL = 'no such product in this brand';
  END IF;
END $$;

CREATE FUNCTION rpc_create_product_batch(sub text, a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  brand uuid := pp_uuid(a, '_brand_id');
  product uuid := pp_uuid(a, '_product_id');
  b pp_batches;
BEGIN
  PERFORM pp_require(brand, sub, 'editor');
  PERFORM pp_brand_product(brand, product);
  INSERT INTO pp_batches (brand_id, product_id, batch_number, production_date, quantity, facility_ref, attributes)
  VALUES (brand, product, pp_text(a, '_batch_number', true, 64), pp_date(a, '_production_date'),
          pp_int(a, '_quantity'), pp_text(a, '_facility_ref', false, 100), coalesce(pp_object(a, '_attributes'), '{}'))
  RETURNING * INTO b;
  RETURN jsonb_build_object('id', b.id, 'product_id', b.product_id, 'batch_number', b.batch_number,
    'status', b.status, 'production_date', b.production_date, 'quantity', b.quantity,
    'facility_ref', b.facility_ref, 'created_at', bd_iso(b.created_at));
END $$;

CREATE FUNCTION rpc_list_product_batches(sub text, a jsonb) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
  brand uuid := pp_uuid(a, '_brand_id');
  product uuid := pp_uuid(a, '_product_id');
BEGIN
  PERFORM pp_require(brand, sub, 'viewer');
  PERFORM pp_brand_product(brand, product);
  RETURN coalesce((SELECT jsonb_agg(jsonb_build_object('id', b.id, 'batch_number', b.batch_number,
      'status', b.status, 'production_date', b.production_date, 'quantity', b.quantity,
      'facility_ref', b.facility_ref, 'attributes', b.attributes, 'created_at', bd_iso(b.created_at),
      'updated_at', bd_iso(b.updated_at)) ORDER BY b.created_at, b.id)
    FROM pp_batches b WHERE b.product_id = product), '[]');
END $$;

CREATE FUNCTION rpc_update_product_batch(sub text, a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  brand uuid := pp_uuid(a, '_brand_id');
  batch uuid := pp_uuid(a, '_batch_id');
  p jsonb := pp_object(a, '_patch');
  k text;
  b pp_batches;
BEGIN
  PERFORM pp_require(brand, sub, 'editor');
  IF p IS NULL THEN PERFORM pp_invalid('_patch is required'); END IF;
  FOR k IN SELECT jsonb_object_keys(p) LOOP
    IF k NOT IN ('batch_number', 'status', 'production_date', 'quantity', 'facility_ref', 'attributes') THEN
      PERFORM pp_invalid('_patch.' || k || ' cannot be changed (allowed: batch_number, status, production_date, quantity, facility_ref, attributes)');
    END IF;
  END LOOP;
  IF p ? 'status' AND (jsonb_typeof(p->'status') <> 'string' OR p->>'status' NOT IN ('active', 'closed', 'recalled')) THEN
    PERFORM pp_invalid('_patch.status must be active, closed or recalled');
  END IF;
  UPDATE pp_batches SET
    batch_number = CASE WHEN p ? 'batch_number' THEN pp_text(p, 'batch_number', true, 64) ELSE batch_number END,
    status = coalesce(p->>'status', status),
    production_date = CASE WHEN p ? 'production_date' THEN pp_date(p, 'production_date') ELSE production_date END,
    quantity = CASE WHEN p ? 'quantity' THEN pp_int(p, 'quantity') ELSE quantity END,
    facility_ref = CASE WHEN p ? 'facility_ref' THEN pp_text(p, 'facility_ref', false, 100) ELSE facility_ref END,
    attributes = CASE WHEN p ? 'attributes' THEN coalesce(pp_object(p, 'attributes'), '{}') ELSE attributes END,
    updated_at = now()
  WHERE id = batch AND brand_id = brand
  RETURNING * INTO b;
  IF b.id IS NULL THEN
    RAISE EXCEPTION 'Not found' USING ERRCODE = 'P0002', DETAIL = 'no such batch in this brand';
  END IF;
  RETURN jsonb_build_object('id', b.id, 'batch_number', b.batch_number, 'status', b.status,
    'production_date', b.production_date, 'quantity', b.quantity, 'facility_ref', b.facility_ref,
    'attributes', b.attributes, 'updated_at', bd_iso(b.updated_at));
END $$;
