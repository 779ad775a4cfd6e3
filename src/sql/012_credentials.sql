-- 012_credentials: credentials an operator provisions (batchd tenant/user/
-- token commands, QRKit's /v1/tokens) and how their revocation reaches
-- every process at once.
--
-- Revocation: a credential's revoked_at may lie in the future: that is a
-- rotated key's grace period (it keeps working until then). Every change
-- that can end a credential (revoked_at, expires_at, scopes, permissions,
-- its deletion, a tenant being disabled) is announced with NOTIFY on the
-- channel `bd_credentials`, payload "<kind>:<id>" (qr:<key id>,
-- biz:<token id>, tenant:<tenant id>). A process that caches
-- credentials drops the entry on the notification and trusts its cache only
-- while its LISTEN is confirmed, so a revoked key stops working in every
-- process within the notification's latency (milliseconds), not after a
-- TTL. (/business tokens and /rpc JWTs are checked in the request's own
-- statement: nothing to invalidate.) last_used_at is written by the servers in batches and changes no
-- credential, so it notifies nothing.

ALTER TABLE bd_tenants ADD COLUMN disabled_at timestamptz;

CREATE FUNCTION bd_credential_live(revoked timestamptz, expires timestamptz) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT (revoked IS NULL OR revoked > now()) AND (expires IS NULL OR expires > now())
$$;

CREATE FUNCTION bd_tenant_enabled(tid bigint) RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT EXISTS (SELECT 1 FROM bd_tenants WHERE id = tid AND disabled_at IS NULL)
$$;

CREATE FUNCTION bd_tenants_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('bd_credentials', 'tenant:' || NEW.id);
  RETURN NULL;
END $$;
CREATE TRIGGER bd_tenants_notify AFTER UPDATE OF disabled_at ON bd_tenants
  FOR EACH ROW WHEN (OLD.disabled_at IS DISTINCT FROM NEW.disabled_at) EXECUTE FUNCTION bd_tenants_notify();

-- QR API keys (QRKit's api_key object).
ALTER TABLE qr_api_keys ADD COLUMN expires_at timestamptz;
ALTER TABLE qr_api_keys ADD COLUMN last_used_at timestamptz;
ALTER TABLE qr_api_keys ADD COLUMN rotated_to text;      -- the key that replaced this one

CREATE FUNCTION qr_api_keys_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('bd_credentials', 'qr:' || OLD.id);
  RETURN NULL;
END $$;
CREATE TRIGGER qr_api_keys_notify_u AFTER UPDATE ON qr_api_keys FOR EACH ROW
  WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at OR OLD.expires_at IS DISTINCT FROM NEW.expires_at
        OR OLD.scopes IS DISTINCT FROM NEW.scopes OR OLD.secret_hash IS DISTINCT FROM NEW.secret_hash
        OR OLD.mode IS DISTINCT FROM NEW.mode)
  EXECUTE FUNCTION qr_api_keys_notify();
CREATE TRIGGER qr_api_keys_notify_d AFTER DELETE ON qr_api_keys FOR EACH ROW EXECUTE FUNCTION qr_api_keys_notify();

-- The api_key object of the API: never the secret.
CREATE FUNCTION qr_api_key_json(k qr_api_keys) RETURNS jsonb STABLE LANGUAGE sql AS $$
  SELECT jsonb_build_object(
    'id', 'key_' || k.id, 'object', 'api_key', 'name', k.name,
    'key_prefix', 'qr_' || k.mode || '_' || k.id,
    'environment', k.mode, 'scopes', to_jsonb(k.scopes),
    'last_used_at', bd_iso(k.last_used_at), 'expires_at', bd_iso(k.expires_at),
    'revoked_at', bd_iso(k.revoked_at), 'created_at', bd_iso(k.created_at))
$$;

-- Business tokens.
ALTER TABLE biz_tokens ADD COLUMN expires_at timestamptz;
ALTER TABLE biz_tokens ADD COLUMN last_used_at timestamptz;
ALTER TABLE biz_tokens ADD COLUMN rotated_to text;

CREATE FUNCTION biz_tokens_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('bd_credentials', 'biz:' || OLD.id);
  RETURN NULL;
END $$;
CREATE TRIGGER biz_tokens_notify_u AFTER UPDATE ON biz_tokens FOR EACH ROW
  WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at OR OLD.expires_at IS DISTINCT FROM NEW.expires_at
        OR OLD.permissions IS DISTINCT FROM NEW.permissions OR OLD.secret_hash IS DISTINCT FROM NEW.secret_hash)
  EXECUTE FUNCTION biz_tokens_notify();
