-- 025: plan-style limits per QR workspace, set by the administrator
-- (`batchd limits set`), and the usage they are checked against
-- (GET /v1/usage).
--
-- Two limits, each NULL for none: the dynamic codes a workspace may hold
-- (not deleted) and the codes it may create per calendar month (UTC).
-- They apply to each mode on its own: test keys meet the same limits as
-- live ones, counted apart, so an integration behaves in test as it will
-- in production.
--
-- The counters are kept in qr_usage by triggers, in the transaction that
-- stores the codes, so a check and what it admits are one atomic step:
--  - a batch's record (022: qr_batch_records, the accepted codes as
--    arrays) counts its codes when it is inserted: the kinds array says
--    which are dynamic. Its later expansion into qr_codes rows inserts
--    codes with a batch_id and is not counted again;
--  - a single create (qr_codes row without a batch_id) counts itself;
--  - soft-deleting a dynamic code (deleted_at set) gives its place back;
--    deleting never gives back a monthly creation.
-- Going over a limit raises SQLSTATE QRL01 (its message names the limit,
-- DETAIL holds the figures as JSON), which aborts the whole intake:
-- nothing is stored and the server answers 403 plan_limit_reached. The
-- row lock on qr_usage serialises the intakes of one workspace and mode for
-- the length of their (short) transactions, which is what makes the check
-- exact under concurrency.

