-- 014_credentials_vc: every generated certificate is also a W3C Verifiable
-- Credential 2.0 / Open Badges 3.0 OpenBadgeCredential (credential.h), and
-- revocation is published as Bitstring Status Lists.
--
-- Status entries: each certificate gets a per-institution ordinal when it
-- is first claimed for rendering (biz_cert_claim, from the institution's
-- counter status_next), so a re-render after a takeover reuses it. Ordinal
-- k is entry (k mod 131072) * 40503 mod 131072 of list k / 131072: the
-- multiplier is odd, so this is a permutation of the list's entries, and
-- neighbouring certificates do not sit on neighbouring bits.

ALTER TABLE biz_institutions ADD COLUMN status_next bigint NOT NULL DEFAULT 0;

ALTER TABLE biz_certificates
  ADD COLUMN status_ordinal bigint,     -- this certificate's status entry (see above)
  ADD COLUMN credential     text;       -- the signed OpenBadgeCredential, as served

-- The revoked entries of one list (few rows: a partial index).
CREATE INDEX biz_certificates_revoked ON biz_certificates (institution_id, status_ordinal) WHERE status = 'revoked';

CREATE FUNCTION biz_status_list(o bigint) RETURNS int IMMUTABLE LANGUAGE sql AS $$ SELECT (o / 131072)::int $$;
CREATE FUNCTION biz_status_index(o bigint) RETURNS int IMMUTABLE LANGUAGE sql AS $$
  SELECT ((o % 131072) * 40503 % 131072)::int
$$;

-- The job context gains what the credential names: the template (the
-- achievement) and the batch's creation time (the proof's `created`, fixed
-- so that a re-render signs the same bytes).
CREATE OR REPLACE FUNCTION biz_cert_job_context(bid uuid) RETURNS json LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'status', b.status, 'name', b.name, 'institution_id', b.institution_id, 'institution_name', i.name,
    'layout', t.layout, 'template_id', t.id, 'template_name', t.name,
    'created_at', to_char(date_trunc('second', b.created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
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

-- As 006's, and returns each row's status ordinal, assigned on first claim.
DROP FUNCTION biz_cert_claim(uuid, int, int);
CREATE FUNCTION biz_cert_claim(bid uuid, n int, after_row int)
RETURNS TABLE (id uuid, reference_id text, email text, name text, issue_date text, custom_data text, row_no int,
               status_ordinal bigint)
LANGUAGE plpgsql AS $$
DECLARE
  ids uuid[];
  need int;
  base bigint;
BEGIN
  ids := ARRAY(SELECT x.id FROM biz_certificates x
               WHERE x.batch_id = bid AND x.row_no > after_row AND x.status IN ('pending', 'processing')
               ORDER BY x.row_no LIMIT n);
  SELECT count(*) INTO need FROM biz_certificates x WHERE x.id = ANY (ids) AND x.status_ordinal IS NULL;
  IF need > 0 THEN
    UPDATE biz_institutions i SET status_next = i.status_next + need
      FROM biz_batches b WHERE b.id = bid AND i.id = b.institution_id
      RETURNING i.status_next - need INTO base;
    UPDATE biz_certificates c SET status_ordinal = base + o.k - 1
      FROM (SELECT x.id, row_number() OVER (ORDER BY x.row_no) AS k FROM biz_certificates x
            WHERE x.id = ANY (ids) AND x.status_ordinal IS NULL) o
      WHERE c.id = o.id;
  END IF;
  RETURN QUERY
    UPDATE biz_certificates c SET status = 'processing' WHERE c.id = ANY (ids)
    RETURNING c.id, c.reference_id, c.email, c.name, to_char(c.issue_date, 'YYYY-MM-DD'), c.custom_data::text,
              c.row_no, c.status_ordinal;
END $$;

-- As 006's, and stores the credential.
CREATE OR REPLACE FUNCTION biz_cert_record(bid uuid, results jsonb) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  ok int;
  bad int;
BEGIN
  WITH r AS (SELECT * FROM jsonb_to_recordset(results) AS x(id uuid, pdf text, png text, svg text, pdf_sha256 text,
                                                            png_sha256 text, record text, signature text,
                                                            key_id text, credential text, error text)),
  gen AS (
    UPDATE biz_certificates c SET status = 'generated', pdf_sha256 = r.pdf_sha256, png_sha256 = r.png_sha256,
           record = r.record, signature = r.signature, key_id = r.key_id, credential = r.credential,
           generated_at = now(), error = NULL
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

-- The certificate object gains credential_url.
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
    'generated_at', biz_ts(c.generated_at))
$$;

-- The verification document gains the credential's URL.
CREATE OR REPLACE FUNCTION biz_verify_json(ref text, base_url text) RETURNS json LANGUAGE sql STABLE AS $$
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
    'credential_url', CASE WHEN c.credential IS NOT NULL THEN base_url || '/credentials/' || c.reference_id END,
    'signature', json_build_object('algorithm', 'Ed25519', 'key_id', c.key_id, 'value', c.signature,
                                   'record', c.record::json, 'canonical_record', c.record,
                                   'keys_url', base_url || '/.well-known/batchd-keys.json'))
  FROM biz_certificates c JOIN biz_institutions i ON i.id = c.institution_id
  WHERE c.reference_id = ref AND c.record IS NOT NULL
$$;
