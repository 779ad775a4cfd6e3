-- 013_qr_tokens: QRKit's token API (/v1/tokens, src/qr/qr_tokens.c).
--
-- The api_key object has exactly QRKit's fields: id, object, name,
-- key_prefix, environment, scopes, last_used_at, expires_at, created_at
-- (and `key`, the secret, added by the server to the answer of a create or
-- a rotation only). 012's version also had revoked_at, which QRKit's object
-- has not: a revoked key is not listed at all, and a rotated key still in
-- its grace period reports the end of that period as its expires_at (the
-- sooner of the two is when it stops working).
CREATE OR REPLACE FUNCTION qr_api_key_json(k qr_api_keys) RETURNS jsonb STABLE LANGUAGE sql AS $$
  SELECT jsonb_build_object(
    'id', 'key_' || k.id, 'object', 'api_key', 'name', k.name,
    'key_prefix', 'qr_' || k.mode || '_' || k.id,
    'environment', k.mode, 'scopes', to_jsonb(k.scopes),
    'last_used_at', bd_iso(k.last_used_at), 'expires_at', bd_iso(least(k.expires_at, k.revoked_at)),
    'created_at', bd_iso(k.created_at))
$$;

-- GET /v1/tokens: a workspace's keys, newest first (keyset pagination on
-- created_at, id).
CREATE INDEX qr_api_keys_ws_created ON qr_api_keys (workspace_id, created_at DESC, id DESC);
