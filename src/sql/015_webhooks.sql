-- 015_webhooks: signed webhooks for batch lifecycle events, shared by every
-- surface (core/webhooks.h delivers them).
--
-- Endpoints belong to one owner of one surface: a QR workspace and mode
-- (surface 'qr', owner = workspace id, mode live|test), a business
-- institution ('business', owner = institution id, mode NULL), a products
-- brand ('products', owner = brand uuid, mode NULL). Their secret is stored
-- sealed (crypto_secretbox with the key of BATCHD_WEBHOOK_KEY_FILE): the
-- server must sign with it, so it cannot be a hash.
--
-- Outbox: a surface calls bd_webhook_emit in the same transaction as the
-- state change that causes the event, so no committed change loses its
-- event and no rolled-back one sends one. Emit writes the event and one
-- delivery per subscribed endpoint, then NOTIFY bd_webhooks wakes the
-- delivery loop of every process (which also polls). Deliveries are claimed
-- like jobs (a lease; SKIP LOCKED), retried with backoff for 24 h; the event
-- id stays the same across retries so that receivers can deduplicate.

CREATE TABLE bd_webhook_endpoints (
  id              text        PRIMARY KEY,            -- wh_ + 24 base62
  surface         text        NOT NULL CHECK (surface IN ('qr', 'business', 'products')),
  owner           text        NOT NULL,
  mode            text,                               -- qr: live | test; else NULL
  url             text        NOT NULL,
  events          text[]      NOT NULL,               -- event types, or '*'
  description     text,
  secret_sealed   bytea       NOT NULL,               -- nonce || secretbox(the 32 key bytes of whsec_...)
  is_active       boolean     NOT NULL DEFAULT true,
  disabled_reason text,                               -- why the server disabled it (NULL: by its owner, or active)
  failing_since   timestamptz,                        -- first failed delivery since the last success
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  deleted_at      timestamptz                         -- deleted: no new deliveries, pending ones end
);
CREATE INDEX bd_webhook_endpoints_owner ON bd_webhook_endpoints (surface, owner, created_at DESC, id DESC)
  WHERE deleted_at IS NULL;

CREATE TABLE bd_webhook_events (
  id         text        PRIMARY KEY,                 -- evt_ + 32 hex
  surface    text        NOT NULL,
  owner      text        NOT NULL,
  mode       text,
  type       text        NOT NULL,
  data       jsonb       NOT NULL,                    -- the object as the surface's GET returns it
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE bd_webhook_deliveries (
  id              text        PRIMARY KEY,            -- whdel_ + 32 hex
  endpoint_id     text        NOT NULL REFERENCES bd_webhook_endpoints(id),
  event_id        text        NOT NULL REFERENCES bd_webhook_events(id),
  state           text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'succeeded', 'failed')),
  attempts        int         NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  retry_until     timestamptz NOT NULL DEFAULT now() + interval '24 hours', -- then failed
  lease_until     timestamptz,                        -- claimed by a process until then
  locked_by       text,
  last_status     int,                                -- the receiver's last HTTP status (NULL: no answer)
  last_error      text,
  last_attempt_at timestamptz,
  delivered_at    timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (endpoint_id, event_id)
);
CREATE INDEX bd_webhook_deliveries_due ON bd_webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX bd_webhook_deliveries_endpoint ON bd_webhook_deliveries (endpoint_id, created_at DESC, id DESC);

-- Records an event of (surface, owner, mode) and queues one delivery per
-- active endpoint subscribed to its type (or to '*'). Returns the event id.
CREATE FUNCTION bd_webhook_emit(surf text, own text, md text, typ text, payload jsonb) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  eid text := 'evt_' || replace(gen_random_uuid()::text, '-', '');
  n int;
BEGIN
  -- nothing subscribed: no rows at all (the common case costs one index probe)
  IF NOT EXISTS (SELECT 1 FROM bd_webhook_endpoints e WHERE e.surface = surf AND e.owner = own
                 AND e.mode IS NOT DISTINCT FROM md AND e.is_active AND e.deleted_at IS NULL
                 AND (typ = ANY (e.events) OR '*' = ANY (e.events))) THEN
    RETURN NULL;
  END IF;
  INSERT INTO bd_webhook_events (id, surface, owner, mode, type, data) VALUES (eid, surf, own, md, typ, payload);
  INSERT INTO bd_webhook_deliveries (id, endpoint_id, event_id)
    SELECT 'whdel_' || replace(gen_random_uuid()::text, '-', ''), e.id, eid FROM bd_webhook_endpoints e
    WHERE e.surface = surf AND e.owner = own AND e.mode IS NOT DISTINCT FROM md AND e.is_active
      AND e.deleted_at IS NULL AND (typ = ANY (e.events) OR '*' = ANY (e.events));
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n > 0 THEN
    PERFORM pg_notify('bd_webhooks', '');
  END IF;
  RETURN eid;
END $$;

CREATE FUNCTION bd_webhook_endpoint_json(e bd_webhook_endpoints) RETURNS jsonb STABLE LANGUAGE sql AS $$
  SELECT jsonb_build_object(
    'id', e.id, 'object', 'webhook_endpoint', 'url', e.url, 'events', to_jsonb(e.events),
    'description', e.description, 'is_active', e.is_active, 'disabled_reason', e.disabled_reason,
    'created_at', bd_iso(e.created_at), 'updated_at', bd_iso(e.updated_at))
$$;

CREATE FUNCTION bd_webhook_delivery_json(d bd_webhook_deliveries) RETURNS jsonb STABLE LANGUAGE sql AS $$
  SELECT jsonb_build_object(
    'id', d.id, 'object', 'webhook_delivery', 'endpoint_id', d.endpoint_id, 'event_id', d.event_id,
    'event_type', (SELECT v.type FROM bd_webhook_events v WHERE v.id = d.event_id),
    'status', d.state, 'attempts', d.attempts, 'response_status', d.last_status, 'error', d.last_error,
    'last_attempt_at', bd_iso(d.last_attempt_at), 'next_attempt_at',
    CASE WHEN d.state = 'pending' THEN bd_iso(d.next_attempt_at) END,
    'delivered_at', bd_iso(d.delivered_at), 'created_at', bd_iso(d.created_at))
$$;

-- A delivery sent again now (from the owner's retry call): failed or
-- succeeded ones become pending with the same event id. Returns its JSON or
-- NULL when (endpoint, delivery) is not there.
CREATE FUNCTION bd_webhook_retry(ep text, del text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  d bd_webhook_deliveries;
BEGIN
  UPDATE bd_webhook_deliveries SET state = 'pending', next_attempt_at = now(), lease_until = NULL,
         retry_until = now() + interval '24 hours'
   WHERE id = del AND endpoint_id = ep RETURNING * INTO d;
  IF d.id IS NULL THEN
    RETURN NULL;
  END IF;
  PERFORM pg_notify('bd_webhooks', '');
  RETURN bd_webhook_delivery_json(d);
END $$;
