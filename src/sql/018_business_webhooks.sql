-- 018_business_webhooks: the /business surface's webhook events (015's
-- outbox), emitted in the transaction of each state change. The payload is
-- the object as GET returns it (a batch as seen by no particular user:
-- requires_my_signature is false; a certificate).

CREATE FUNCTION biz_emit_batch(b biz_batches, typ text, base_url text) RETURNS void LANGUAGE sql AS $$
  SELECT bd_webhook_emit('business', b.institution_id::text, NULL, typ, biz_batch_json(b, NULL, base_url)::jsonb)
$$;

-- As 004's, and emits batch.waiting_for_approval, batch.processing or
-- batch.failed for the new batch.
CREATE OR REPLACE FUNCTION biz_create_batch(bid uuid, inst bigint, creator bigint, tpl uuid, bname text, total int,
                                            failed int, sigs jsonb, base_url text) RETURNS json LANGUAGE plpgsql AS $$
DECLARE
  b biz_batches;
  waiting boolean;
BEGIN
  SELECT EXISTS (SELECT 1 FROM jsonb_array_elements(sigs) s
                 WHERE (s->>'user_id')::bigint <> creator AND NOT (s->>'auto_approve')::boolean) INTO waiting;
  INSERT INTO biz_batches (id, institution_id, template_id, name, status, total_certificates, failed_certificates,
                           completion_date, created_by)
  VALUES (bid, inst, tpl, bname,
          CASE WHEN failed >= total THEN 'failed' WHEN waiting THEN 'waiting_for_approval' ELSE 'processing' END,
          total, failed, CASE WHEN failed >= total THEN now() END, creator)
  RETURNING * INTO b;
  INSERT INTO biz_batch_signatories (batch_id, signatory_index, user_id, display_name, designation, approved_at)
  SELECT bid, (s->>'index')::int, (s->>'user_id')::bigint, s->>'display_name', s->>'designation',
         CASE WHEN (s->>'user_id')::bigint = creator OR (s->>'auto_approve')::boolean THEN now() END
  FROM jsonb_array_elements(sigs) s;
  IF b.status = 'processing' THEN
    PERFORM biz_queue_batch(bid);
  END IF;
  PERFORM biz_emit_batch(b, 'batch.' || b.status, base_url);
  RETURN biz_batch_json(b, creator, base_url);
END $$;

-- As 004's, and emits batch.processing when the last approval starts it.
CREATE OR REPLACE FUNCTION biz_approve_batch(bid uuid, inst bigint, caller bigint, base_url text) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
  b biz_batches;
  s biz_batch_signatories;
BEGIN
  SELECT * INTO b FROM biz_batches WHERE id = bid AND institution_id = inst FOR UPDATE;
  IF NOT FOUND THEN RETURN json_build_object('error', 'not_found'); END IF;
  SELECT * INTO s FROM biz_batch_signatories WHERE batch_id = bid AND user_id = caller;
  IF NOT FOUND THEN RETURN json_build_object('error', 'not_signatory'); END IF;
  IF s.approved_at IS NOT NULL THEN RETURN json_build_object('error', 'already_approved'); END IF;
  IF b.status <> 'waiting_for_approval' THEN RETURN json_build_object('error', 'not_waiting'); END IF;
  UPDATE biz_batch_signatories SET approved_at = now() WHERE batch_id = bid AND user_id = caller;
  IF NOT EXISTS (SELECT 1 FROM biz_batch_signatories WHERE batch_id = bid AND approved_at IS NULL) THEN
    UPDATE biz_batches SET status = 'processing', updated_at = now() WHERE id = bid RETURNING * INTO b;
    PERFORM biz_queue_batch(bid);
    PERFORM biz_emit_batch(b, 'batch.processing', base_url);
  ELSE
    UPDATE biz_batches SET updated_at = now() WHERE id = bid RETURNING * INTO b;
  END IF;
  RETURN json_build_object('data', biz_batch_json(b, caller, base_url));
END $$;

-- Ends a batch once nothing is left to render (006's, with the event of
-- its end: batch.completed, batch.partially_completed or batch.failed).
CREATE FUNCTION biz_cert_finish(bid uuid, base_url text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  b biz_batches;
BEGIN
  UPDATE biz_batches SET
    status = CASE WHEN processed_certificates = 0 THEN 'failed'
                  WHEN failed_certificates > 0 THEN 'partially_completed' ELSE 'completed' END,
    completion_date = coalesce(completion_date, now()), updated_at = now()
  WHERE id = bid AND status = 'processing'
    AND NOT EXISTS (SELECT 1 FROM biz_certificates WHERE batch_id = bid AND status IN ('pending', 'processing'))
  RETURNING * INTO b;
  IF b.id IS NOT NULL THEN
    PERFORM biz_emit_batch(b, 'batch.' || b.status, base_url);
  END IF;
END $$;

CREATE FUNCTION biz_cert_fail_all(bid uuid, reason text, base_url text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  bad int;
BEGIN
  WITH f AS (UPDATE biz_certificates SET status = 'failed', error = reason
             WHERE batch_id = bid AND status IN ('pending', 'processing') RETURNING 1)
  SELECT count(*) INTO bad FROM f;
  UPDATE biz_batches SET failed_certificates = failed_certificates + bad, updated_at = now() WHERE id = bid;
  PERFORM biz_cert_finish(bid, base_url);
END $$;

-- Revokes a generated certificate of inst (idempotent); emits
-- certificate.revoked on the first revocation only. The certificate row
-- (NULL: not found or not revocable) and whether this call revoked it.
CREATE FUNCTION biz_revoke_certificate(cid uuid, inst bigint, base_url text)
RETURNS TABLE (cert json, status text, changed boolean) LANGUAGE plpgsql AS $$
DECLARE
  c biz_certificates;
  was text;
BEGIN
  SELECT x.status INTO was FROM biz_certificates x WHERE x.id = cid AND x.institution_id = inst FOR UPDATE;
  IF was IS NULL THEN
    RETURN;
  END IF;
  IF was NOT IN ('generated', 'revoked') THEN
    RETURN QUERY SELECT NULL::json, was, false;
    RETURN;
  END IF;
  UPDATE biz_certificates x SET status = 'revoked', revoked_at = coalesce(x.revoked_at, now())
   WHERE x.id = cid RETURNING * INTO c;
  IF was = 'generated' THEN
    PERFORM bd_webhook_emit('business', inst::text, NULL, 'certificate.revoked',
                            biz_certificate_json(c, base_url)::jsonb);
  END IF;
  RETURN QUERY SELECT biz_certificate_json(c, base_url), c.status, was = 'generated';
END $$;
