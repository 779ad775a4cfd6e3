// Drives batchd's /rest/v1/rpc with @supabase/postgrest-js, unchanged, and
// prints what the client got for each case as JSON (one object keyed by
// case name: {data, error, count, status}); test_postgrest_client.py
// asserts on it.
//
//   node postgrest_cases.mjs '{"url": ..., "jwt": ..., "brand_id": ..., "product_id": ..., "job": ...}'
import { PostgrestClient } from "@supabase/postgrest-js";

const cfg = JSON.parse(process.argv[2]);
const db = new PostgrestClient(cfg.url + "/rest/v1", { headers: { Authorization: "Bearer " + cfg.jwt } });
const batches = { _brand_id: cfg.brand_id, _product_id: cfg.product_id };
const job = { _brand_id: cfg.brand_id, _mint_job_id: cfg.job };

const cases = {
  all: () => db.rpc("list_product_batches", batches),
  eq: () => db.rpc("list_product_batches", batches).eq("batch_number", "PG-2"),
  neq_gt: () => db.rpc("list_product_batches", batches).neq("batch_number", "PG-3").gt("quantity", 15),
  gte_lte: () => db.rpc("list_product_batches", batches).gte("quantity", 20).lte("quantity", 30),
  in_like: () => db.rpc("list_product_batches", batches).in("batch_number", ["PG-1", "PG-5", "nope"]),
  like: () => db.rpc("list_product_batches", batches).like("batch_number", "PG-%"),
  ilike: () => db.rpc("list_product_batches", batches).ilike("facility_ref", "*hall*"),
  is_null: () => db.rpc("list_product_batches", batches).is("quantity", null),
  not_eq: () => db.rpc("list_product_batches", batches).not("status", "eq", "active"),
  select: () => db.rpc("list_product_batches", batches).select("batch_number,qty:quantity").eq("batch_number", "PG-1"),
  order_range: () => db.rpc("list_product_batches", batches).select("batch_number")
    .order("batch_number", { ascending: false }).range(1, 2),
  order_nulls: () => db.rpc("list_product_batches", batches).select("batch_number,quantity")
    .order("quantity", { ascending: true, nullsFirst: true }),
  limit: () => db.rpc("list_product_batches", batches).select("batch_number").order("batch_number").limit(2),
  count: () => db.rpc("list_product_batches", batches, { count: "exact" }).select("batch_number")
    .order("batch_number").range(0, 1),
  count_filtered: () => db.rpc("list_product_batches", batches, { count: "exact" }).like("batch_number", "PG-%")
    .gt("quantity", 15),
  head_count: () => db.rpc("list_product_batches", batches, { head: true, count: "exact" }),
  single: () => db.rpc("list_product_batches", batches).eq("batch_number", "PG-2").single(),
  single_many: () => db.rpc("list_product_batches", batches).single(),
  single_none: () => db.rpc("list_product_batches", batches).eq("batch_number", "none").single(),
  maybe_single_none: () => db.rpc("list_product_batches", batches).eq("batch_number", "none").maybeSingle(),
  get_rows: () => db.rpc("list_product_batches", batches, { get: true }).eq("batch_number", "PG-3")
    .select("batch_number,quantity"),
  get_object: () => db.rpc("get_mint_job", job, { get: true }).select("status,requested_quantity"),
  get_units: () => db.rpc("list_mint_units", { ...job, _limit: 2 }, { get: true }),
  get_write: () => db.rpc("submit_mint_request", { ...batches, _batch_id: cfg.batch, _requested_quantity: 1 },
    { get: true }),
  object_single: () => db.rpc("get_mint_job", job).single(),
  object_filter: () => db.rpc("get_mint_job", job).eq("status", "COMPLETED"),
  object_select: () => db.rpc("get_mint_job", job).select("mint_job_id,minted_count"),
  or_tree: () => db.rpc("list_product_batches", batches).or("quantity.eq.10,quantity.eq.20"),
  fts: () => db.rpc("list_product_batches", batches).textSearch("batch_number", "PG"),
  contains: () => db.rpc("list_product_batches", batches).contains("attributes", { a: 1 }),
  csv: () => db.rpc("list_product_batches", batches).csv(),
  unknown_column: () => db.rpc("list_product_batches", batches).eq("colour", "red"),
  not_a_number: () => db.rpc("list_product_batches", batches).gt("quantity", "many"),
  embedded: () => db.rpc("list_product_batches", batches).select("batch_number,products(name)"),
};

const out = {};
for (const [name, fn] of Object.entries(cases)) {
  const r = await fn();
  out[name] = { data: r.data ?? null, error: r.error ?? null, count: r.count ?? null, status: r.status };
}
process.stdout.write(JSON.stringify(out));
