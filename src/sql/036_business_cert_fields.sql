-- The certificate and template objects as vec.digital documents them,
-- beside ours (issue 20).

-- customer_id: the integrator's own key for the recipient, from an optional
-- roster column CustomerId (kept in custom_data too, exactly as written; an
-- empty cell is NULL). Generated, so COPY needs no new column.
ALTER TABLE biz_certificates
  ADD COLUMN customer_id text GENERATED ALWAYS AS (nullif(custom_data ->> 'CustomerId', '')) STORED,
  ADD COLUMN updated_at timestamptz;  -- NULL until the row first changes after the upload
CREATE INDEX biz_certificates_customer ON biz_certificates (institution_id, customer_id, created_at DESC)
  WHERE customer_id IS NOT NULL;

-- updated_at follows every change of a certificate row, whichever function
-- makes it (rendering, revocation, e-mail), without each having to know.
-- An UPDATE that changes nothing (revoking twice) leaves it. The generated
-- column is left out of the comparison: a BEFORE trigger cannot see it.
CREATE FUNCTION biz_certificates_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF to_jsonb(NEW) - 'customer_id' - 'updated_at' IS DISTINCT FROM to_jsonb(OLD) - 'customer_id' - 'updated_at' THEN
    NEW.updated_at := now();
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER biz_certificates_touch BEFORE UPDATE ON biz_certificates
  FOR EACH ROW EXECUTE FUNCTION biz_certificates_touch();

-- The institution object embedded in the single template.
ALTER TABLE biz_institutions
  ADD COLUMN logo text,                                      -- a URL, or NULL
  ADD COLUMN is_verified boolean NOT NULL DEFAULT false,
  ADD COLUMN status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive'));

CREATE FUNCTION biz_institution_json(i biz_institutions) RETURNS json LANGUAGE sql STABLE AS $$
  SELECT json_build_object('id', i.id, 'name', i.name, 'logo', i.logo, 'is_verified', i.is_verified,
                           'status', i.status, 'created_at', biz_ts(i.created_at), 'updated_at', biz_ts(i.updated_at))
$$;

-- The certificate object gains pdf_path, image_path, qrcode_path,
-- barcode_path (paths on this server, served there), customer_id,
-- created_at and updated_at, after the fields it already has (the e-mail
-- fields of 030 included: migrations run in order).
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
    'email_status', c.email_status, 'emailed_at', biz_ts(c.emailed_at), 'email_error', c.email_error,
    'pdf_path', CASE WHEN c.record IS NOT NULL THEN '/business/certificates/' || c.id || '/pdf' END,
    'image_path', CASE WHEN c.record IS NOT NULL THEN '/business/certificates/' || c.id || '/png' END,
    'qrcode_path', CASE WHEN c.record IS NOT NULL THEN '/business/certificates/' || c.id || '/qrcode.svg' END,
    'barcode_path', CASE WHEN c.status <> 'failed' THEN '/business/certificates/' || c.id || '/barcode.svg' END,
    'customer_id', c.customer_id,
    'created_at', biz_ts(c.created_at),
    'updated_at', biz_ts(coalesce(c.updated_at, c.created_at)))
$$;
