-- 019_products_webhooks: webhook endpoints of a brand through /rpc (brand
-- owner or admin), and the mint job events mint_job.completed and
-- mint_job.failed in the outbox (015), with the job as get_mint_job returns
-- it. Secrets are made and sealed by the server (rpc.c passes the sealed
-- bytes; it adds the secret itself to the answer of create and rotate), and
-- URLs are checked by it (bd_webhook_url_problem) before these run.

CREATE FUNCTION pp_webhook_events(a jsonb, required boolean) RETURNS text[] LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  ev jsonb := a->'_events';
  out text[];
BEGIN
  IF ev IS NULL OR jsonb_typeof(ev) = 'null' THEN
    IF required THEN PERFORM pp_invalid('_events is required'); END IF;
    RETURN NULL;
  END IF;
  IF jsonb_typeof(ev) <> 'array' OR jsonb_array_length(ev) = 0 OR jsonb_array_length(ev) > 32 THEN
    PERFORM pp_invalid('_events must be a non-empty array of event types');
  END IF;
  SELECT array_agg(e ORDER BY n) INTO out FROM jsonb_array_elements_text(ev) WITH ORDINALITY AS x(e, n);
  IF EXISTS (SELECT 1 FROM unnest(out) e WHERE e NOT IN ('mint_job.completed', 'mint_job.failed', '*')) THEN
    PERFORM pp_invalid('_events: the types are mint_job.completed, mint_job.failed or "*"');
  END IF;
  IF (SELECT count(DISTINCT e) FROM unnest(out) e) <> cardinality(out) THEN
    PERFORM pp_invalid('_events has a duplicate type');
  END IF;
  RETURN out;
END $$;

-- An endpoint of the brand (404 P0002 otherwise); the caller must be its owner or admin.
CREATE FUNCTION pp_webhook_endpoint(sub text, a jsonb) RETURNS bd_webhook_endpoints LANGUAGE plpgsql STABLE AS $$
DECLARE
  brand uuid := pp_uuid(a, '_brand_id');
  e bd_webhook_endpoints;
BEGIN
  PERFORM pp_require(brand, sub, 'admin');
  SELECT * INTO e FROM bd_webhook_endpoints x WHERE x.id = pp_text(a, '_webhook_id', true, 64)
     AND x.surface = 'products' AND x.owner = brand::text AND x.deleted_at IS NULL;
  IF e.id IS NULL THEN
    RAISE EXCEPTION 'Not found' USING ERRCODE = 'P0002', DETAIL = 'no such webhook endpoint in this brand';
  END IF;
  RETURN e;
END $$;

CREATE FUNCTION rpc_create_webhook_endpoint(sub text, a jsonb, sealed bytea, max_per_owner int) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  brand uuid := pp_uuid(a, '_brand_id');
  e bd_webhook_endpoints;
BEGIN
  PERFORM pp_require(brand, sub, 'admin');
  IF (SELECT count(*) FROM bd_webhook_endpoints WHERE surface = 'products' AND owner = brand::text
      AND deleted_at IS NULL) >= max_per_owner THEN
    PERFORM pp_invalid('the brand already has the maximum of ' || max_per_owner || ' webhook endpoints');
  END IF;
  INSERT INTO bd_webhook_endpoints (id, surface, owner, url, events, description, secret_sealed)
  VALUES ('wh_' || substr(replace(gen_random_uuid()::text, '-', ''), 1, 24), 'products', brand::text,
          pp_text(a, '_url', true, 2048), pp_webhook_events(a, true), pp_text(a, '_description', false, 500), sealed)
  RETURNING * INTO e;
  RETURN bd_webhook_endpoint_json(e);
END $$;

CREATE FUNCTION rpc_list_webhook_endpoints(sub text, a jsonb) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
  brand uuid := pp_uuid(a, '_brand_id');
BEGIN
  PERFORM pp_require(brand, sub, 'admin');
  RETURN coalesce((SELECT jsonb_agg(bd_webhook_endpoint_json(e) ORDER BY e.created_at DESC, e.id DESC)
                   FROM bd_webhook_endpoints e WHERE e.surface = 'products' AND e.owner = brand::text
                   AND e.deleted_at IS NULL), '[]');
END $$;