CREATE TRIGGER biz_tokens_notify_d AFTER DELETE ON biz_tokens FOR EACH ROW EXECUTE FUNCTION biz_tokens_notify();

-- Archived users, revoked or expired tokens and disabled tenants do not
-- authenticate. (Replaces 004's definition, same columns.)
CREATE OR REPLACE FUNCTION biz_token_lookup(tid text)
RETURNS TABLE (secret_hash text, permissions text[], user_id bigint, user_uuid uuid, institution_id bigint,
               institution_name text)
LANGUAGE sql STABLE AS $$
  SELECT t.secret_hash, t.permissions, u.id, u.uuid, u.institution_id, i.name
  FROM biz_tokens t JOIN biz_users u ON u.id = t.user_id JOIN biz_institutions i ON i.id = u.institution_id
  JOIN bd_tenants tn ON tn.id = i.tenant_id
  WHERE t.id = tid AND bd_credential_live(t.revoked_at, t.expires_at) AND NOT u.archived
    AND tn.disabled_at IS NULL
$$;

-- /rpc JWTs issued by `batchd token create --surface products`: the JWT's
-- jti is "jwt_" + this id. A JWT whose jti is here and no longer live is refused;
-- JWTs without a jti of ours (an external identity provider's) are checked
-- by signature, exp and brand membership only.
CREATE TABLE pp_tokens (
  id           text        PRIMARY KEY,             -- the jti without its "jwt_"
  brand_id     uuid        NOT NULL REFERENCES pp_brands(id),
  sub          text        NOT NULL,                -- the JWT's sub (a pp_members user)
  role         text        NOT NULL,
  name         text        NOT NULL DEFAULT '',
  expires_at   timestamptz NOT NULL,                -- the JWT's exp
  revoked_at   timestamptz,
  rotated_to   text,
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pp_tokens_brand ON pp_tokens (brand_id);

-- The caller of an /rpc call: `sub` when the JWT carries no jti of ours;
-- otherwise the token must still be live, belong to that sub, and its
-- brand's tenant be enabled, or the call is refused as unauthenticated
-- (28000 → 401). Checked in the call's own statement, so a revocation holds
-- in every process at once, with no cache to invalidate.
CREATE FUNCTION pp_caller(sub text, jti text) RETURNS text LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF jti IS NULL THEN
    RETURN sub;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pp_tokens t JOIN pp_brands b ON b.id = t.brand_id JOIN bd_tenants tn ON tn.id = b.tenant_id
                 WHERE t.id = jti AND t.sub = pp_caller.sub AND bd_credential_live(t.revoked_at, t.expires_at)
                   AND tn.disabled_at IS NULL) THEN
    RAISE EXCEPTION 'Not authenticated' USING ERRCODE = '28000', DETAIL = 'the token has been revoked';
  END IF;
  RETURN sub;
END $$;

-- Members of a disabled tenant's brands are refused too. (Replaces 003's.)
CREATE OR REPLACE FUNCTION pp_require(brand uuid, sub text, need text) RETURNS void LANGUAGE plpgsql STABLE AS $$
DECLARE
  r text;
  rank constant jsonb := '{"viewer": 1, "editor": 2, "admin": 3, "owner": 4}';
BEGIN
  SELECT m.role INTO r FROM pp_members m JOIN pp_brands b ON b.id = m.brand_id JOIN bd_tenants tn ON tn.id = b.tenant_id
  WHERE m.brand_id = brand AND m.user_id = sub AND tn.disabled_at IS NULL;
  IF r IS NULL OR (rank->>r)::int < (rank->>need)::int THEN
    RAISE EXCEPTION 'Forbidden' USING ERRCODE = '42501',
      DETAIL = CASE WHEN r IS NULL THEN 'not a member of this brand' ELSE 'the ' || need || ' role is required' END;
  END IF;
END $$;
