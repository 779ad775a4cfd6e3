-- 035: the code object as QRKit documents it, beside our fields:
--  - utm: target.utm of a dynamic code at the top level (null otherwise,
--    and for a dynamic code without one);
--  - design.has_logo: whether the design has a logo (read-only: the
--    design parser accepts and ignores it, so a design read from a code can
--    be sent back as it is);
--  - name: a code created without one reads "Campaign <short code>"
--    (dynamic) or "Static <last 8 characters of its id>" (static); the
--    stored name stays empty, so sort=name still sorts unnamed codes first;
--  - scan_count: null for static codes (nothing counts their scans: they
--    do not pass through us).
-- One function applies it to both the code rows (qr_code_json) and the
-- codes of not yet expanded batch records (qr_code_get, 022).

CREATE FUNCTION qr_code_public(j jsonb) RETURNS jsonb IMMUTABLE LANGUAGE sql AS $$
  SELECT CASE WHEN j IS NULL THEN NULL ELSE j || jsonb_build_object(
    'name', CASE WHEN coalesce(j->>'name', '') <> '' THEN j->>'name'
                 WHEN j->>'kind' = 'dynamic' THEN 'Campaign ' || coalesce(j->>'short_code', right(j->>'id', 8))
                 ELSE 'Static ' || right(j->>'id', 8) END,
    'utm', CASE WHEN j->>'kind' = 'dynamic' AND jsonb_typeof(j->'target'->'utm') = 'object'
                THEN j->'target'->'utm' ELSE 'null'::jsonb END,
    'scan_count', CASE WHEN j->>'kind' = 'static' THEN 'null'::jsonb ELSE j->'scan_count' END,
    'design', CASE WHEN jsonb_typeof(j->'design') = 'object'
                   THEN j->'design' || jsonb_build_object('has_logo', coalesce(jsonb_typeof(j->'design'->'logo') = 'object', false))
                   ELSE j->'design' END) END
$$;

CREATE OR REPLACE FUNCTION qr_code_json(c qr_codes, base text) RETURNS jsonb STABLE LANGUAGE sql AS $$
  SELECT qr_code_public(jsonb_build_object(
    'id', c.id, 'object', 'qr_code', 'kind', c.kind, 'type', c.type, 'name', c.name,
    'target', c.target, 'short_code', c.short_code,
    'short_url', CASE WHEN c.short_code IS NULL THEN NULL ELSE base || '/s/' || c.short_code END,
    'image_url', base || '/v1/qr-codes/' || c.id || '/download?format=png',
    'download_url', base || '/v1/qr-codes/' || c.id || '/download',
    'is_active', c.is_active, 'scan_count', c.scan_count, 'design', c.design,
    'folder_id', c.folder_id, 'tags', to_jsonb(c.tags), 'batch_id', c.batch_id,
    'created_at', bd_iso(c.created_at), 'updated_at', bd_iso(c.updated_at)))
$$;

CREATE OR REPLACE FUNCTION qr_code_get(code text, ws bigint, md text, base text) RETURNS jsonb STABLE LANGUAGE sql AS $$
  SELECT coalesce(
    (SELECT qr_code_json(c, base) FROM qr_codes c WHERE c.id = code AND c.workspace_id = ws AND c.mode = md
       AND c.deleted_at IS NULL),
    qr_code_public(qr_record_code_json(code, ws, md, base)))
$$;
