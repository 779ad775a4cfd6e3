-- 030_business_email: certificates e-mailed to their recipients (020's
-- outbox, kind 'business.certificate', ref = the certificate id).
--
-- A batch created with notify_recipients queues one message per
-- certificate in the transaction that marks it generated (a trigger on the
-- status change, whatever statement makes it). The sender's outcomes come
-- back through a trigger on bd_mail_messages: the certificate's
-- email_status (not_requested, queued, sent, failed), emailed_at and
-- email_error follow its current message (email_message_id), and the
-- batch's emailed_certificates / email_failed_certificates count its
-- certificates in sent / failed.

ALTER TABLE biz_batches
  ADD COLUMN notify_recipients         boolean NOT NULL DEFAULT false, -- e-mail each certificate when generated
  ADD COLUMN emailed_certificates      int     NOT NULL DEFAULT 0,     -- certificates in email_status sent
  ADD COLUMN email_failed_certificates int     NOT NULL DEFAULT 0;     -- ... in failed

ALTER TABLE biz_certificates
  ADD COLUMN email_status     text NOT NULL DEFAULT 'not_requested'
                              CHECK (email_status IN ('not_requested', 'queued', 'sent', 'failed')),
  ADD COLUMN emailed_at       timestamptz,  -- the server accepted the current message
  ADD COLUMN email_error      text,         -- why the current message failed (the server's reply)
  ADD COLUMN email_message_id text;         -- the current message (bd_mail_messages.id)

-- The template's e-mail: {"subject", "text", "html"} (each optional; NULL:
-- the defaults of business_email.c), with the layout's {{placeholders}}.
ALTER TABLE biz_templates ADD COLUMN email jsonb;

-- errors.csv reads rows that failed to render or to be e-mailed
CREATE INDEX biz_certificates_errors ON biz_certificates (batch_id, row_no)
  WHERE status = 'failed' OR email_status = 'failed';
-- the email_status filter of GET /business/certificates
CREATE INDEX biz_certificates_email ON biz_certificates (institution_id, email_status, created_at DESC)
  WHERE email_status <> 'not_requested';

-- Generated, in a batch that notifies: queue its message.
CREATE FUNCTION biz_cert_email_queue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.email_status = 'not_requested'
     AND EXISTS (SELECT 1 FROM biz_batches b WHERE b.id = NEW.batch_id AND b.notify_recipients) THEN
    NEW.email_message_id := bd_mail_queue('business', 'business.certificate', NEW.id::text, NEW.email);
    NEW.email_status := 'queued';
    NEW.email_error := NULL;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER biz_cert_email_queue BEFORE UPDATE OF status ON biz_certificates FOR EACH ROW
  WHEN (NEW.status = 'generated' AND OLD.status IS DISTINCT FROM 'generated')
  EXECUTE FUNCTION biz_cert_email_queue();

-- The sender recorded an outcome: the certificate follows its current message.
CREATE FUNCTION biz_cert_email_outcome() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE biz_certificates c SET email_status = NEW.state,
         emailed_at = CASE WHEN NEW.state = 'sent' THEN NEW.sent_at END,
         email_error = CASE WHEN NEW.state = 'failed' THEN coalesce(NEW.last_error, 'refused') END
   WHERE c.id = NEW.ref::uuid AND c.email_message_id = NEW.id;
  RETURN NULL;
END $$;
CREATE TRIGGER biz_cert_email_outcome AFTER UPDATE OF state ON bd_mail_messages FOR EACH ROW
  WHEN (NEW.kind = 'business.certificate' AND NEW.state IS DISTINCT FROM OLD.state AND NEW.state <> 'pending')
  EXECUTE FUNCTION biz_cert_email_outcome();

-- The batch counters follow the certificates' email_status.
CREATE FUNCTION biz_cert_email_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE biz_batches b SET
    emailed_certificates = b.emailed_certificates + (NEW.email_status = 'sent')::int - (OLD.email_status = 'sent')::int,
    email_failed_certificates = b.email_failed_certificates + (NEW.email_status = 'failed')::int
                                - (OLD.email_status = 'failed')::int
   WHERE b.id = NEW.batch_id;
  RETURN NULL;
