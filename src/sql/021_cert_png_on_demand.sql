-- 021_cert_png_on_demand: a certificate's PNG is derived, rendered on its
-- first request (GET /business/certificates/{id}/png) and stored then, once;
-- issuance writes the PDF and the QR SVG only, and signs records of
-- version 2, which carry no png_sha256 (version 1 records, PNG included,
-- keep verifying as they were signed).
--
-- Storage: the PDF (deflated by cairo) and the PNG (deflated) are stored
-- uncompressed by PostgreSQL (STORAGE EXTERNAL, as qr_images.png): pglz
-- finds nothing left to gain in them and costs CPU on every write. The QR
-- SVG is text and keeps the default (compressed when large).

ALTER TABLE biz_certificate_files
  ALTER COLUMN png DROP NOT NULL,       -- NULL until first requested (version 2 records)
  ALTER COLUMN pdf SET STORAGE EXTERNAL,
  ALTER COLUMN png SET STORAGE EXTERNAL;

-- What GET .../png needs: the stored PNG, or (NULL png) what to render it
-- from: the batch's job context (layout, signatories, as when the PDF was
-- made), the row's values and the credential baked into the PNG. No row:
-- unknown, another institution's, or not generated.
CREATE FUNCTION biz_cert_png_source(cid uuid, inst bigint)
RETURNS TABLE (png bytea, reference_id text, source json) LANGUAGE sql STABLE AS $$
  SELECT f.png, c.reference_id,
         CASE WHEN f.png IS NULL THEN json_build_object(
           'batch', biz_cert_job_context(c.batch_id), 'batch_id', c.batch_id, 'name', c.name, 'email', c.email,
           'issue_date', to_char(c.issue_date, 'YYYY-MM-DD'), 'custom_data', c.custom_data,
           'credential', c.credential) END
  FROM biz_certificates c JOIN biz_certificate_files f ON f.certificate_id = c.id
  WHERE c.id = cid AND c.institution_id = inst
$$;

-- Stores a rendered PNG unless one is stored already (two first requests
-- at once, on two processes: the first to commit wins, and rendering is
-- deterministic, so both made the same bytes); returns the stored PNG.
-- png_sha256 of the certificate is then that PNG's hash (for version 2
-- records not part of what was signed).
CREATE FUNCTION biz_cert_store_png(cid uuid, img bytea) RETURNS bytea LANGUAGE plpgsql AS $$
DECLARE
  stored bytea;
BEGIN
  UPDATE biz_certificate_files SET png = img WHERE certificate_id = cid AND png IS NULL;
  IF FOUND THEN
    UPDATE biz_certificates SET png_sha256 = encode(sha256(img), 'hex') WHERE id = cid;
  END IF;
  SELECT f.png INTO stored FROM biz_certificate_files f WHERE f.certificate_id = cid;
  RETURN stored;
END $$;

-- The verification document says which version of the record was signed
-- (record_version: 1 signs png_sha256, 2 does not).
CREATE OR REPLACE FUNCTION biz_verify_json(ref text, base_url text) RETURNS json LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'status', CASE WHEN c.status = 'revoked' THEN 'revoked' ELSE 'valid' END,
    'reference_id', c.reference_id,
    'record_version', (c.record::json ->> 'v')::int,
    'recipient', json_build_object('name', c.name),
    'issue_date', to_char(c.issue_date, 'YYYY-MM-DD'),
    'institution', json_build_object('id', i.id, 'name', i.name),
    'signatories', c.record::json -> 'signatories',
    'pdf_sha256', c.pdf_sha256,
    'png_sha256', c.png_sha256,
    'generated_at', biz_ts(c.generated_at),
    'revoked_at', biz_ts(c.revoked_at),
    'verification_url', base_url || '/verify/' || c.reference_id,
    'credential_url', CASE WHEN c.credential IS NOT NULL THEN base_url || '/credentials/' || c.reference_id END,
    'signature', json_build_object('algorithm', 'Ed25519', 'key_id', c.key_id, 'value', c.signature,
                                   'record', c.record::json, 'canonical_record', c.record,
                                   'keys_url', base_url || '/.well-known/batchd-keys.json'))
  FROM biz_certificates c JOIN biz_institutions i ON i.id = c.institution_id
  WHERE c.reference_id = ref AND c.record IS NOT NULL
$$;
