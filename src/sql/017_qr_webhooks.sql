-- 017_qr_webhooks: the QR surface's webhooks (/v1/webhooks, qr_webhooks.c).
--
-- Endpoints are rows of bd_webhook_endpoints (015) with surface 'qr', owner
-- = the workspace id as text and mode = 'live' | 'test' of the key that
-- registered them: a test key's endpoints receive only test-mode events.
--
-- Events: a QR batch that reaches `completed` emits batch.completed, one that
-- reaches `failed` emits batch.failed, with data = the batch exactly as
-- GET /v1/batches/{id} returns it (qr_batch_json(b, true): the same fields,
-- items in request order, timestamps truncated to the second). Emitted by
-- the two constraint triggers below, in the transaction of the change, once
-- per batch: only on the transition (a batch is created `processing`, or
-- `failed` when every item was invalid, and leaves `processing` once). The
-- paths that finish a batch are qr_intake_batch (every item invalid),
-- qr_record_renders (the last chunk) and the job's final UPDATE for a batch
-- with nothing left to render (qr_batches.c); the triggers cover all three
-- and any later one.
--
-- The triggers are deferred to the end of the transaction: qr_intake_batch
-- inserts the batch before its failed items, and the event must carry them.
-- Their WHEN clauses keep the hot path free: a batch created `processing`
-- (every batch with a valid item) queues nothing, and the transition costs
-- one probe of bd_webhook_endpoints_owner when no endpoint is subscribed;
-- the batch's JSON (up to 1000 items) is built only for a subscriber.

CREATE FUNCTION qr_batch_webhook_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  typ text := 'batch.' || NEW.status;
  own text := NEW.workspace_id::text;
  b qr_batches;
BEGIN
  -- the same test as bd_webhook_emit's first one: nothing is built for no one
  IF NOT EXISTS (SELECT 1 FROM bd_webhook_endpoints e WHERE e.surface = 'qr' AND e.owner = own
                 AND e.mode = NEW.mode AND e.is_active AND e.deleted_at IS NULL
                 AND (typ = ANY (e.events) OR '*' = ANY (e.events))) THEN
    RETURN NULL;
  END IF;
  -- the row as it is when the transaction commits (as a GET right after sees it)
  SELECT * INTO b FROM qr_batches WHERE id = NEW.id;
  PERFORM bd_webhook_emit('qr', own, b.mode, typ, qr_batch_json(b, true));
  RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER qr_batches_webhook_created AFTER INSERT ON qr_batches
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
  WHEN (NEW.status IN ('completed', 'failed'))
  EXECUTE FUNCTION qr_batch_webhook_event();

CREATE CONSTRAINT TRIGGER qr_batches_webhook_finished AFTER UPDATE OF status ON qr_batches
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
  WHEN (OLD.status = 'processing' AND NEW.status IN ('completed', 'failed'))
  EXECUTE FUNCTION qr_batch_webhook_event();

-- Registers an endpoint of (workspace, mode) unless it already has lim
-- endpoints that are not deleted: NULL then. Serialised per (workspace,
-- mode) by a transaction lock, so concurrent creates cannot pass the limit.
CREATE FUNCTION qr_webhook_create(wid text, own text, md text, u text, evs text[], descr text, sealed bytea,
                                  lim int) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  e bd_webhook_endpoints;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended('bd_webhook_endpoints qr ' || own || ' ' || md, 0));
  IF (SELECT count(*) FROM bd_webhook_endpoints WHERE surface = 'qr' AND owner = own AND mode = md
      AND deleted_at IS NULL) >= lim THEN
    RETURN NULL;
  END IF;
  INSERT INTO bd_webhook_endpoints (id, surface, owner, mode, url, events, description, secret_sealed)
  VALUES (wid, 'qr', own, md, u, evs, descr, sealed) RETURNING * INTO e;
  RETURN bd_webhook_endpoint_json(e);
END $$;
