-- 004_business: the /business surface (vec.digital business API):
-- institutions, their users and API tokens, certificate templates with
-- default signatories, batches with their signatories, and certificates.
--
-- Response bodies are built here (biz_*_json) with json_build_object, which
-- keeps key order (jsonb would sort the keys), so a read is one round trip
-- whose text is sent as it is.
--
-- biz_certificates is written with COPY while a roster upload is still
-- arriving (up to 1,000,000 rows per batch). It is kept lean on purpose:
-- no foreign keys (an RI check per row would cost more than the row), no
-- per-row defaults the server can compute itself (id, reference_id), and
-- only the indexes the queries need. Its batch_id and institution_id are
-- written in the same transaction as the batch row, which is never deleted.

CREATE TABLE biz_institutions (
  id         bigserial   PRIMARY KEY,
  tenant_id  bigint      NOT NULL UNIQUE REFERENCES bd_tenants(id),
  name       text        NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE biz_users (
  id                    bigserial   PRIMARY KEY,
  uuid                  uuid        NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  institution_id        bigint      NOT NULL REFERENCES biz_institutions(id),
  first_name            text        NOT NULL,
  last_name             text        NOT NULL,
  email                 text        NOT NULL,
  signature_png         bytea,                 -- the uploaded signature image (PNG); NULL = none
  archived              boolean     NOT NULL DEFAULT false,
  signatory_name        text,                  -- printed under the signature
  signatory_designation text,
  auto_approve          boolean     NOT NULL DEFAULT false, -- their approval is implied
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now(),
  UNIQUE (institution_id, email)
);

-- API tokens "biz_<id>_<secret>" (see auth.h): only SHA-256(secret) is kept.
CREATE TABLE biz_tokens (
  id          text        PRIMARY KEY,         -- public lookup part
  user_id     bigint      NOT NULL REFERENCES biz_users(id),
  permissions text[]      NOT NULL,            -- batches:view, batches:create, ...
  secret_hash text        NOT NULL,
  name        text        NOT NULL DEFAULT '',
  revoked_at  timestamptz,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX biz_tokens_user ON biz_tokens (user_id);

CREATE TABLE biz_templates (
  id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  institution_id   bigint      NOT NULL REFERENCES biz_institutions(id),
  name             text        NOT NULL,
  layout           jsonb       NOT NULL,       -- the layout document (see README)
  signatory_fields text[]      NOT NULL DEFAULT '{}', -- signatory_1..N, from the layout
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX biz_templates_inst ON biz_templates (institution_id, created_at, id);

CREATE TABLE biz_default_signatories (
  id                  bigserial PRIMARY KEY,
  template_id         uuid      NOT NULL REFERENCES biz_templates(id),
  signatory_index     int       NOT NULL CHECK (signatory_index >= 1),
  institution_user_id bigint    NOT NULL REFERENCES biz_users(id),
  display_name        text,
  designation         text,
  auto_approve        boolean   NOT NULL DEFAULT false,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  UNIQUE (template_id, signatory_index)
);

CREATE TABLE biz_batches (
  id                     uuid        PRIMARY KEY,
  institution_id         bigint      NOT NULL REFERENCES biz_institutions(id),
  template_id            uuid        NOT NULL REFERENCES biz_templates(id),
  name                   text        NOT NULL,
  status                 text        NOT NULL CHECK (status IN ('pending', 'waiting_for_approval', 'processing',
                                                               'completed', 'partially_completed', 'failed')),
  total_certificates     int         NOT NULL DEFAULT 0,
  processed_certificates int         NOT NULL DEFAULT 0, -- generated
  failed_certificates    int         NOT NULL DEFAULT 0, -- row-level failures + render failures
  progress               float8      GENERATED ALWAYS AS (
                           CASE WHEN total_certificates = 0 THEN 0
                           ELSE round(100.0 * (processed_certificates + failed_certificates) / total_certificates, 2)
                           END) STORED,
  completion_date        timestamptz,
  created_by             bigint      NOT NULL REFERENCES biz_users(id),
  created_at             timestamptz NOT NULL DEFAULT now(),
  updated_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX biz_batches_inst ON biz_batches (institution_id, created_at DESC, id DESC);

CREATE TABLE biz_batch_signatories (
  batch_id        uuid        NOT NULL REFERENCES biz_batches(id),
  signatory_index int         NOT NULL,
  user_id         bigint      NOT NULL REFERENCES biz_users(id),
  display_name    text,                        -- name printed (default signatory's, else the user's)
  designation     text,
  approved_at     timestamptz,                 -- NULL: has not approved yet
  PRIMARY KEY (batch_id, signatory_index),
  UNIQUE (batch_id, user_id)
);

CREATE TABLE biz_certificates (
  id             uuid        NOT NULL,         -- UUID v7 made by the server (index locality)
  batch_id       uuid        NOT NULL,
  institution_id bigint      NOT NULL,
  row_no         int         NOT NULL,         -- 1-based data row of the roster
  reference_id   text        NOT NULL,         -- short public id: /verify/{reference_id}
  email          text        NOT NULL,
  name           text        NOT NULL,
  issue_date     date,                         -- NULL only for a row that failed on its date
  custom_data    jsonb       NOT NULL DEFAULT '{}',
  status         text        NOT NULL CHECK (status IN ('pending', 'processing', 'generated', 'failed', 'revoked')),
  error          text,
  generated_at   timestamptz,
  created_at     timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE biz_certificates ADD PRIMARY KEY (id);
CREATE UNIQUE INDEX biz_certificates_ref ON biz_certificates (reference_id);
CREATE UNIQUE INDEX biz_certificates_batch ON biz_certificates (batch_id, row_no);
-- errors.csv reads only failed rows; few, and set once at upload
CREATE INDEX biz_certificates_failed ON biz_certificates (batch_id, row_no) WHERE status = 'failed';

-- Timestamps as the API writes them: 2025-03-14T13:04:03.000000Z
CREATE FUNCTION biz_ts(t timestamptz) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- Token lookup for authentication: the token, its user and institution.
-- Archived users and revoked tokens do not authenticate.
CREATE FUNCTION biz_token_lookup(tid text)
RETURNS TABLE (secret_hash text, permissions text[], user_id bigint, user_uuid uuid, institution_id bigint,
               institution_name text)
LANGUAGE sql STABLE AS $$
  SELECT t.secret_hash, t.permissions, u.id, u.uuid, u.institution_id, i.name
  FROM biz_tokens t JOIN biz_users u ON u.id = t.user_id JOIN biz_institutions i ON i.id = u.institution_id
  WHERE t.id = tid AND t.revoked_at IS NULL AND NOT u.archived
$$;

-- The template object of the API (the seed's nested `template`).
-- screenshot: base URL + /business/certificate-templates/{id}/screenshot.png
CREATE FUNCTION biz_template_json(t biz_templates, base_url text, with_layout boolean) RETURNS json
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
      'layout', t.layout)
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

-- The batch object of the API (the seed's `data`), as seen by `caller`:
-- requires_my_signature is true while the caller is one of its signatories
-- and has not approved.
CREATE FUNCTION biz_batch_json(b biz_batches, caller bigint, base_url text) RETURNS json
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
                                     WHERE s.batch_id = b.id AND s.user_id = caller AND s.approved_at IS NULL))
$$;

-- seed-demo: one institution per tenant with an admin (every permission),
-- two signatories (one auto-approving), an archived and an unsigned user,
-- a view-only token and three templates. Idempotent by tenant: users are
-- keyed by e-mail, templates by name; the tenant's demo tokens are replaced
-- by the ones given (tokens = {"admin": [id, hash], "sig1", "sig2", "view"}).
CREATE FUNCTION biz_seed_demo(tenant bigint, tenant_name text, tokens jsonb, layout_plain jsonb, layout_sig jsonb,
                              fields_plain text[], fields_sig text[],
                              png_admin bytea, png_sig1 bytea, png_sig2 bytea, png_archived bytea)
RETURNS json LANGUAGE plpgsql AS $$
DECLARE
  inst bigint;
  u_admin biz_users; u_sig1 biz_users; u_sig2 biz_users; u_arch biz_users; u_unsigned biz_users;
  t_plain uuid; t_two uuid; t_def uuid;
  all_perms constant text[] := '{batches:view,batches:create,batches:approve,templates:view,templates:manage,certificates:view,certificates:manage}';
  sig_perms constant text[] := '{batches:view,batches:create,batches:approve,templates:view,certificates:view}';
BEGIN
  INSERT INTO biz_institutions (tenant_id, name) VALUES (tenant, initcap(tenant_name) || ' Institute')
    ON CONFLICT (tenant_id) DO UPDATE SET updated_at = now() RETURNING id INTO inst;

  INSERT INTO biz_users (institution_id, first_name, last_name, email, signature_png, signatory_name,
                         signatory_designation, auto_approve, archived)
  VALUES (inst, 'Ada', 'Admin', 'admin@' || tenant_name || '.example', png_admin, 'Ada Admin', 'Administrator', false, false)
  ON CONFLICT (institution_id, email) DO UPDATE SET signature_png = EXCLUDED.signature_png, archived = false
  RETURNING * INTO u_admin;
  INSERT INTO biz_users (institution_id, first_name, last_name, email, signature_png, signatory_name,
                         signatory_designation, auto_approve, archived)
  VALUES (inst, 'Sam', 'Signer', 'dean@' || tenant_name || '.example', png_sig1, 'Prof. Sam Signer', 'Dean', true, false)
  ON CONFLICT (institution_id, email) DO UPDATE SET signature_png = EXCLUDED.signature_png, auto_approve = true, archived = false
  RETURNING * INTO u_sig1;
  INSERT INTO biz_users (institution_id, first_name, last_name, email, signature_png, signatory_name,
                         signatory_designation, auto_approve, archived)
  VALUES (inst, 'Rita', 'Registrar', 'registrar@' || tenant_name || '.example', png_sig2, 'Dr. Rita Registrar', 'Registrar', false, false)
  ON CONFLICT (institution_id, email) DO UPDATE SET signature_png = EXCLUDED.signature_png, auto_approve = false, archived = false
  RETURNING * INTO u_sig2;
  INSERT INTO biz_users (institution_id, first_name, last_name, email, signature_png, signatory_name,
                         signatory_designation, auto_approve, archived)
  VALUES (inst, 'Otto', 'Oldhand', 'former@' || tenant_name || '.example', png_archived, 'Otto Oldhand', 'Former Dean', false, true)
  ON CONFLICT (institution_id, email) DO UPDATE SET archived = true
  RETURNING * INTO u_arch;
  INSERT INTO biz_users (institution_id, first_name, last_name, email, signature_png, signatory_name,
                         signatory_designation, auto_approve, archived)
  VALUES (inst, 'Nina', 'Nosig', 'clerk@' || tenant_name || '.example', NULL, 'Nina Nosig', 'Clerk', false, false)
  ON CONFLICT (institution_id, email) DO UPDATE SET signature_png = NULL, archived = false
  RETURNING * INTO u_unsigned;

  UPDATE biz_tokens SET revoked_at = now()
   WHERE name = 'demo' AND revoked_at IS NULL
     AND user_id IN (SELECT id FROM biz_users WHERE institution_id = inst);
  INSERT INTO biz_tokens (id, user_id, permissions, secret_hash, name) VALUES
    (tokens->'admin'->>0, u_admin.id, all_perms, tokens->'admin'->>1, 'demo'),
    (tokens->'sig1'->>0, u_sig1.id, sig_perms, tokens->'sig1'->>1, 'demo'),
    (tokens->'sig2'->>0, u_sig2.id, sig_perms, tokens->'sig2'->>1, 'demo'),
    (tokens->'view'->>0, u_admin.id, '{batches:view}', tokens->'view'->>1, 'demo');

  SELECT id INTO t_plain FROM biz_templates WHERE institution_id = inst AND name = 'Demo plain' ORDER BY created_at LIMIT 1;
  IF t_plain IS NOT NULL THEN
    UPDATE biz_templates SET layout = layout_plain, signatory_fields = fields_plain WHERE id = t_plain;
  ELSE
    INSERT INTO biz_templates (institution_id, name, layout, signatory_fields)
      VALUES (inst, 'Demo plain', layout_plain, fields_plain) RETURNING id INTO t_plain;
  END IF;
  SELECT id INTO t_two FROM biz_templates WHERE institution_id = inst AND name = 'Demo two signatories' ORDER BY created_at LIMIT 1;
  IF t_two IS NOT NULL THEN
    UPDATE biz_templates SET layout = layout_sig, signatory_fields = fields_sig WHERE id = t_two;
  ELSE
    INSERT INTO biz_templates (institution_id, name, layout, signatory_fields)
      VALUES (inst, 'Demo two signatories', layout_sig, fields_sig) RETURNING id INTO t_two;
  END IF;
  SELECT id INTO t_def FROM biz_templates WHERE institution_id = inst AND name = 'Demo default signatories' ORDER BY created_at LIMIT 1;
  IF t_def IS NOT NULL THEN
    UPDATE biz_templates SET layout = layout_sig, signatory_fields = fields_sig WHERE id = t_def;
  ELSE
    INSERT INTO biz_templates (institution_id, name, layout, signatory_fields)
      VALUES (inst, 'Demo default signatories', layout_sig, fields_sig) RETURNING id INTO t_def;
    INSERT INTO biz_default_signatories (template_id, signatory_index, institution_user_id, display_name, designation, auto_approve)
      VALUES (t_def, 1, u_sig1.id, u_sig1.signatory_name, u_sig1.signatory_designation, true),
             (t_def, 2, u_sig2.id, u_sig2.signatory_name, u_sig2.signatory_designation, false);
  END IF;

  RETURN json_build_object(
    'institution_id', inst, 'user_uuid', u_admin.uuid,
    'signatories', json_build_array(json_build_object('user_uuid', u_sig1.uuid, 'auto_approve', true),
                                    json_build_object('user_uuid', u_sig2.uuid, 'auto_approve', false)),
    'archived_user_uuid', u_arch.uuid, 'unsigned_user_uuid', u_unsigned.uuid,
    'template_ids', json_build_object('plain', t_plain, 'two_signatories', t_two, 'default_signatories', t_def));
END $$;

-- What batch validation needs from the database, in one round trip: the
-- template (signatory field count, default signatories with their users'
-- state) and the named users of the institution.
CREATE FUNCTION biz_batch_check(inst bigint, tpl uuid, users uuid[]) RETURNS json LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'template', (SELECT json_build_object(
                   'fields', cardinality(t.signatory_fields),
                   'defaults', (SELECT coalesce(json_agg(json_build_object(
                                  'index', ds.signatory_index, 'user_id', u.id,
                                  'display_name', coalesce(ds.display_name, u.signatory_name, u.first_name || ' ' || u.last_name),
                                  'designation', coalesce(ds.designation, u.signatory_designation),
                                  'auto_approve', ds.auto_approve OR u.auto_approve,
                                  'usable', u.signature_png IS NOT NULL AND NOT u.archived)
                                  ORDER BY ds.signatory_index), '[]')
                                FROM biz_default_signatories ds JOIN biz_users u ON u.id = ds.institution_user_id
                                WHERE ds.template_id = t.id))
                 FROM biz_templates t WHERE t.id = tpl AND t.institution_id = inst),
    'users', (SELECT coalesce(json_agg(json_build_object(
                'uuid', u.uuid, 'id', u.id, 'signed', u.signature_png IS NOT NULL, 'archived', u.archived,
                'display_name', coalesce(u.signatory_name, u.first_name || ' ' || u.last_name),
                'designation', u.signatory_designation, 'auto_approve', u.auto_approve)), '[]')
              FROM biz_users u WHERE u.institution_id = inst AND u.uuid = ANY (users)))
$$;

-- Queues the rendering of a batch (kind cert.batch, ref = batch id).
CREATE FUNCTION biz_queue_batch(bid uuid) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO bd_jobs (kind, ref) VALUES ('cert.batch', bid::text);
  PERFORM pg_notify('bd_jobs', 'cert.batch');
END $$;

-- Creates the batch row of an upload whose certificates were just copied
-- in the same transaction, with its signatories (sigs = [{index, user_id,
-- display_name, designation, auto_approve}]). A signatory who is the
-- creator or auto-approves has approved at once. Status: failed when every
-- row failed (nothing to render), waiting_for_approval while a signatory
-- has not approved, else processing with its job queued.
CREATE FUNCTION biz_create_batch(bid uuid, inst bigint, creator bigint, tpl uuid, bname text, total int, failed int,
                                 sigs jsonb, base_url text) RETURNS json LANGUAGE plpgsql AS $$
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
  RETURN biz_batch_json(b, creator, base_url);
END $$;

-- The caller approves a batch as the signatory assigned to them. Returns
-- {"error": "not_found" | "not_signatory" | "already_approved" |
-- "not_waiting"} or {"data": batch}. The last approval starts processing.
CREATE FUNCTION biz_approve_batch(bid uuid, inst bigint, caller bigint, base_url text) RETURNS json
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
  ELSE
    UPDATE biz_batches SET updated_at = now() WHERE id = bid RETURNING * INTO b;
  END IF;
  RETURN json_build_object('data', biz_batch_json(b, caller, base_url));
END $$;