END $$;
CREATE TRIGGER biz_cert_email_count AFTER UPDATE OF email_status ON biz_certificates FOR EACH ROW
  WHEN (OLD.email_status IS DISTINCT FROM NEW.email_status
        AND (OLD.email_status IN ('sent', 'failed') OR NEW.email_status IN ('sent', 'failed')))
  EXECUTE FUNCTION biz_cert_email_count();

-- What the composer needs for message `mid` of certificate cid: the
-- certificate, its batch's and institution's names, the template's e-mail
-- block, and the PDF (NULL: not there). No row: the certificate is gone.
CREATE FUNCTION biz_email_context(cid uuid, mid text) RETURNS TABLE (ctx json, pdf bytea) LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'status', c.status, 'current', c.email_message_id IS NOT DISTINCT FROM mid, 'name', c.name, 'email', c.email,
    'reference_id', c.reference_id, 'issue_date', to_char(c.issue_date, 'YYYY-MM-DD'), 'custom_data', c.custom_data,
    'institution_name', i.name, 'batch_name', b.name, 'template_email', t.email), f.pdf
  FROM biz_certificates c JOIN biz_batches b ON b.id = c.batch_id JOIN biz_institutions i ON i.id = c.institution_id
  JOIN biz_templates t ON t.id = b.template_id LEFT JOIN biz_certificate_files f ON f.certificate_id = c.id
  WHERE c.id = cid
$$;

-- POST /business/certificates/{id}/resend: a generated certificate of inst
-- gets a new message (its last one was sent or failed, or there was none);
-- one still queued is made due now instead (no second copy). The
-- certificate (NULL: not generated, with its status, or 'unconfigured' when
-- this process sends no e-mail: `enabled` false); no row: not found.
CREATE FUNCTION biz_resend_certificate(cid uuid, inst bigint, base_url text, enabled boolean)
RETURNS TABLE (cert json, status text) LANGUAGE plpgsql AS $$
DECLARE
  c biz_certificates;
BEGIN
  SELECT * INTO c FROM biz_certificates x WHERE x.id = cid AND x.institution_id = inst FOR UPDATE;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  IF c.status <> 'generated' OR NOT enabled THEN
    RETURN QUERY SELECT NULL::json, CASE WHEN enabled THEN c.status ELSE 'unconfigured' END;
    RETURN;
  END IF;
  IF c.email_status = 'queued' THEN
    UPDATE bd_mail_messages m SET next_attempt_at = now()
     WHERE m.id = c.email_message_id AND m.state = 'pending' AND m.next_attempt_at > now();
    PERFORM pg_notify('bd_mail', '');
  ELSE
    UPDATE biz_certificates x SET email_status = 'queued', emailed_at = NULL, email_error = NULL,
           email_message_id = bd_mail_queue('business', 'business.certificate', x.id::text, x.email)
     WHERE x.id = cid RETURNING * INTO c;
  END IF;
  RETURN QUERY SELECT biz_certificate_json(c, base_url), c.status;
END $$;

-- The certificate object (014's) gains email_status, emailed_at, email_error.
CREATE OR REPLACE FUNCTION biz_certificate_json(c biz_certificates, base_url text) RETURNS json
LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'id', c.id, 'reference_id', c.reference_id, 'batch_id', c.batch_id, 'name', c.name, 'email', c.email,
    'issue_date', to_char(c.issue_date, 'YYYY-MM-DD'), 'custom_data', c.custom_data, 'status', c.status,
    'error', c.error,
    'pdf_url', CASE WHEN c.record IS NOT NULL THEN base_url || '/business/certificates/' || c.id || '/pdf' END,
    'image_url', CASE WHEN c.record IS NOT NULL THEN base_url || '/business/certificates/' || c.id || '/png' END,
    'qrcode_url', CASE WHEN c.record IS NOT NULL THEN base_url || '/business/certificates/' || c.id || '/qrcode.svg' END,
    'credential_url', CASE WHEN c.credential IS NOT NULL THEN base_url || '/credentials/' || c.reference_id END,
    'verification_url', base_url || '/verify/' || c.reference_id,
    'generated_at', biz_ts(c.generated_at),
    'email_status', c.email_status, 'emailed_at', biz_ts(c.emailed_at), 'email_error', c.email_error)
$$;

