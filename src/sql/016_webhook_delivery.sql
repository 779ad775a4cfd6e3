-- 016_webhook_delivery: what the delivery engine (core/webhooks.c) runs,
-- one round trip each: claim due deliveries with a lease, record an
-- attempt's outcome (backoff, giving up, disabling a failing endpoint), and
-- a periodic sweep that ends deliveries no endpoint will take and reports
-- the queue for the metrics.
--
-- THE RETRY WINDOW. bd_webhook_emit (015) queues a delivery with
-- retry_until = now() + 24 h, and bd_webhook_retry (a retry by hand)
-- resets it to now() + 24 h: both write "start of the window + 24 h". The
-- window's length is the setting BATCHD_WEBHOOK_RETRY_FOR_S (default 24 h),
-- which only the processes know, so they pass it in and the deadline is
-- retry_until - 24 h + retry_for_s (bd_webhook_deadline): equal to
-- retry_until with the default, and exact for any other setting.
--
-- DISABLED AND DELETED ENDPOINTS. Their deliveries are never claimed. A
-- deleted endpoint's pending deliveries end at the next sweep (failed,
-- "endpoint deleted"). A disabled one's (by the server after failing for
-- BATCHD_WEBHOOK_DISABLE_AFTER_S, or by its owner) stay pending until
-- their window ends, so re-enabling the endpoint in time delivers them;
-- after it the sweep fails them ("endpoint disabled").

COMMENT ON COLUMN bd_webhook_deliveries.retry_until IS
  'start of the retry window + 24 h; the deadline is bd_webhook_deadline(retry_until, BATCHD_WEBHOOK_RETRY_FOR_S)';

-- Deliveries in flight (leased): counted per endpoint by every claim.
-- Small: a lease is cleared when its attempt is recorded.
CREATE INDEX bd_webhook_deliveries_leased ON bd_webhook_deliveries (endpoint_id)
  WHERE state = 'pending' AND lease_until IS NOT NULL;
-- Pending deliveries by endpoint, oldest due first: the claim's walk over
-- the endpoints and its pick in each; the sweep of disabled and deleted ones.
-- It replaces 015's index on next_attempt_at alone, which nothing needs now
-- (the claim does not walk the due deliveries in one order) and which a
-- planner without statistics (new tables, a burst of new rows) picked for
-- the per-endpoint pick, scanning every due delivery once per endpoint.
CREATE INDEX bd_webhook_deliveries_pending_ep ON bd_webhook_deliveries (endpoint_id, next_attempt_at)
  WHERE state = 'pending';
DROP INDEX bd_webhook_deliveries_due;

CREATE FUNCTION bd_webhook_deadline(retry_until timestamptz, retry_for_s int) RETURNS timestamptz
IMMUTABLE LANGUAGE sql AS $$
  SELECT retry_until - interval '24 hours' + make_interval(secs => retry_for_s)
$$;

