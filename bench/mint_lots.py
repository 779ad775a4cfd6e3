"""bench/mint_lots.py: the mint-lots scenario of bench/run (issue 21).

submit_mint_request in batch identity mode with _lots: 100 lots of equal
quantity making 100k and 1M units, until get_mint_job says COMPLETED. The
time is the job row's own (created_at to completed_at, as the mint
scenario's), the median of a few runs; the target is the mint scenario's
(1M < 6 s). The units of a lots job carry no serial (the unique index on
(GTIN, serial) skips them) and their lots are one row per lot, so a lots
mint writes no more per unit than a serial one. The units minted here are
deleted at the end (the resolver scenario reads the mint scenario's)."""


def sc_mint_lots(ctx, run):
    p = run.products(ctx)
    sizes = [100000] if ctx.quick else [100000, 1000000]
    reps = 1 if ctx.quick else 5
    run.cancel_backlog(ctx)
    rows, first_id = [], None
    try:
        for n in sizes:
            runs = []
            for _ in range(reps):
                run.quiesce(ctx)
                snap = run.snapshot(ctx, ctx.batchd)
                secs, job_id, _batch = run.mint(ctx, p, n, lots=100)
                f = run.figures(ctx, ctx.batchd, snap, n)
                took, first = ctx.pg.psql("SELECT extract(epoch FROM completed_at - created_at) || ',' || first_unit_id"
                                          " FROM pp_mint_jobs WHERE id = '%s'" % job_id, ctx.db_url).split(",")
                first_id = first_id if first_id is not None else int(first)
                runs.append({"rate": float(took), "server": f, "polled_s": secs})
            med = run.median_round(runs)
            rows.append(run.row("mint-lots %s" % run.LABELS[n], "s", med["rate"], None, "", lower=True,
                                server=med["server"],
                                target={"kind": "ours_max", "value": 6} if n == 1000000 else None,
                                detail={"units": n, "lots": 100, "units_per_s": n / med["rate"],
                                        "times_s": [r["rate"] for r in runs],
                                        "polled_s": [r["polled_s"] for r in runs]}))
    finally:
        if first_id is not None:
            ctx.pg.psql("DELETE FROM pp_units u USING pp_mint_jobs j WHERE j.has_lots AND j.first_unit_id >= %d"
                        " AND u.id >= j.first_unit_id AND u.id < j.first_unit_id + j.requested_quantity"
                        % first_id, ctx.db_url)
    return rows
