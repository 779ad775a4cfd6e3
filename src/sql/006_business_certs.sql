-- 006_business_certs: rendered certificates of the /business surface:
-- artefacts and their hashes, the signed canonical record, revocation,
-- the public signing keys, and the functions of the cert.batch job and of
-- the certificate endpoints.

ALTER TABLE biz_certificates
  ADD COLUMN pdf_sha256  text,          -- hex SHA-256 of the PDF (set once, with the artefacts)
  ADD COLUMN png_sha256  text,
  ADD COLUMN record      text,          -- the canonical record (sign.h), exactly the signed bytes
  ADD COLUMN signature   text,          -- Ed25519 over record, base64
  ADD COLUMN key_id      text,          -- which key signed (biz_signing_keys)
  ADD COLUMN revoked_at  timestamptz;

-- Listing: newest batches first, rows in roster order, per institution.
CREATE INDEX biz_certificates_inst ON biz_certificates (institution_id, created_at DESC, batch_id, row_no);

-- Artefacts, written once per certificate in the same statement that marks
-- it generated, never updated: a certificate never changes once generated.
CREATE TABLE biz_certificate_files (
  certificate_id uuid  PRIMARY KEY,     -- biz_certificates.id
  pdf            bytea NOT NULL,
  png            bytea NOT NULL,
  qr_svg         text  NOT NULL
);

-- Every key that ever signed, so old certificates stay verifiable after
-- the key file changes (each process registers its key at start).
CREATE TABLE biz_signing_keys (
  key_id     text        PRIMARY KEY,  -- "ed25519:<16 hex>"
  public_key text        NOT NULL,     -- base64 (standard, padded) of the 32-byte key
  created_at timestamptz NOT NULL DEFAULT now()
);

-- The certificate object of the API.
CREATE FUNCTION biz_certificate_json(c biz_certificates, base_url text) RETURNS json
LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'id', c.id, 'reference_id', c.reference_id, 'batch_id', c.batch_id, 'name', c.name, 'email', c.email,
    'issue_date', to_char(c.issue_date, 'YYYY-MM-DD'), 'custom_data', c.custom_data, 'status', c.status,
    'error', c.error,
    'pdf_url', CASE WHEN c.record IS NOT NULL THEN base_url || '/business/certificates/' || c.id || '/pdf' END,
    'image_url', CASE WHEN c.record IS NOT NULL THEN base_url || '/business/certificates/' || c.id || '/png' END,
    'qrcode_url', CASE WHEN c.record IS NOT NULL THEN base_url || '/business/certificates/' || c.id || '/qrcode.svg' END,
    'verification_url', base_url || '/verify/' || c.reference_id,
    'generated_at', biz_ts(c.generated_at))
$$;

-- What a cert.batch job needs once: the batch, its template layout, the
-- institution, and the batch's signatories with their signature images
-- (hex). NULL when the batch does not exist.
CREATE FUNCTION biz_cert_job_context(bid uuid) RETURNS json LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'status', b.status, 'name', b.name, 'institution_id', b.institution_id, 'institution_name', i.name,
    'layout', t.layout,
    'signatories', (SELECT coalesce(json_agg(json_build_object(
                      'index', s.signatory_index,
                      'name', coalesce(s.display_name, u.signatory_name, u.first_name || ' ' || u.last_name),
                      'designation', coalesce(s.designation, u.signatory_designation),
                      'signature_hex', encode(u.signature_png, 'hex')) ORDER BY s.signatory_index), '[]')
                    FROM biz_batch_signatories s JOIN biz_users u ON u.id = s.user_id
                    WHERE s.batch_id = b.id))
  FROM biz_batches b JOIN biz_institutions i ON i.id = b.institution_id JOIN biz_templates t ON t.id = b.template_id
  WHERE b.id = bid
$$;

-- Claims the next chunk of a batch's certificates for rendering: pending
-- ones, and 'processing' ones a previous owner of the job left behind (only
-- one process owns a job at a time: its lease), after row `after_row` (the
-- job's cursor: a range scan of biz_certificates_batch from there, so a
-- claim costs the same at row 10 and at row 1,000,000; a new owner starts
-- from 0). Returns the rows to render.
CREATE FUNCTION biz_cert_claim(bid uuid, n int, after_row int)
RETURNS TABLE (id uuid, reference_id text, email text, name text, issue_date text, custom_data text, row_no int)
LANGUAGE sql AS $$
  -- "= ANY (ARRAY(...))", not a join: with n unknown the generic plan of a
  -- join hashes the whole table (measured 70 ms at 100k rows against 1 ms)
  UPDATE biz_certificates c SET status = 'processing'
  WHERE c.id = ANY (ARRAY(SELECT x.id FROM biz_certificates x
                          WHERE x.batch_id = bid AND x.row_no > after_row AND x.status IN ('pending', 'processing')
                          ORDER BY x.row_no LIMIT n))
  RETURNING c.id, c.reference_id, c.email, c.name, to_char(c.issue_date, 'YYYY-MM-DD'), c.custom_data::text, c.row_no