-- The batch object (004's) gains notify_recipients, emailed_certificates
-- and email_failed_certificates.
CREATE OR REPLACE FUNCTION biz_batch_json(b biz_batches, caller bigint, base_url text) RETURNS json
LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'id', b.id, 'name', b.name, 'status', b.status, 'template_id', b.template_id,
    'total_certificates', b.total_certificates, 'processed_certificates', b.processed_certificates,
    'failed_certificates', b.failed_certificates, 'progress', b.progress,
    'completion_date', biz_ts(b.completion_date),
    'created_at', biz_ts(b.created_at), 'updated_at', biz_ts(b.updated_at),
    'template', (SELECT biz_template_json(t, base_url, false) FROM biz_templates t WHERE t.id = b.template_id),
    'requires_signatures', EXISTS (SELECT 1 FROM biz_batch_signatories s WHERE s.batch_id = b.id),
    'requires_my_signature', EXISTS (SELECT 1 FROM biz_batch_signatories s
                                     WHERE s.batch_id = b.id AND s.user_id = caller AND s.approved_at IS NULL),
    'notify_recipients', b.notify_recipients, 'emailed_certificates', b.emailed_certificates,
    'email_failed_certificates', b.email_failed_certificates)
$$;

-- 018's, with notify_recipients set on the new batch (before its event).
CREATE FUNCTION biz_create_batch(bid uuid, inst bigint, creator bigint, tpl uuid, bname text, total int,
                                 failed int, sigs jsonb, base_url text, notify boolean) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
  b biz_batches;
  waiting boolean;
BEGIN
  SELECT EXISTS (SELECT 1 FROM jsonb_array_elements(sigs) s
                 WHERE (s->>'user_id')::bigint <> creator AND NOT (s->>'auto_approve')::boolean) INTO waiting;
  INSERT INTO biz_batches (id, institution_id, template_id, name, status, total_certificates, failed_certificates,
                           completion_date, created_by, notify_recipients)
  VALUES (bid, inst, tpl, bname,
          CASE WHEN failed >= total THEN 'failed' WHEN waiting THEN 'waiting_for_approval' ELSE 'processing' END,
          total, failed, CASE WHEN failed >= total THEN now() END, creator, notify)
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

-- The single template object (004's, with its layout) gains email (NULL: the
-- defaults); the list's object stays the seed's.
CREATE OR REPLACE FUNCTION biz_template_json(t biz_templates, base_url text, with_layout boolean) RETURNS json
LANGUAGE sql STABLE AS $$
  WITH d AS (
    SELECT json_agg(json_build_object(
             'id', ds.id, 'signatory_index', ds.signatory_index, 'institution_user_id', ds.institution_user_id,
             'display_name', ds.display_name, 'designation', ds.designation, 'auto_approve', ds.auto_approve,
             'user', json_build_object('id', u.id, 'uuid', u.uuid, 'first_name', u.first_name,
                                       'last_name', u.last_name, 'email', u.email,
                                       'signatory_name', u.signatory_name,
                                       'signatory_designation', u.signatory_designation))
             ORDER BY ds.signatory_index) AS arr
    FROM biz_default_signatories ds JOIN biz_users u ON u.id = ds.institution_user_id
    WHERE ds.template_id = t.id
  )
  SELECT CASE WHEN with_layout THEN
    json_build_object(
      'id', t.id, 'institution_id', t.institution_id, 'name', t.name,
      'screenshot', base_url || '/business/certificate-templates/' || t.id || '/screenshot.png',
      'has_signatures', cardinality(t.signatory_fields) > 0,
      'has_default_signatories', d.arr IS NOT NULL,
      'requires_signature_setup', cardinality(t.signatory_fields) > 0 AND d.arr IS NULL,
      'signatory_fields', to_json(t.signatory_fields),
      'default_signatories', d.arr,
      'created_at', biz_ts(t.created_at), 'updated_at', biz_ts(t.updated_at),
      'email', t.email, 'layout', t.layout)
  ELSE
    json_build_object(
      'id', t.id, 'institution_id', t.institution_id, 'name', t.name,
      'screenshot', base_url || '/business/certificate-templates/' || t.id || '/screenshot.png',
      'has_signatures', cardinality(t.signatory_fields) > 0,
      'has_default_signatories', d.arr IS NOT NULL,
      'requires_signature_setup', cardinality(t.signatory_fields) > 0 AND d.arr IS NULL,
      'signatory_fields', to_json(t.signatory_fields),
      'default_signatories', d.arr,
      'created_at', biz_ts(t.created_at), 'updated_at', biz_ts(t.updated_at))
  END
  FROM d
$$;
