-- A retry by hand of a delivery that is in flight (pending, its lease held
-- by a process that is sending it now) changes nothing: clearing the lease
-- would let a second process claim and send the same event while the first
-- attempt is still on the wire, and the first attempt's outcome would then
-- be dropped. The answer is the delivery as it is (status pending); once
-- the attempt is recorded, a retry by hand works again.
CREATE OR REPLACE FUNCTION bd_webhook_retry(ep text, del text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  d bd_webhook_deliveries;
BEGIN
  SELECT * INTO d FROM bd_webhook_deliveries WHERE id = del AND endpoint_id = ep FOR UPDATE;
  IF d.id IS NULL THEN
    RETURN NULL;
  END IF;
  IF d.state = 'pending' AND d.lease_until IS NOT NULL AND d.lease_until >= now() THEN
    RETURN bd_webhook_delivery_json(d);
  END IF;
  UPDATE bd_webhook_deliveries SET state = 'pending', next_attempt_at = now(), lease_until = NULL,
         locked_by = NULL, retry_until = now() + interval '24 hours'
   WHERE id = d.id RETURNING * INTO d;
  PERFORM pg_notify('bd_webhooks', '');
  RETURN bd_webhook_delivery_json(d);
END $$;