$$;

-- Records a rendered chunk: results = [{id, pdf (hex), png (hex), svg,
-- pdf_sha256, png_sha256, record, signature, key_id}] or [{id, error}].
-- Only certificates still pending/processing change (a stale owner's late
-- results are ignored: exactly one set of artefacts per certificate), and
-- the batch counters move by what actually changed.
CREATE FUNCTION biz_cert_record(bid uuid, results jsonb) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  ok int;
  bad int;
BEGIN
  WITH r AS (SELECT * FROM jsonb_to_recordset(results) AS x(id uuid, pdf text, png text, svg text, pdf_sha256 text,
                                                            png_sha256 text, record text, signature text,
                                                            key_id text, error text)),
  gen AS (
    UPDATE biz_certificates c SET status = 'generated', pdf_sha256 = r.pdf_sha256, png_sha256 = r.png_sha256,
           record = r.record, signature = r.signature, key_id = r.key_id, generated_at = now(), error = NULL
    FROM r WHERE c.id = r.id AND c.batch_id = bid AND r.error IS NULL AND c.status IN ('pending', 'processing')
    RETURNING c.id),
  files AS (
    INSERT INTO biz_certificate_files (certificate_id, pdf, png, qr_svg)
    SELECT r.id, decode(r.pdf, 'hex'), decode(r.png, 'hex'), r.svg FROM r JOIN gen ON gen.id = r.id
    ON CONFLICT DO NOTHING)
  SELECT count(*) INTO ok FROM gen;
  WITH r AS (SELECT * FROM jsonb_to_recordset(results) AS x(id uuid, error text)),
  f AS (
    UPDATE biz_certificates c SET status = 'failed', error = r.error
    FROM r WHERE c.id = r.id AND c.batch_id = bid AND r.error IS NOT NULL AND c.status IN ('pending', 'processing')
    RETURNING c.id)
  SELECT count(*) INTO bad FROM f;
  IF ok + bad > 0 THEN
    UPDATE biz_batches SET processed_certificates = processed_certificates + ok,
                           failed_certificates = failed_certificates + bad, updated_at = now()
    WHERE id = bid;
  END IF;
END $$;

-- Ends a batch once nothing is left to render.
CREATE FUNCTION biz_cert_finish(bid uuid) RETURNS void LANGUAGE sql AS $$
  UPDATE biz_batches SET
    status = CASE WHEN processed_certificates = 0 THEN 'failed'
                  WHEN failed_certificates > 0 THEN 'partially_completed' ELSE 'completed' END,
    completion_date = coalesce(completion_date, now()), updated_at = now()
  WHERE id = bid AND status = 'processing'
    AND NOT EXISTS (SELECT 1 FROM biz_certificates WHERE batch_id = bid AND status IN ('pending', 'processing'))
$$;

-- Fails every certificate left of a batch that cannot render at all (its
-- template layout is invalid), with the reason, then ends the batch.
CREATE FUNCTION biz_cert_fail_all(bid uuid, reason text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  bad int;
BEGIN
  WITH f AS (UPDATE biz_certificates SET status = 'failed', error = reason
             WHERE batch_id = bid AND status IN ('pending', 'processing') RETURNING 1)
  SELECT count(*) INTO bad FROM f;
  UPDATE biz_batches SET failed_certificates = failed_certificates + bad, updated_at = now() WHERE id = bid;
  PERFORM biz_cert_finish(bid);
END $$;

-- The public verification document of a reference id (NULL: unknown, or
-- never generated). The record is returned as the exact signed text too.
CREATE FUNCTION biz_verify_json(ref text, base_url text) RETURNS json LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'status', CASE WHEN c.status = 'revoked' THEN 'revoked' ELSE 'valid' END,
    'reference_id', c.reference_id,
    'recipient', json_build_object('name', c.name),
    'issue_date', to_char(c.issue_date, 'YYYY-MM-DD'),
    'institution', json_build_object('id', i.id, 'name', i.name),
    'signatories', c.record::json -> 'signatories',
    'pdf_sha256', c.pdf_sha256,
    'png_sha256', c.png_sha256,
    'generated_at', biz_ts(c.generated_at),
    'revoked_at', biz_ts(c.revoked_at),
    'verification_url', base_url || '/verify/' || c.reference_id,
    'signature', json_build_object('algorithm', 'Ed25519', 'key_id', c.key_id, 'value', c.signature,
                                   'record', c.record::json, 'canonical_record', c.record,
                                   'keys_url', base_url || '/.well-known/batchd-keys.json'))
  FROM biz_certificates c JOIN biz_institutions i ON i.id = c.institution_id
  WHERE c.reference_id = ref AND c.record IS NOT NULL
$$;