-- The body of every delivery of an event, identical on every retry:
-- {"id","type","created_at","data"} in that order, compact around the
-- envelope (data is jsonb's text form).
CREATE FUNCTION bd_webhook_envelope(v bd_webhook_events) RETURNS text STABLE LANGUAGE sql AS $$
  SELECT '{"id":' || to_json(v.id)::text || ',"type":' || to_json(v.type)::text
      || ',"created_at":' || to_json(bd_iso(v.created_at))::text || ',"data":' || v.data::text || '}'
$$;

-- Claims up to n due deliveries for `instance` for lease_s seconds: pending,
-- next_attempt_at reached, not leased (or the lease expired: its process
-- died), of an active endpoint, and at most per_endpoint in flight per
-- endpoint counting those leased anywhere (other processes included).
-- Every endpoint with pending deliveries is visited (a loose index scan,
-- one probe each) and offers its oldest due ones up to its free slots; the
-- oldest of those are taken. So one endpoint's backlog neither fills a
-- claim nor is scanned by it, and the cost is one probe per endpoint with
-- pending deliveries, whatever their number. Rows are locked only once
-- chosen (SKIP LOCKED: a concurrent claim took them).
CREATE FUNCTION bd_webhook_claim(instance text, n int, per_endpoint int, lease_s int)
RETURNS TABLE (delivery_id text, attempts int, endpoint_id text, url text, secret_sealed bytea,
               event_id text, event_type text, body text)
LANGUAGE sql AS $$
  WITH RECURSIVE eps(ep) AS (
    (SELECT d.endpoint_id FROM bd_webhook_deliveries d WHERE d.state = 'pending' ORDER BY d.endpoint_id LIMIT 1)
    UNION ALL
    SELECT (SELECT d.endpoint_id FROM bd_webhook_deliveries d WHERE d.state = 'pending' AND d.endpoint_id > eps.ep
             ORDER BY d.endpoint_id LIMIT 1)
      FROM eps WHERE eps.ep IS NOT NULL
  ), cand AS (
    -- per endpoint: its slots not in flight anywhere (the leased index,
    -- probed per endpoint: a plan that holds before the tables have
    -- statistics, e.g. just after a thousand endpoints were added)
    SELECT x.id, x.due FROM eps
      JOIN bd_webhook_endpoints e ON e.id = eps.ep AND e.is_active AND e.deleted_at IS NULL
      CROSS JOIN LATERAL (
        SELECT per_endpoint - count(*)::int AS room FROM bd_webhook_deliveries b
         WHERE b.endpoint_id = e.id AND b.state = 'pending' AND b.lease_until IS NOT NULL
           AND b.lease_until >= now()) f
      CROSS JOIN LATERAL (
        SELECT d.id, d.next_attempt_at AS due FROM bd_webhook_deliveries d
         WHERE d.endpoint_id = e.id AND d.state = 'pending' AND d.next_attempt_at <= now()
           AND (d.lease_until IS NULL OR d.lease_until < now())
         ORDER BY d.next_attempt_at
         LIMIT greatest(f.room, 0)) x
  ), pick AS (
    SELECT c.id FROM cand c ORDER BY c.due LIMIT n
  ), locked AS (
    SELECT d.id FROM bd_webhook_deliveries d JOIN pick ON pick.id = d.id
     WHERE d.state = 'pending' AND (d.lease_until IS NULL OR d.lease_until < now())
     FOR UPDATE OF d SKIP LOCKED
  ), upd AS (
    UPDATE bd_webhook_deliveries d SET lease_until = now() + make_interval(secs => lease_s), locked_by = instance
      FROM locked WHERE d.id = locked.id
    RETURNING d.id, d.attempts, d.endpoint_id, d.event_id
  )
  SELECT u.id, u.attempts, u.endpoint_id, e.url, e.secret_sealed, v.id, v.type, bd_webhook_envelope(v)
    FROM upd u JOIN bd_webhook_endpoints e ON e.id = u.endpoint_id JOIN bd_webhook_events v ON v.id = u.event_id
$$;

-- Records one attempt of delivery `del`: ok (the receiver answered 2xx),
-- else its HTTP status (NULL: no answer) and what went wrong.
--   ok: succeeded, and the endpoint is no longer failing.
--   failed: failed for good once the retry window has ended, else pending
--   again after min(base * 2^(attempts-1), 1 h), times a jitter of
--   0.5-1.0, at the latest at the deadline (so the last attempt is made
--   then). The endpoint is failing since its first failure after a success;
--   failing for longer than disable_after_s disables it, with the reason.
-- Returns the delivery's state, when its next attempt is due (ms from now,
-- NULL unless pending) and whether this disabled the endpoint; no row when
-- the delivery was not pending (recorded meanwhile: by another process
-- after this one's lease ran out, or a retry by hand).
CREATE FUNCTION bd_webhook_done(del text, ok boolean, status int, error text, retry_base_ms int,
                                retry_for_s int, disable_after_s int)
RETURNS TABLE (state text, next_in_ms int, disabled boolean)
LANGUAGE plpgsql AS $$
DECLARE
  d bd_webhook_deliveries;
  e bd_webhook_endpoints;
  deadline timestamptz;
  next_at timestamptz;
  delay_ms float8;
  off boolean := false;
BEGIN
  SELECT * INTO d FROM bd_webhook_deliveries x WHERE x.id = del AND x.state = 'pending' FOR UPDATE;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  IF ok THEN
    UPDATE bd_webhook_deliveries x SET state = 'succeeded', attempts = x.attempts + 1, last_status = status,
           last_error = NULL, last_attempt_at = now(), delivered_at = now(), lease_until = NULL, locked_by = NULL
     WHERE x.id = del;
    UPDATE bd_webhook_endpoints x SET failing_since = NULL WHERE x.id = d.endpoint_id AND x.failing_since IS NOT NULL;
    RETURN QUERY SELECT 'succeeded'::text, NULL::int, false;
    RETURN;
  END IF;
  deadline := bd_webhook_deadline(d.retry_until, retry_for_s);
  IF now() >= deadline THEN
    UPDATE bd_webhook_deliveries x SET state = 'failed', attempts = x.attempts + 1, last_status = status,
           last_error = error, last_attempt_at = now(), lease_until = NULL, locked_by = NULL
     WHERE x.id = del;
  ELSE
    delay_ms := least(retry_base_ms::float8 * 2.0 ^ least(d.attempts, 40), 3600000.0) * (0.5 + random() / 2);
    next_at := least(now() + make_interval(secs => delay_ms / 1000.0), deadline);
    UPDATE bd_webhook_deliveries x SET attempts = x.attempts + 1, last_status = status, last_error = error,
           last_attempt_at = now(), next_attempt_at = next_at, lease_until = NULL, locked_by = NULL
     WHERE x.id = del;
  END IF;
  UPDATE bd_webhook_endpoints x SET failing_since = now() WHERE x.id = d.endpoint_id AND x.failing_since IS NULL;
  SELECT * INTO e FROM bd_webhook_endpoints x WHERE x.id = d.endpoint_id;
  IF e.is_active AND e.deleted_at IS NULL AND e.failing_since < now() - make_interval(secs => disable_after_s) THEN
    UPDATE bd_webhook_endpoints x SET is_active = false, updated_at = now(),
           disabled_reason = 'failing since ' || bd_iso(e.failing_since) || ': ' || coalesce(error, 'no answer')
     WHERE x.id = e.id AND x.is_active;
    off := FOUND;
  END IF;
  RETURN QUERY SELECT CASE WHEN next_at IS NULL THEN 'failed' ELSE 'pending' END,
                      CASE WHEN next_at IS NULL THEN NULL
                           ELSE greatest(0, ceil(extract(epoch FROM next_at - now()) * 1000))::int END,
                      off;
END $$;

-- bd_webhook_done for many attempts in one transaction (one commit, not one
-- per delivery: what bounds the delivery rate otherwise). ids[i], oks[i],
-- statuses[i], errors[i] are one attempt; returns (i, state, next_in_ms,
-- disabled) for each that was still pending. Taken in (endpoint, delivery)
-- order, as every process does, so that two batches touching the same
-- endpoints lock them in the same order (no deadlock).
CREATE FUNCTION bd_webhook_done_many(ids text[], oks boolean[], statuses int[], errors text[], retry_base_ms int,
                                     retry_for_s int, disable_after_s int)
RETURNS TABLE (i int, state text, next_in_ms int, disabled boolean)
LANGUAGE plpgsql AS $$
DECLARE
  k int;
BEGIN
  FOR k IN SELECT u.ord FROM unnest(ids) WITH ORDINALITY u(id, ord)
             JOIN bd_webhook_deliveries d ON d.id = u.id ORDER BY d.endpoint_id, d.id LOOP
    RETURN QUERY SELECT k, r.state, r.next_in_ms, r.disabled
                   FROM bd_webhook_done(ids[k], oks[k], statuses[k], errors[k], retry_base_ms, retry_for_s,
                                        disable_after_s) r;
  END LOOP;
END $$;

-- Every few seconds in every process: ends the pending deliveries no
-- endpoint will take (see the top; SKIP LOCKED: another process's sweep or
-- a claim may hold some), then reports the queue of the active endpoints:
-- pending deliveries, how many are due now, and the age in seconds of the
-- oldest pending one (0 when none).
CREATE FUNCTION bd_webhook_sweep(retry_for_s int)
RETURNS TABLE (depth bigint, due bigint, oldest_s float8)
LANGUAGE plpgsql AS $$
BEGIN
  WITH gone AS (
    SELECT d.id, e.deleted_at IS NOT NULL AS deleted FROM bd_webhook_endpoints e
      JOIN bd_webhook_deliveries d ON d.endpoint_id = e.id AND d.state = 'pending'
     WHERE (e.deleted_at IS NOT NULL OR NOT e.is_active)
       AND (d.lease_until IS NULL OR d.lease_until < now())
       AND (e.deleted_at IS NOT NULL OR now() >= bd_webhook_deadline(d.retry_until, retry_for_s))
     FOR UPDATE OF d SKIP LOCKED
  )
  UPDATE bd_webhook_deliveries x SET state = 'failed', lease_until = NULL, locked_by = NULL,
         last_error = CASE WHEN g.deleted THEN 'endpoint deleted'
                           ELSE 'endpoint disabled' || coalesce(' (last error: ' || x.last_error || ')', '') END
    FROM gone g WHERE x.id = g.id;
  RETURN QUERY
  SELECT count(*), count(*) FILTER (WHERE d.next_attempt_at <= now()),
         coalesce(extract(epoch FROM now() - min(d.created_at))::float8, 0)
    FROM bd_webhook_deliveries d JOIN bd_webhook_endpoints e ON e.id = d.endpoint_id
   WHERE d.state = 'pending' AND e.is_active AND e.deleted_at IS NULL;
END $$;