CREATE TABLE qr_workspace_limits (
  workspace_id      bigint PRIMARY KEY REFERENCES qr_workspaces (id) ON DELETE CASCADE,
  max_dynamic_codes bigint CHECK (max_dynamic_codes >= 0),  -- NULL: no limit
  max_monthly_codes bigint CHECK (max_monthly_codes >= 0),  -- NULL: no limit
  updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE qr_usage (
  workspace_id  bigint NOT NULL,
  mode          text   NOT NULL,
  dynamic_codes bigint NOT NULL DEFAULT 0, -- dynamic codes held (not deleted)
  month         date   NOT NULL,           -- first day (UTC) of the month month_codes counts
  month_codes   bigint NOT NULL DEFAULT 0, -- codes created in that month
  PRIMARY KEY (workspace_id, mode)
);

-- What workspaces hold already (this migration runs once, before any of
-- the triggers below exist).
INSERT INTO qr_usage (workspace_id, mode, dynamic_codes, month, month_codes)
SELECT workspace_id, mode, sum(dyn), date_trunc('month', now() AT TIME ZONE 'UTC')::date, sum(mon)
FROM (SELECT workspace_id, mode, count(*) FILTER (WHERE kind = 'dynamic' AND deleted_at IS NULL) AS dyn,
             count(*) FILTER (WHERE created_at >= date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS mon
      FROM qr_codes GROUP BY workspace_id, mode
      UNION ALL
      SELECT workspace_id, mode, sum(cardinality(array_positions(kinds, 'dynamic'))), sum(cardinality(ids))
      FROM qr_batch_records GROUP BY workspace_id, mode) t
GROUP BY workspace_id, mode;

-- Counts nd dynamic codes among nt new codes of (ws, m), or raises QRL01
-- when a limit would be passed.
CREATE FUNCTION qr_usage_reserve(ws bigint, m text, nd bigint, nt bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  cur date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
  u qr_usage;
  l qr_workspace_limits;
  mon bigint;
BEGIN
  INSERT INTO qr_usage (workspace_id, mode, month) VALUES (ws, m, cur) ON CONFLICT DO NOTHING;
  SELECT * INTO u FROM qr_usage WHERE workspace_id = ws AND mode = m FOR UPDATE;
  mon := CASE WHEN u.month = cur THEN u.month_codes ELSE 0 END;
  SELECT * INTO l FROM qr_workspace_limits WHERE workspace_id = ws;
  IF l.max_dynamic_codes IS NOT NULL AND nd > 0 AND u.dynamic_codes + nd > l.max_dynamic_codes THEN
    RAISE EXCEPTION USING ERRCODE = 'QRL01',
      MESSAGE = format('This would make %s dynamic codes: the workspace may hold %s (it holds %s); nothing was stored',
                       u.dynamic_codes + nd, l.max_dynamic_codes, u.dynamic_codes),
      DETAIL = jsonb_build_object('limit', 'dynamic_codes', 'used', u.dynamic_codes, 'requested', nd,
                                  'max', l.max_dynamic_codes)::text;
  END IF;
  IF l.max_monthly_codes IS NOT NULL AND nt > 0 AND mon + nt > l.max_monthly_codes THEN
    RAISE EXCEPTION USING ERRCODE = 'QRL01',
      MESSAGE = format('This would make %s codes created this month: the workspace may create %s a month (%s so far); nothing was stored',
                       mon + nt, l.max_monthly_codes, mon),
      DETAIL = jsonb_build_object('limit', 'monthly_codes', 'used', mon, 'requested', nt,
                                  'max', l.max_monthly_codes)::text;
  END IF;
  UPDATE qr_usage SET dynamic_codes = u.dynamic_codes + nd, month = cur, month_codes = mon + nt
  WHERE workspace_id = ws AND mode = m;
END
$$;

CREATE FUNCTION qr_usage_on_record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM qr_usage_reserve(NEW.workspace_id, NEW.mode, cardinality(array_positions(NEW.kinds, 'dynamic')),
                           cardinality(NEW.ids));
  RETURN NEW;
END
$$;
CREATE TRIGGER qr_usage_record BEFORE INSERT ON qr_batch_records
  FOR EACH ROW EXECUTE FUNCTION qr_usage_on_record();

CREATE FUNCTION qr_usage_on_code() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM qr_usage_reserve(NEW.workspace_id, NEW.mode, CASE WHEN NEW.kind = 'dynamic' THEN 1 ELSE 0 END, 1);
  RETURN NEW;
END
$$;
CREATE TRIGGER qr_usage_code BEFORE INSERT ON qr_codes
  FOR EACH ROW WHEN (NEW.batch_id IS NULL) EXECUTE FUNCTION qr_usage_on_code();

CREATE FUNCTION qr_usage_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE qr_usage SET dynamic_codes = greatest(dynamic_codes - 1, 0)
  WHERE workspace_id = NEW.workspace_id AND mode = NEW.mode;
  RETURN NULL;
END
$$;
CREATE TRIGGER qr_usage_delete AFTER UPDATE OF deleted_at ON qr_codes
  FOR EACH ROW WHEN (OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL AND NEW.kind = 'dynamic')
  EXECUTE FUNCTION qr_usage_on_delete();

-- GET /v1/usage: the counters and limits of (ws, m).
CREATE FUNCTION qr_usage_json(ws bigint, m text) RETURNS jsonb STABLE LANGUAGE sql AS $$
  WITH cur AS (SELECT date_trunc('month', now() AT TIME ZONE 'UTC')::date AS d),
  u AS (SELECT dynamic_codes, CASE WHEN month = cur.d THEN month_codes ELSE 0 END AS mon
        FROM qr_usage, cur WHERE workspace_id = ws AND mode = m),
  l AS (SELECT max_dynamic_codes, max_monthly_codes FROM qr_workspace_limits WHERE workspace_id = ws)
  SELECT jsonb_build_object(
    'object', 'usage',
    'environment', m,
    'dynamic_codes', jsonb_build_object('used', coalesce((SELECT dynamic_codes FROM u), 0),
                                        'limit', (SELECT max_dynamic_codes FROM l)),
    'monthly_codes', jsonb_build_object('used', coalesce((SELECT mon FROM u), 0),
                                        'limit', (SELECT max_monthly_codes FROM l),
                                        'period_start', to_char(cur.d, 'YYYY-MM-DD') || 'T00:00:00Z',
                                        'resets_at', to_char(cur.d + interval '1 month', 'YYYY-MM-DD') || 'T00:00:00Z'))
  FROM cur
$$;