-- _url, _events, _description, _is_active (each optional); _rotate_secret
-- true with the sealed new secret from the server.
CREATE FUNCTION rpc_update_webhook_endpoint(sub text, a jsonb, sealed bytea) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  e bd_webhook_endpoints := pp_webhook_endpoint(sub, a);
  act boolean;
BEGIN
  IF a ? '_is_active' AND jsonb_typeof(a->'_is_active') <> 'boolean' THEN
    PERFORM pp_invalid('_is_active must be true or false');
  END IF;
  act := (a->>'_is_active')::boolean;
  UPDATE bd_webhook_endpoints SET
    url = coalesce(pp_text(a, '_url', false, 2048), url),
    events = coalesce(pp_webhook_events(a, false), events),
    description = CASE WHEN a ? '_description' THEN pp_text(a, '_description', false, 500) ELSE description END,
    is_active = coalesce(act, is_active),
    disabled_reason = CASE WHEN act THEN NULL ELSE disabled_reason END,
    failing_since = CASE WHEN act THEN NULL ELSE failing_since END,
    secret_sealed = CASE WHEN (a->>'_rotate_secret')::boolean AND sealed IS NOT NULL THEN sealed ELSE secret_sealed END,
    updated_at = now()
  WHERE id = e.id RETURNING * INTO e;
  RETURN bd_webhook_endpoint_json(e);
END $$;

CREATE FUNCTION rpc_delete_webhook_endpoint(sub text, a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  e bd_webhook_endpoints := pp_webhook_endpoint(sub, a);
BEGIN
  UPDATE bd_webhook_endpoints SET deleted_at = now(), is_active = false, updated_at = now() WHERE id = e.id;
  RETURN jsonb_build_object('ok', true, 'id', e.id, 'deleted', true);
END $$;

CREATE FUNCTION rpc_list_webhook_deliveries(sub text, a jsonb) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
  e bd_webhook_endpoints := pp_webhook_endpoint(sub, a);
  lim int := coalesce(pp_int(a, '_limit'), 100);
BEGIN
  IF lim < 1 OR lim > 1000 THEN PERFORM pp_invalid('_limit must be 1..1000'); END IF;
  RETURN coalesce((SELECT jsonb_agg(bd_webhook_delivery_json(d) ORDER BY d.created_at DESC, d.id DESC)
                   FROM (SELECT * FROM bd_webhook_deliveries x WHERE x.endpoint_id = e.id
                         ORDER BY x.created_at DESC, x.id DESC LIMIT lim) d), '[]');
END $$;

CREATE FUNCTION rpc_retry_webhook_delivery(sub text, a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  e bd_webhook_endpoints := pp_webhook_endpoint(sub, a);
  d jsonb := bd_webhook_retry(e.id, pp_text(a, '_delivery_id', true, 64));
BEGIN
  IF d IS NULL THEN
    RAISE EXCEPTION 'Not found' USING ERRCODE = 'P0002', DETAIL = 'no such delivery of this endpoint';
  END IF;
  RETURN d;
END $$;

-- As 005's, and emits mint_job.completed or mint_job.failed on the job's end.
CREATE OR REPLACE FUNCTION pp_mint_finish(job uuid, error text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  j pp_mint_jobs;
  n int;
BEGIN
  SELECT * INTO j FROM pp_mint_jobs WHERE id = job FOR UPDATE;
  IF j.status IN ('COMPLETED', 'FAILED') THEN RETURN; END IF;
  n := pp_mint_units_done(j);
  IF error IS NULL AND n = j.requested_quantity THEN
    UPDATE pp_mint_jobs SET status = 'COMPLETED', minted_count = n, serials = NULL, completed_at = now(),
           updated_at = now() WHERE id = job RETURNING * INTO j;
  ELSE
    UPDATE pp_batches SET units_reserved = units_reserved - (j.requested_quantity - n) WHERE id = j.batch_id;
    UPDATE pp_mint_jobs SET status = 'FAILED', minted_count = n, completed_at = now(), updated_at = now(),
           errors = errors || jsonb_build_array(jsonb_build_object('message', coalesce(error, 'units missing'),
                                                                   'at_unit', n + 1))
     WHERE id = job RETURNING * INTO j;
  END IF;
  PERFORM bd_webhook_emit('products', j.brand_id::text, NULL, 'mint_job.' || lower(j.status), pp_mint_job_json(j));
END $$;
