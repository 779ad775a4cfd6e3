-- 034_mint_units_scans: list_mint_units rows carry their scans (issue 21).
--
-- The function as the migrations before this one define it is kept under
-- another name and wrapped: each row gets scan_count, first_scan_at and
-- last_scan_at from pp_unit_scans (024), whatever else a row holds.

ALTER FUNCTION rpc_list_mint_units(text, jsonb, text) RENAME TO pp_list_mint_units_unscanned;

CREATE FUNCTION rpc_list_mint_units(sub text, a jsonb, base text) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
  r jsonb := pp_list_mint_units_unscanned(sub, a, base);
  first bigint;
BEGIN
  SELECT m.first_unit_id INTO first FROM pp_mint_jobs m WHERE m.id = (r->>'mint_job_id')::uuid;
  RETURN jsonb_set(r, '{data}', coalesce((
    SELECT jsonb_agg(e.d || jsonb_build_object('scan_count', coalesce(s.scan_count, 0),
             'first_scan_at', bd_iso(s.first_scan_at), 'last_scan_at', bd_iso(s.last_scan_at)) ORDER BY e.o)
      FROM jsonb_array_elements(r->'data') WITH ORDINALITY e(d, o)
      LEFT JOIN pp_unit_scans s ON s.unit_id = first + (e.d->>'seq')::bigint - 1), '[]'));
END $$;
