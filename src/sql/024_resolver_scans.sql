-- 024_resolver_scans: scan telemetry of the GS1 resolver (issue 21).
--
-- The resolver counts the scans of each unit in memory (a scan: a GET of a
-- unit's Digital Link that is answered with the redirect to its passport,
-- by a client that is not a bot) and writes them in bulk, about once a
-- second, one row per unit: no database round trip on the redirect path.
-- One row per unit, not per scan: the API reports a unit's count, first and
-- last scan, and a row per scan would cost the database more than the
-- redirects cost the server.

CREATE TABLE pp_unit_scans (
  unit_id       bigint      PRIMARY KEY,  -- pp_units.id
  scan_count    bigint      NOT NULL,
  first_scan_at timestamptz NOT NULL,
  last_scan_at  timestamptz NOT NULL
);

-- One flush of the buffer: [{"id": unit, "f": first_us, "l": last_us,
-- "n": count}, ...] added to the rows (counts summed, first the least,
-- last the greatest), so a retried flush after a failure adds what it
-- still holds and nothing twice.
CREATE FUNCTION pp_unit_scans_add(batch jsonb) RETURNS void LANGUAGE sql AS $$
  INSERT INTO pp_unit_scans AS s (unit_id, scan_count, first_scan_at, last_scan_at)
  SELECT x.id, x.n, to_timestamp(x.f / 1e6), to_timestamp(x.l / 1e6)
    FROM jsonb_to_recordset(batch) AS x(id bigint, f bigint, l bigint, n bigint)
  ON CONFLICT (unit_id) DO UPDATE SET scan_count = s.scan_count + EXCLUDED.scan_count,
    first_scan_at = least(s.first_scan_at, EXCLUDED.first_scan_at),
    last_scan_at = greatest(s.last_scan_at, EXCLUDED.last_scan_at)
$$;

-- get_unit_scans(_brand_id, _mint_job_id, _seq | _serial): one unit of a
-- job, by its position in the job (1..quantity, as list_mint_units' seq) or
-- its serial, with its status and scans.
CREATE FUNCTION rpc_get_unit_scans(sub text, a jsonb, base text) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
  j pp_mint_jobs := pp_readable_job(sub, a);
  v_seq int := pp_int(a, '_seq');
  v_serial text := pp_text(a, '_serial', false, 20);
  u pp_units;
  s pp_unit_scans;
BEGIN
  IF (v_seq IS NULL) = (v_serial IS NULL) THEN PERFORM pp_invalid('give exactly one of _seq and _serial'); END IF;
  IF v_seq IS NOT NULL THEN
    IF v_seq NOT BETWEEN 1 AND j.requested_quantity THEN
      PERFORM pp_invalid(format('_seq must be from 1 to %s', j.requested_quantity));
    END IF;
    SELECT * INTO u FROM pp_units x WHERE x.id = j.first_unit_id + v_seq - 1;
  ELSE
    SELECT * INTO u FROM pp_units x WHERE x.gtin = j.gtin AND x.serial = v_serial
       AND x.id >= j.first_unit_id AND x.id < j.first_unit_id + j.requested_quantity;
  END IF;
  IF u.id IS NULL THEN
    RAISE EXCEPTION 'Not found' USING ERRCODE = 'P0002', DETAIL = 'no such unit in this mint job';
  END IF;
  SELECT * INTO s FROM pp_unit_scans x WHERE x.unit_id = u.id;
  RETURN jsonb_build_object('mint_job_id', j.id, 'seq', u.id - j.first_unit_id + 1, 'gtin', u.gtin, 'lot', j.lot,
    'serial', u.serial, 'digital_link', pp_dl_uri(base, u.gtin, j.lot, u.serial), 'status', pp_unit_status(j, u.id),
    'scan_count', coalesce(s.scan_count, 0), 'first_scan_at', bd_iso(s.first_scan_at),
    'last_scan_at', bd_iso(s.last_scan_at));
END $$;
