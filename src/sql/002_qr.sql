-- 002_qr: the QR-code surface (/v1, QRKit-compatible).

CREATE TABLE qr_workspaces (
  id         bigserial PRIMARY KEY,
  tenant_id  bigint      NOT NULL REFERENCES bd_tenants(id),
  name       text        NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, name)
);

-- API keys: "qr_live_<id>_<secret>" / "qr_test_<id>_<secret>". Only the
-- SHA-256 of the secret is stored; `id` is the public lookup part.
CREATE TABLE qr_api_keys (
  id           text        PRIMARY KEY,
  workspace_id bigint      NOT NULL REFERENCES qr_workspaces(id),
  mode         text        NOT NULL CHECK (mode IN ('live', 'test')),
  scopes       text[]      NOT NULL,
  secret_hash  text        NOT NULL,
  name         text        NOT NULL DEFAULT '',
  revoked_at   timestamptz,
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX qr_api_keys_workspace ON qr_api_keys (workspace_id);

-- Saved designs.
CREATE TABLE qr_templates (
  id           text        PRIMARY KEY,             -- tpl_...
  workspace_id bigint      NOT NULL REFERENCES qr_workspaces(id),
  mode         text        NOT NULL,
  name         text        NOT NULL,
  design       jsonb       NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX qr_templates_ws ON qr_templates (workspace_id, mode, created_at DESC, id DESC);

CREATE TABLE qr_batches (
  id              text        PRIMARY KEY,          -- batch_ + 16 base62
  workspace_id    bigint      NOT NULL REFERENCES qr_workspaces(id),
  mode            text        NOT NULL,
  status          text        NOT NULL DEFAULT 'processing'
                  CHECK (status IN ('processing', 'completed', 'failed')),
  total_count     int         NOT NULL,
  completed_count int         NOT NULL DEFAULT 0,
  error_count     int         NOT NULL DEFAULT 0,
  design          jsonb       NOT NULL,
  template_id     text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  completed_at    timestamptz
);
CREATE INDEX qr_batches_ws ON qr_batches (workspace_id, mode, created_at DESC, id DESC);

CREATE TABLE qr_codes (
  id            text        PRIMARY KEY,            -- qr_… (dynamic) / sqr_… (static)
  workspace_id  bigint      NOT NULL REFERENCES qr_workspaces(id),
  mode          text        NOT NULL,
  batch_id      text        REFERENCES qr_batches(id),
  batch_idx     int,                                -- position in its batch's items
  kind          text        NOT NULL CHECK (kind IN ('dynamic', 'static')),
  type          text        NOT NULL,
  name          text        NOT NULL DEFAULT '',
  target        jsonb       NOT NULL,
  payload       text        NOT NULL,               -- exactly what the symbol encodes
  short_code    text        UNIQUE,                 -- dynamic codes only
  design        jsonb       NOT NULL,
  folder_id     text,
  tags          text[]      NOT NULL DEFAULT '{}',
  is_active     boolean     NOT NULL DEFAULT true,
  scan_count    bigint      NOT NULL DEFAULT 0,
  render_status text        NOT NULL DEFAULT 'pending' CHECK (render_status IN ('pending', 'done', 'failed')),
  render_error  text,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  deleted_at    timestamptz
);
CREATE INDEX qr_codes_ws ON qr_codes (workspace_id, mode, created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX qr_codes_batch ON qr_codes (batch_id, batch_idx);

-- Items of a batch that failed validation (the valid ones are their codes,
-- found by batch_id and batch_idx): name, type and the error.
CREATE TABLE qr_batch_items (
  batch_id   text NOT NULL REFERENCES qr_batches(id),
  idx        int  NOT NULL,
  name       text,
  type       text,
  qr_code_id text,
  error      text,
  PRIMARY KEY (batch_id, idx)
);

-- The default rendering of each code (PNG, 1024 px), written by the batch job.
CREATE TABLE qr_images (
  code_id    text        PRIMARY KEY REFERENCES qr_codes(id),
  png        bytea       NOT NULL,
  sha256     text        NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Scans of dynamic codes, aggregated in memory by the redirect path per
-- (code, minute, device, os, browser, referrer, language, country) and
-- appended in bulk: one row per group with its count.
CREATE TABLE qr_scans (
  id         bigserial   PRIMARY KEY,
  code_id    text        NOT NULL,
  scanned_at timestamptz NOT NULL,                -- first scan of the group
  last_at    timestamptz NOT NULL,                -- last scan of the group
  count      int         NOT NULL,
  device     text,
  os         text,
  browser    text,
  referrer   text,
  language   text,
  country    text
);
CREATE INDEX qr_scans_code_time ON qr_scans (code_id, scanned_at);

-- Timestamps on the QR and product surfaces: 2025-03-14T13:04:03Z
CREATE FUNCTION bd_iso(t timestamptz) RETURNS text STABLE LANGUAGE sql AS
$$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') $$;

-- A batch's items in request order: its codes and its failed items.
CREATE FUNCTION qr_batch_item_rows(batch text)
RETURNS TABLE (idx int, name text, type text, qr_code_id text, error text) STABLE LANGUAGE sql AS $$
  SELECT batch_idx, nullif(name, ''), type, id, render_error FROM qr_codes WHERE batch_id = batch
  UNION ALL
  SELECT idx, name, type, NULL, error FROM qr_batch_items WHERE batch_id = batch
$$;

-- The public code object.
CREATE FUNCTION qr_code_json(c qr_codes, base text) RETURNS jsonb STABLE LANGUAGE sql AS $$
  SELECT jsonb_build_object(
    'id', c.id, 'object', 'qr_code', 'kind', c.kind, 'type', c.type, 'name', c.name,
    'target', c.target, 'short_code', c.short_code,
    'short_url', CASE WHEN c.short_code IS NULL THEN NULL ELSE base || '/s/' || c.short_code END,
    'image_url', base || '/v1/qr-codes/' || c.id || '/download?format=png',
    'download_url', base || '/v1/qr-codes/' || c.id || '/download',
    'is_active', c.is_active, 'scan_count', c.scan_count, 'design', c.design,
    'folder_id', c.folder_id, 'tags', to_jsonb(c.tags), 'batch_id', c.batch_id,
    'created_at', bd_iso(c.created_at), 'updated_at', bd_iso(c.updated_at))
$$;

CREATE FUNCTION qr_batch_json(b qr_batches, with_items boolean) RETURNS jsonb STABLE LANGUAGE sql AS $$
  SELECT jsonb_build_object(
    'id', b.id, 'object', 'batch', 'status', b.status, 'total_count', b.total_count,
    'completed_count', b.completed_count, 'error_count', b.error_count,
    'created_at', bd_iso(b.created_at), 'completed_at', bd_iso(b.completed_at))
    || CASE WHEN with_items THEN jsonb_build_object('items', coalesce((
         SELECT jsonb_agg(jsonb_build_object('name', x.name, 'type', x.type, 'qr_code_id', x.qr_code_id,
                                             'error', x.error) ORDER BY x.idx)
         FROM qr_batch_item_rows(b.id) x), '[]'::jsonb))
       ELSE '{}'::jsonb END
$$;

-- Creates a batch, its codes, its items and its job in one transaction.
-- b: {id, workspace_id, mode, design, template_id, total, codes: [...], items: [...]}
-- where each code is {id, idx, kind, type, name, target, payload, short_code,
-- folder_id, tags} and items are the failed ones: {idx, name, type, error}.
CREATE FUNCTION qr_create_batch(b jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  nvalid int := jsonb_array_length(b->'codes');
  ntotal int := (b->>'total')::int;
  row qr_batches;
BEGIN
  INSERT INTO qr_batches (id, workspace_id, mode, status, total_count, error_count, design, template_id,
                          completed_at)
  VALUES (b->>'id', (b->>'workspace_id')::bigint, b->>'mode',
          CASE WHEN nvalid = 0 THEN 'failed' ELSE 'processing' END,
          ntotal, ntotal - nvalid, b->'design', b->>'template_id',
          CASE WHEN nvalid = 0 THEN now() END)
  RETURNING * INTO row;
  INSERT INTO qr_codes (id, workspace_id, mode, batch_id, batch_idx, kind, type, name, target, payload,
                        short_code, design, folder_id, tags)
  SELECT x.id, row.workspace_id, row.mode, row.id, x.idx, x.kind, x.type, coalesce(x.name, ''), x.target,
         x.payload, x.short_code, b->'design', x.folder_id, coalesce(x.tags, '{}')
  FROM jsonb_to_recordset(b->'codes') AS x(id text, idx int, kind text, type text, name text, target jsonb,
                                           payload text, short_code text, folder_id text, tags text[]);
  INSERT INTO qr_batch_items (batch_id, idx, name, type, qr_code_id, error)
  SELECT row.id, x.idx, x.name, x.type, NULL, x.error
  FROM jsonb_to_recordset(b->'items') AS x(idx int, name text, type text, error text);
  IF nvalid > 0 THEN
    INSERT INTO bd_jobs (kind, ref) VALUES ('qr.batch', row.id);
    PERFORM pg_notify('bd_jobs', 'qr.batch');
  END IF;
  RETURN qr_batch_json(row, false);
END
$$;

-- Records a chunk of rendered images: exactly once per code (the
-- render_status guard), counters moved by what actually changed.
-- r: [{id, png (hex), sha256, error}]
CREATE FUNCTION qr_record_renders(batch text, r jsonb) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  ndone int;
  nfail int;
  st text;
BEGIN
  INSERT INTO qr_images (code_id, png, sha256)
  SELECT x.id, decode(x.png, 'hex'), x.sha256
  FROM jsonb_to_recordset(r) AS x(id text, png text, sha256 text, error text)
  WHERE x.error IS NULL
  ON CONFLICT (code_id) DO NOTHING;
  WITH upd AS (
    UPDATE qr_codes c SET render_status = CASE WHEN x.error IS NULL THEN 'done' ELSE 'failed' END,
                          render_error = x.error, updated_at = now()
    FROM jsonb_to_recordset(r) AS x(id text, png text, sha256 text, error text)
    WHERE c.id = x.id AND c.render_status = 'pending'
    RETURNING c.render_status)
  SELECT count(*) FILTER (WHERE render_status = 'done'), count(*) FILTER (WHERE render_status = 'failed')
  INTO ndone, nfail FROM upd;
  UPDATE qr_batches SET completed_count = completed_count + ndone, error_count = error_count + nfail,
    status = CASE WHEN completed_count + ndone + error_count + nfail >= total_count
                  THEN CASE WHEN completed_count + ndone = 0 THEN 'failed' ELSE 'completed' END
                  ELSE status END,
    completed_at = CASE WHEN completed_count + ndone + error_count + nfail >= total_count THEN now() END,
    updated_at = now()
  WHERE id = batch
  RETURNING status INTO st;
  RETURN st;
END
$$;
