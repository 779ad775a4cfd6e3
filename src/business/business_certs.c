/* business_certs.c: certificate processing, artefacts and verification of
 * the /business surface.
 *
 * PROCESSING. A batch that enters `processing` has a durable job of kind
 * cert.batch (ref = batch id), queued by the batch's own transaction
 * (biz_queue_batch, 004). The handler here:
 *   1. registers this process's signing key (biz_signing_keys), reads the
 *      batch context (biz_cert_job_context: status, template layout,
 *      institution, signatories with their signature PNGs);
 *   2. on a worker: parses the layout and decodes the signature images
 *      once (immutable, shared read-only by the render items of the run);
 *   3. claims a chunk of certificates (biz_cert_claim: pending ones, and
 *      'processing' ones a dead previous owner left), renders each on the
 *      work queue (PDF + QR SVG, hashes, canonical record, Ed25519
 *      signature, hex for bytea: all on the worker), records the chunk in
 *      one statement (biz_cert_record), and loops, checking
 *      bd_job_stopping() between chunks;
 *   4. with nothing left, ends the batch (biz_cert_finish): completed,
 *      partially_completed (some failed) or failed (none generated), with
 *      completion_date.
 * Exactly once: biz_cert_record changes only certificates still pending or
 * processing, in the same statement that writes their artefacts, so a stale
 * owner's late chunk is ignored; and rendering is deterministic (same input,
 * same bytes, same signature: Ed25519 is deterministic), so a certificate
 * re-rendered after a takeover gets the artefacts it would have had.
 *
 * THE SIGNED RECORD of a certificate (canonical encoding: sign.h):
 *   {"v":2, "type":"batchd.certificate", "certificate_id", "reference_id",
 *    "batch_id", "recipient":{"name"}, "issue_date":"YYYY-MM-DD",
 *    "institution":{"id","name"}, "signatories":[{"name","designation"}],
 *    "pdf_sha256", "verification_url", "key_id"}
 * Version 1 (signed before the PNG became derived) also has "png_sha256";
 * such records stay stored and verify as signed. The PNG is rendered on its
 * first request (business_cert_png.c).
 * The e-mail and custom data are not in it: the record is public (the
 * verification page shows it) and they may be personal.
 *
 * ENDPOINTS: GET /business/certificates[/{id}[/pdf|/png|/qrcode.svg]],
 * POST /business/certificates/{id}/revoke, GET /verify/{reference_id} (HTML,
 * or JSON with Accept: application/json), GET /.well-known/batchd-keys.json.
 * Loop thread only, except the *_work functions (pool threads).
 */
#include "business.h"

#include "app.h"
#include "cert_render.h"
#include "credential.h"
#include "jobs.h"
#include "json.h"
#include "log.h"
#include "sign.h"
#include "util.h"
#include "work.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define CHUNK_MIN 4  /* certificates claimed at once (at least) */
#define CHUNK_MAX 32 /* and at most: bounds the memory of one chunk (~0.1 MB each) */

static bd_sign_key_t g_key; /* this process's signing key (immutable after init) */
static char g_pk_b64[64];   /* its public key, base64 */
static int g_chunk;         /* certificates per chunk: 2 per render thread */

/* --- the cert.batch job ------------------------------------------------------- */

typedef struct {
  bd_job_t *job;             /* the cert.batch job */
  char batch_id[40];         /* its ref */
  json_t *ctx;               /* biz_cert_job_context (owned) */
  bd_cert_layout_t *layout;  /* parsed on a worker (owned) */
  char layout_err[300];      /* why the layout did not parse */
  bd_cert_image_t **images;  /* signature images, one per signatory (owned, may be NULL) */
  bd_cert_signatory_t *sigs; /* render input (strings borrowed from ctx) */
  size_t nsigs;
  json_t *record_sigs;    /* [{name, designation}] for the record (owned) */
  const char *inst_name;  /* borrowed from ctx */
  const char *batch_name; /* borrowed from ctx */
  const char *tpl_id;     /* the template (the credential's achievement), borrowed */
  const char *tpl_name;
  const char *created;    /* the batch's creation: the credential proofs' `created` */
  int64_t inst_id;        /* institution */
  char did[320];          /* its issuer identifier (credential.h) */
  char vm[400];           /* this process's key under it */
  bd_work_t prep;         /* the preparation work item */
  long long last_row;     /* claim cursor: highest row_no claimed by this run */
  /* Up to two chunks render at once, and a rendered chunk is recorded while
   * the next ones render: the render threads do not wait for the database
   * between chunks. */
  int rendering;          /* chunks claimed and not all rendered */
  int recording;          /* chunks whose record is in flight (at most one) */
  struct cchunk *parked;  /* rendered chunks waiting for that record to end (FIFO) */
  struct cchunk *parked_tail;
  int nparked;            /* its length (with rendering, at most two chunks are held) */
  bool claiming;          /* a claim is in flight */
  bool exhausted;         /* a claim found nothing more */
  bool cancelled;         /* an item came back not rendered (stopping) */
  char *error;            /* the first failure (owned): the run ends with it */
} crun_t;

/* One claimed chunk while it renders. */
typedef struct cchunk {
  struct cchunk *next; /* parked: the next one */
  crun_t *run;     /* owner */
  int outstanding; /* render items not back yet */
  bd_buf_t results;/* JSON array text of the results */
  size_t nresults; /* results in it */
} cchunk_t;

typedef struct {
  bd_work_t w;                                    /* work item */
  cchunk_t *chunk;                                /* owner (outlives the item) */
  crun_t *run;                                    /* the chunk's run */
  char id[40];                                    /* certificate id */
  char *ref, *email, *name, *issue_date, *custom; /* row values (owned) */
  long long ordinal;                              /* its status list entry (014) */
  bd_buf_t out; /* the result object as JSON text (made on the worker) */
  bool skipped; /* not rendered: the server is stopping */
} citem_t;

static bd_pg_stmt_t S_KEY = BD_PG_STMT(
    "INSERT INTO biz_signing_keys (key_id, public_key) VALUES ($1, $2) ON CONFLICT DO NOTHING");
static bd_pg_stmt_t S_CTX = BD_PG_STMT("SELECT biz_cert_job_context($1::uuid)");
static bd_pg_stmt_t S_CLAIM =
    BD_PG_STMT_BG("SELECT * FROM biz_cert_claim($1::uuid, $2::int, $3::int)");
static bd_pg_stmt_t S_RECORD = BD_PG_STMT_BG("SELECT biz_cert_record($1::uuid, $2::jsonb)");
static bd_pg_stmt_t S_FINISH = BD_PG_STMT("SELECT biz_cert_finish($1::uuid, $2)");
static bd_pg_stmt_t S_FAIL_ALL = BD_PG_STMT("SELECT biz_cert_fail_all($1::uuid, $2, $3)");

static void run_free(crun_t *run) {
  bd_cert_layout_free(run->layout);
  for (size_t i = 0; i < run->nsigs; i++) bd_cert_image_free(run->images ? run->images[i] : NULL);
  free(run->images);
  free(run->sigs);
  json_decref(run->record_sigs);
  json_decref(run->ctx);
  free(run->error);
  free(run);
}

static void run_end(crun_t *run, const char *error) {
  bd_job_t *job = run->job;
  if (error)
    bd_warn("cert.batch %s: %s", run->batch_id, error);
  else
    bd_info("cert.batch %s: done", run->batch_id);
  run_free(run);
  if (error)
    bd_job_retry(job, error, 1000);
  else
    bd_job_done(job);
}

static void run_yield(crun_t *run) {
  bd_job_t *job = run->job;
  bd_info("cert.batch %s: given back after row %lld", run->batch_id, run->last_row);
  run_free(run);
  bd_job_yield(job);
}

static void step(crun_t *run);

static void on_finished(void *ud, const bd_pg_result_t *r) {
  crun_t *run = ud;
  run_end(run, r->err ? r->message : NULL);
}

static void finish(crun_t *run) {
  const char *p[] = {run->batch_id, bd_biz_base_url()};
  if (bd_pg_query(bd_app.pg, &S_FINISH, 2, p, on_finished, run) != 0)
    run_end(run, "database queue full");
}

static void run_fail(crun_t *run, const char *error) {
  if (!run->error) run->error = bd_strdup(error);
}

/* Ends the run once nothing of it is in flight: with its first error, or
 * given back (stopping, or an item was not rendered), or finished when a
 * claim found nothing more. */
static void maybe_end(crun_t *run) {
  if (run->claiming || run->rendering > 0 || run->recording > 0 || run->parked) return;
  if (run->error) {
    char *e = run->error;
    run->error = NULL;
    run_end(run, e);
    free(e);
  } else if (run->cancelled || bd_job_stopping(run->job)) {
    run_yield(run);
  } else if (run->exhausted) {
    finish(run);
  } else {
    step(run); /* not reached: step keeps a claim or a chunk in flight */
  }
}

static void record(crun_t *run, cchunk_t *ch);

/* Parked chunks not to be recorded (the run is failing): their
 * certificates stay 'processing' and the next owner renders them. */
static void drop_parked(crun_t *run) {
  while (run->parked) {
    cchunk_t *ch = run->parked;
    run->parked = ch->next;
    bd_buf_free(&ch->results);
    free(ch);
  }
  run->parked_tail = NULL;
  run->nparked = 0;
}

static void on_recorded(void *ud, const bd_pg_result_t *r) {
  crun_t *run = ud;
  run->recording--;
  if (r->err) run_fail(run, r->message);
  if (run->parked) {
    cchunk_t *ch = run->parked;
    run->parked = ch->next;
    if (!run->parked) run->parked_tail = NULL;
    run->nparked--;
    record(run, ch); /* recorded even after a failure: its certificates are rendered */
    return;
  }
  step(run);
}

/* Builds, signs and encodes one certificate. Pool thread: touches only the
 * item and the run's immutable parts (layout, images, strings). */
/* Pool thread: the certificate's OpenBadgeCredential (credential.h), baked
 * into its PNG and attached to its PDF; the artefacts' hashes are those of
 * the files as served, credential included. *vc_text: the credential's
 * compact JSON (owned). */
static int credential_bake(const citem_t *it, bd_cert_output_t *out, char **vc_text, char *err, size_t errsz) {
  const crun_t *run = it->run;
  const char *base = bd_biz_base_url();
  char cred_id[512], list_url[512], ach_id[512], valid_from[32], salt[33], desc[600];
  snprintf(cred_id, sizeof cred_id, "%s/credentials/%s", base, it->ref);
  snprintf(list_url, sizeof list_url, "%s/credentials/status/%lld/%lld", base, (long long)run->inst_id,
           it->ordinal / BD_VC_STATUS_LIST_SIZE);
  snprintf(ach_id, sizeof ach_id, "%s/business/certificate-templates/%s#achievement", base,
           run->tpl_id ? run->tpl_id : "");
  snprintf(valid_from, sizeof valid_from, "%.10sT00:00:00Z", it->issue_date);
  /* the e-mail's salt: per certificate, stable across re-renders */
  unsigned char h[32];
  char sbuf[80];
  snprintf(sbuf, sizeof sbuf, "batchd-identity-salt:%s", it->id);
  crypto_hash_sha256(h, (const unsigned char *)sbuf, strlen(sbuf));
  bd_hex_encode(salt, h, 16);
  const char *inst = run->inst_name ? run->inst_name : "";
  snprintf(desc, sizeof desc, "%s, awarded by %s.", run->tpl_name ? run->tpl_name : "Certificate", inst);
  bd_vc_input_t in = {
      .credential_id = cred_id,
      .issuer_did = run->did,
      .issuer_name = inst,
      .achievement_id = ach_id,
      .achievement_name = run->tpl_name ? run->tpl_name : "Certificate",
      .achievement_description = desc,
      .criteria = run->batch_name && *run->batch_name ? run->batch_name : desc,
      .credential_name = run->batch_name && *run->batch_name ? run->batch_name : (run->tpl_name ? run->tpl_name : "Certificate"),
      .recipient_name = it->name ? it->name : "",
      .recipient_email = it->email,
      .salt = salt,
      .valid_from = valid_from,
      .status_list_url = list_url,
      .status_index = (long)(((it->ordinal % BD_VC_STATUS_LIST_SIZE) * 40503) % BD_VC_STATUS_LIST_SIZE),
      .verification_method = run->vm,
      .created = run->created ? run->created : valid_from,
  };
  json_t *vc = bd_vc_certificate(&in, &g_key, err, errsz);
  if (!vc) return -1;
  *vc_text = json_dumps(vc, JSON_COMPACT);
  json_decref(vc);
  size_t tl = strlen(*vc_text);
  bd_buf_t png = BD_BUF_INIT, pdf = BD_BUF_INIT;
  if ((out->png.len && bd_vc_bake_png(out->png.data, out->png.len, *vc_text, tl, &png, err, errsz) != 0) ||
      bd_pdf_attach(out->pdf.data, out->pdf.len, "credential.json", "application/vc+ld+json", *vc_text, tl,
                    "The certificate as an Open Badges 3.0 verifiable credential", &pdf, err, errsz) != 0) {
    bd_buf_free(&png);
    bd_buf_free(&pdf);
    return -1;
  }
  bd_buf_free(&out->png);
  bd_buf_free(&out->pdf);
  out->png = png;
  out->pdf = pdf;
  bd_sha256_hex(out->pdf_sha256, out->pdf.data, out->pdf.len);
  if (out->png.len) bd_sha256_hex(out->png_sha256, out->png.data, out->png.len);
  return 0;
}

static void item_work(bd_work_t *w) {
  citem_t *it = w->data;
  crun_t *run = it->run;
  /* shutting down: an item not started yet is left for the next owner (it
   * stays 'processing'), so a stop never waits for a queue of renders on a
   * busy machine. bd_app.stopping is written once by the loop thread. */
  if (__atomic_load_n(&bd_app.stopping, __ATOMIC_RELAXED)) {
    it->skipped = true;
    return;
  }
  char err[300] = "";
  char url[512];
  snprintf(url, sizeof url, "%s/verify/%s", bd_biz_base_url(), it->ref);
  json_t *custom = it->custom ? json_loads(it->custom, 0, NULL) : NULL;
  bd_cert_input_t in = {.recipient_name = it->name,
                        .recipient_email = it->email,
                        .issue_date = it->issue_date,
                        .reference_id = it->ref,
                        .verification_url = url,
                        .institution_name = run->inst_name,
                        .batch_name = run->batch_name,
                        .custom_data = json_is_object(custom) ? custom : NULL,
                        .signatories = run->sigs,
                        .nsignatories = run->nsigs};
  bd_cert_output_t out;
  bd_jw_t jw;
  bd_jw_init(&jw, &it->out);
  bd_jw_obj(&jw);
  bd_jw_kstr(&jw, "id", it->id);
  /* the PNG is not made here: it is rendered on its first request */
  int rc = it->issue_date ? bd_cert_render_ex(run->layout, &in, BD_CERT_PDF | BD_CERT_QR_SVG, &out,
                                              err, sizeof err)
                          : -1;
  if (!it->issue_date) snprintf(err, sizeof err, "the certificate has no issue date");
  json_t *rec = NULL;
  bd_buf_t sig = BD_BUF_INIT, canon = BD_BUF_INIT;
  char *vc_text = NULL;
  if (rc == 0 && credential_bake(it, &out, &vc_text, err, sizeof err) != 0) rc = -1;
  if (rc == 0) {
    rec = json_pack(
        "{s:i, s:s, s:s, s:s, s:s, s:{s:s}, s:s, s:{s:I, s:s}, s:O, s:s, s:s, s:s}", "v", 2,
        "type", "batchd.certificate", "certificate_id", it->id, "reference_id", it->ref, "batch_id",
        run->batch_id, "recipient", "name", it->name, "issue_date", it->issue_date, "institution",
        "id", (json_int_t)run->inst_id, "name", run->inst_name ? run->inst_name : "", "signatories",
        run->record_sigs, "pdf_sha256", out.pdf_sha256, "verification_url", url, "key_id", g_key.key_id);
    if (!rec || bd_sign_canonical(rec, &canon, err, sizeof err) != 0 ||
        bd_sign_record(&g_key, rec, &sig, err, sizeof err) != 0) {
      rc = -1;
      if (!err[0]) snprintf(err, sizeof err, "the certificate record could not be built");
    }
  }
  if (rc == 0) {
    char *hex = bd_malloc(out.pdf.len * 2 + 1);
    bd_hex_encode(hex, out.pdf.data, out.pdf.len);
    bd_jw_key(&jw, "pdf");
    bd_jw_strn(&jw, hex, out.pdf.len * 2);
    free(hex);
    bd_jw_key(&jw, "svg");
    bd_jw_strn(&jw, out.qr_svg.data, out.qr_svg.len);
    bd_jw_kstr(&jw, "pdf_sha256", out.pdf_sha256);
    bd_jw_key(&jw, "record");
    bd_jw_strn(&jw, canon.data, canon.len);
    bd_jw_kstr(&jw, "signature", sig.data);
    bd_jw_kstr(&jw, "key_id", g_key.key_id);
    bd_jw_kstr(&jw, "credential", vc_text);
  } else {
    bd_jw_kstr(&jw, "error", err);
  }
  bd_jw_obj_end(&jw);
  bd_cert_output_free(&out);
  bd_buf_free(&sig);
  bd_buf_free(&canon);
  free(vc_text);
  json_decref(rec);
  json_decref(custom);
}

static void item_after(bd_work_t *w, int status) {
  citem_t *it = w->data;
  cchunk_t *ch = it->chunk;
  crun_t *run = it->run;
  if (status == 0 && !it->skipped) {
    bd_buf_putc(&ch->results, ch->nresults++ ? ',' : '[');
    bd_buf_append(&ch->results, it->out.data, it->out.len);
  } else {
    run->cancelled = true; /* stays 'processing': the next owner renders it */
  }
  bd_buf_free(&it->out);
  free(it->ref);
  free(it->email);
  free(it->name);
  free(it->issue_date);
  free(it->custom);
  free(it);
  if (--ch->outstanding > 0) return;
  run->rendering--;
  if (ch->nresults == 0) { /* nothing rendered (stopping): nothing to record */
    bd_buf_free(&ch->results);
    free(ch);
    maybe_end(run);
    return;
  }
  bd_buf_putc(&ch->results, ']');
  if (run->recording > 0) {
    /* one record at a time: several megabytes of parameters queued on one
     * connection cost the loop thread libpq's buffer copies; this one is
     * sent when that record is back (maybe_end waits for it) */
    ch->next = NULL;
    if (run->parked_tail) run->parked_tail->next = ch;
    else run->parked = ch;
    run->parked_tail = ch;
    run->nparked++;
    step(run);
    return;
  }
  record(run, ch);
}

static void record(crun_t *run, cchunk_t *ch) {
  const char *p[] = {run->batch_id, ch->results.data};
  int rc = bd_pg_query(bd_app.pg, &S_RECORD, 2, p, on_recorded, run);
  /* the query copied its parameters: the chunk's text can go */
  bd_buf_free(&ch->results);
  free(ch);
  if (rc != 0) {
    run_fail(run, "database queue full");
    drop_parked(run);
    maybe_end(run);
    return;
  }
  run->recording++;
  step(run); /* a chunk may render in its place */
}

static char *dup_or_null(const PGresult *r, int row, int col) {
  const char *v = bd_pg_val(r, row, col);
  return v ? bd_strdup(v) : NULL;
}

static void on_claimed(void *ud, const bd_pg_result_t *r) {
  crun_t *run = ud;
  run->claiming = false;
  if (r->err) {
    run_fail(run, r->message);
    maybe_end(run);
    return;
  }
  int n = PQntuples(r->res);
  if (n == 0) {
    run->exhausted = true;
    maybe_end(run);
    return;
  }
  cchunk_t *ch = bd_calloc(1, sizeof *ch);
  ch->run = run;
  ch->outstanding = n;
  run->rendering++;
  for (int i = 0; i < n; i++) {
    citem_t *it = bd_calloc(1, sizeof *it);
    it->chunk = ch;
    it->run = run;
    snprintf(it->id, sizeof it->id, "%s", PQgetvalue(r->res, i, 0));
    it->ref = dup_or_null(r->res, i, 1);
    it->email = dup_or_null(r->res, i, 2);
    it->name = dup_or_null(r->res, i, 3);
    it->issue_date = dup_or_null(r->res, i, 4);
    it->custom = dup_or_null(r->res, i, 5);
    long long row = strtoll(PQgetvalue(r->res, i, 6), NULL, 10);
    it->ordinal = strtoll(PQgetvalue(r->res, i, 7), NULL, 10);
    if (row > run->last_row) run->last_row = row;
    it->w.work = item_work;
    it->w.after = item_after;
    it->w.data = it;
    it->w.background = true;
    bd_work_submit(&it->w);
  }
  step(run); /* claim the next chunk while this one renders */
}

/* Keeps two chunks rendering while there is work and no reason to stop
 * (one claim at a time); else ends the run once what is in flight is back. */
static void step(crun_t *run) {
  if (run->claiming || run->rendering + run->nparked >= 2 || run->exhausted || run->error || run->cancelled ||
      bd_job_stopping(run->job)) {
    maybe_end(run);
    return;
  }
  char n[16], after[24];
  snprintf(n, sizeof n, "%d", g_chunk);
  snprintf(after, sizeof after, "%lld", run->last_row);
  const char *p[] = {run->batch_id, n, after};
  if (bd_pg_query(bd_app.pg, &S_CLAIM, 3, p, on_claimed, run) != 0) {
    run_fail(run, "database queue full");
    maybe_end(run);
    return;
  }
  run->claiming = true;
}

/* Pool thread: parse the layout, decode the signature images. */
static void prep_work(bd_work_t *w) {
  crun_t *run = w->data;
  run->layout = bd_cert_layout_parse(json_object_get(run->ctx, "layout"), run->layout_err,
                                     sizeof run->layout_err);
  json_t *sigs = json_object_get(run->ctx, "signatories");
  run->nsigs = json_array_size(sigs);
  run->images = bd_calloc(run->nsigs + 1, sizeof *run->images);
  run->sigs = bd_calloc(run->nsigs + 1, sizeof *run->sigs);
  run->record_sigs = json_array();
  for (size_t i = 0; i < run->nsigs; i++) {
    run->sigs[i] = bd_biz_signatory(json_array_get(sigs, i), &run->images[i]);
    const char *name = run->sigs[i].name, *des = run->sigs[i].designation;
    json_array_append_new(run->record_sigs,
                          json_pack("{s:s, s:s?}", "name", name ? name : "", "designation", des));
  }
}

static void on_failed_all(void *ud, const bd_pg_result_t *r) {
  crun_t *run = ud;
  run_end(run, r->err ? r->message : NULL);
}

static void prep_after(bd_work_t *w, int status) {
  crun_t *run = w->data;
  if (status != 0) {
    run_yield(run);
    return;
  }
  if (!run->layout) {
    /* the template cannot render at all: every certificate fails with why */
    char reason[360];
    snprintf(reason, sizeof reason, "the template layout is invalid: %s", run->layout_err);
    const char *p[] = {run->batch_id, reason, bd_biz_base_url()};
    if (bd_pg_query(bd_app.pg, &S_FAIL_ALL, 3, p, on_failed_all, run) != 0)
      run_end(run, "database queue full");
    return;
  }
  step(run);
}

static void on_ctx(void *ud, const bd_pg_result_t *r) {
  crun_t *run = ud;
  if (r->err) {
    run_end(run, r->message);
    return;
  }
  const char *text = bd_pg_val(r->res, 0, 0);
  run->ctx = text ? json_loads(text, 0, NULL) : NULL;
  const char *status = json_string_value(json_object_get(run->ctx, "status"));
  if (!status || strcmp(status, "processing") != 0) {
    run_end(run, NULL); /* gone, not approved yet, or already ended: nothing to do */
    return;
  }
  run->inst_name = json_string_value(json_object_get(run->ctx, "institution_name"));
  run->batch_name = json_string_value(json_object_get(run->ctx, "name"));
  run->inst_id = json_integer_value(json_object_get(run->ctx, "institution_id"));
  run->tpl_id = json_string_value(json_object_get(run->ctx, "template_id"));
  run->tpl_name = json_string_value(json_object_get(run->ctx, "template_name"));
  run->created = json_string_value(json_object_get(run->ctx, "created_at"));
  if (bd_vc_did(bd_biz_base_url(), (long long)run->inst_id, run->did, sizeof run->did) != 0) {
    run_end(run, "BATCHD_PUBLIC_URL is not an http(s) URL: no issuer identifier for the credentials");
    return;
  }
  bd_vc_method(run->did, g_key.key_id, run->vm, sizeof run->vm);
  run->prep.work = prep_work;
  run->prep.after = prep_after;
  run->prep.data = run;
  run->prep.background = true;
  bd_work_submit(&run->prep);
}

static void on_key(void *ud, const bd_pg_result_t *r) {
  crun_t *run = ud;
  if (r->err) {
    run_end(run, r->message);
    return;
  }
  const char *p[] = {run->batch_id};
  if (bd_pg_query(bd_app.pg, &S_CTX, 1, p, on_ctx, run) != 0) run_end(run, "database queue full");
}

static void run_job(bd_job_t *job) {
  crun_t *run = bd_calloc(1, sizeof *run);
  run->job = job;
  snprintf(run->batch_id, sizeof run->batch_id, "%s", job->ref ? job->ref : "");
  if (!bd_uuid_valid(bd_str_c(run->batch_id))) {
    run_end(run, NULL); /* not ours to fix: drop it */
    return;
  }
  const char *p[] = {g_key.key_id, g_pk_b64};
  if (bd_pg_query(bd_app.pg, &S_KEY, 2, p, on_key, run) != 0) run_end(run, "database queue full");
}

/* --- request helpers ------------------------------------------------------------- */

typedef struct {
  char id[80];      /* the path id, for 404 messages */
  bd_biz_page_t pg; /* list paging */
  char extra[2048]; /* list: filters for page links (search and customer_id may be 765 bytes encoded each) */
  int kind;         /* artefact: 0 pdf, 2 svg (the PNG: business_cert_png.c) */
} cctx_t;

static cctx_t *cctx(bd_req_t *req) {
  cctx_t *c = bd_req_calloc(req, sizeof *c);
  req->ctx = c;
  return c;
}

/* --- GET /business/certificates --------------------------------------------------- */

#define CERT_FILTER                                                                               \
  "c.institution_id = $1::bigint AND ($2::uuid IS NULL OR c.batch_id = $2::uuid)"                 \
  " AND ($3::text IS NULL OR c.status = $3)"                                                      \
  " AND ($4::text IS NULL OR c.name ILIKE $4 OR c.email ILIKE $4 OR c.reference_id ILIKE $4)"     \
  " AND ($5::date IS NULL OR c.issue_date >= $5::date) AND ($6::date IS NULL OR c.issue_date <= " \
  "$6::date) AND ($10::text IS NULL OR c.customer_id = $10) AND ($11::text IS NULL OR c.email_status = $11)"

static bd_pg_stmt_t S_LIST = BD_PG_STMT(
    "SELECT (SELECT count(*) FROM biz_certificates c WHERE " CERT_FILTER "),"
    " coalesce(json_agg(biz_certificate_json(s.c, $9) ORDER BY (s.c).created_at DESC, "
    "(s.c).batch_id,"
    " (s.c).row_no), '[]'), count(*)"
    " FROM (SELECT c FROM biz_certificates c WHERE " CERT_FILTER
    " ORDER BY c.created_at DESC, c.batch_id, c.row_no LIMIT $7::bigint OFFSET $8::bigint) s");

static void on_list(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  cctx_t *c = req->ctx;
  bd_biz_send_page(req, r, &c->pg, c->extra);
  bd_req_release(req);
}

static const char *const g_cert_statuses[] = {"pending", "processing", "generated", "failed",
                                              "revoked"};
static const char *const g_email_statuses[] = {"not_requested", "queued", "sent", "failed"};

static bool iso_date(const char *s) {
  if (strlen(s) != 10 || s[4] != '-' || s[7] != '-') return false;
  for (int i = 0; i < 10; i++)
    if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9')) return false;
  int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
  static const int md[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (y < 1 || m < 1 || m > 12 || d < 1 || d > md[m - 1]) return false;
  return !(m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
}

/* Appends "&name=<encoded value>" to the page-link query. */
static void extra_add(cctx_t *c, const char *name, const char *v) {
  bd_buf_t e = BD_BUF_INIT;
  bd_url_encode(&e, v, strlen(v));
  size_t off = strlen(c->extra);
  snprintf(c->extra + off, sizeof c->extra - off, "&%s=%s", name, e.data ? e.data : "");
  bd_buf_free(&e);
}

static void list_authed(bd_req_t *req, const bd_biz_caller_t *caller) {
  cctx_t *c = cctx(req);
  bd_biz_errors_t errs;
  bd_biz_errors_init(&errs);
  bd_biz_page_parse(req, &c->pg, &errs);
  bd_buf_t v[7] = {BD_BUF_INIT, BD_BUF_INIT, BD_BUF_INIT, BD_BUF_INIT, BD_BUF_INIT, BD_BUF_INIT, BD_BUF_INIT};
  static const char *const names[7] = {"batch_id", "status", "search", "issue_date_from",
                                       "issue_date_to", "customer_id", "email_status"};
  bool has[7];
  for (int i = 0; i < 7; i++) has[i] = bd_req_query(req, names[i], &v[i]) && v[i].len;
  if (has[6]) {
    bool known = false;
    for (size_t i = 0; i < BD_ARRAY_LEN(g_email_statuses); i++)
      known |= strcmp(v[6].data, g_email_statuses[i]) == 0;
    if (!known) bd_biz_errors_add(&errs, "email_status", "The selected email status is invalid.");
  }
  if (has[0] && !bd_uuid_valid(bd_str_c(v[0].data)))
    bd_biz_errors_add(&errs, "batch_id", "The batch id field must be a valid UUID.");
  if (has[1]) {
    bool known = false;
    for (size_t i = 0; i < BD_ARRAY_LEN(g_cert_statuses); i++)
      known |= strcmp(v[1].data, g_cert_statuses[i]) == 0;
    if (!known) bd_biz_errors_add(&errs, "status", "The selected status is invalid.");
  }
  if (has[2] && v[2].len > 255)
    bd_biz_errors_add(&errs, "search", "The search field must not be greater than 255 characters.");
  if (has[3] && !iso_date(v[3].data))
    bd_biz_errors_add(&errs, "issue_date_from",
                      "The issue date from field must match the format Y-m-d.");
  if (has[4] && !iso_date(v[4].data))
    bd_biz_errors_add(&errs, "issue_date_to",
                      "The issue date to field must match the format Y-m-d.");
  if (has[5] && v[5].len > 255)
    bd_biz_errors_add(&errs, "customer_id", "The customer id field must not be greater than 255 characters.");
  if (errs.n) {
    for (int i = 0; i < 7; i++) bd_buf_free(&v[i]);
    bd_biz_errors_send(req, &errs);
    return;
  }
  bd_biz_errors_free(&errs);
  if (c->pg.per_page != BD_BIZ_PER_PAGE_DEFAULT) {
    char pp[24];
    snprintf(pp, sizeof pp, "%lld", (long long)c->pg.per_page);
    extra_add(c, "per_page", pp);
  }
  for (int i = 0; i < 7; i++)
    if (has[i]) extra_add(c, names[i], v[i].data);
  /* search: a substring, LIKE wildcards in it taken literally */
  bd_buf_t like = BD_BUF_INIT;
  if (has[2]) {
    bd_buf_putc(&like, '%');
    for (size_t i = 0; i < v[2].len; i++) {
      char ch = v[2].data[i];
      if (ch == '%' || ch == '_' || ch == '\\') bd_buf_putc(&like, '\\');
      bd_buf_putc(&like, ch);
    }
    bd_buf_putc(&like, '%');
  }
  char inst[24], lim[24], offs[24];
  bd_biz_inst_str(caller, inst);
  snprintf(lim, sizeof lim, "%lld", (long long)c->pg.per_page);
  snprintf(offs, sizeof offs, "%lld", (long long)c->pg.offset);
  const char *p[] = {inst,
                     has[0] ? v[0].data : NULL,
                     has[1] ? v[1].data : NULL,
                     has[2] ? like.data : NULL,
                     has[3] ? v[3].data : NULL,
                     has[4] ? v[4].data : NULL,
                     lim,
                     offs,
                     bd_biz_base_url(),
                     has[5] ? v[5].data : NULL,
                     has[6] ? v[6].data : NULL};
  bd_app_query(req, &S_LIST, 11, p, on_list, req);
  for (int i = 0; i < 7; i++) bd_buf_free(&v[i]);
  bd_buf_free(&like);
}

void bd_biz_cert_list(bd_req_t *req) { bd_biz_authenticate(req, "certificates:view", list_authed); }

/* --- GET /business/certificates/{id} ---------------------------------------------- */

static bd_pg_stmt_t S_GET = BD_PG_STMT(
    "SELECT biz_certificate_json(c, $3) FROM biz_certificates c WHERE c.id = $1::uuid AND "
    "c.institution_id = $2::bigint");

static void on_get(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  cctx_t *c = req->ctx;
  if (r->err)
    bd_app_db_error(req, r);
  else if (PQntuples(r->res) != 1)
    bd_biz_not_found(req, c->id);
  else
    bd_biz_send_data(req, 200, PQgetvalue(r->res, 0, 0));
  bd_req_release(req);
}

/* The {id} of the path into c->id; false (404 sent) when it is not a UUID. */
static bool path_id(bd_req_t *req, cctx_t *c) {
  const char *id = bd_req_param(req, 0);
  snprintf(c->id, sizeof c->id, "%s", id);
  if (bd_uuid_valid(bd_str_c(id))) return true;
  bd_biz_not_found(req, id);
  return false;
}

static void get_authed(bd_req_t *req, const bd_biz_caller_t *caller) {
  cctx_t *c = cctx(req);
  if (!path_id(req, c)) return;
  char inst[24];
  bd_biz_inst_str(caller, inst);
  const char *p[] = {c->id, inst, bd_biz_base_url()};
  bd_app_query(req, &S_GET, 3, p, on_get, req);
}

void bd_biz_cert_get(bd_req_t *req) { bd_biz_authenticate(req, "certificates:view", get_authed); }

/* --- artefacts -------------------------------------------------------------------- */

static bd_pg_stmt_t S_FILE = BD_PG_STMT(
    "SELECT CASE $3::int WHEN 0 THEN f.pdf WHEN 1 THEN f.png END, CASE WHEN $3::int = 2 THEN "
    "f.qr_svg END, c.reference_id"
    " FROM biz_certificates c JOIN biz_certificate_files f ON f.certificate_id = c.id"
    " WHERE c.id = $1::uuid AND c.institution_id = $2::bigint");

static void on_file(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  cctx_t *c = req->ctx;
  if (r->err) {
    bd_app_db_error(req, r);
  } else if (PQntuples(r->res) != 1) {
    bd_biz_not_found(req, c->id); /* unknown, another institution's, or not generated */
  } else {
    static const char *const ctype[] = {"application/pdf", "image/png", "image/svg+xml"};
    static const char *const ext[] = {"pdf", "png", "svg"};
    bd_resp_headerf(req, "Content-Disposition", "inline; filename=\"%s.%s\"",
                    PQgetvalue(r->res, 0, 2), ext[c->kind]);
    /* artefacts never change once generated */
    bd_resp_header(req, "Cache-Control", "private, max-age=86400, immutable");
    if (c->kind == 2) {
      bd_resp_send(req, 200, ctype[2], PQgetvalue(r->res, 0, 1), (size_t)PQgetlength(r->res, 0, 1));
    } else {
      size_t n;
      unsigned char *bin = PQunescapeBytea((const unsigned char *)PQgetvalue(r->res, 0, 0), &n);
      if (!bin) {
        bd_biz_server_error(req, "artefact could not be decoded");
      } else {
        bd_resp_send(req, 200, ctype[c->kind], (const char *)bin, n);
        PQfreemem(bin);
      }
    }
  }
  bd_req_release(req);
}

static void file_authed(bd_req_t *req, const bd_biz_caller_t *caller, int kind) {
  cctx_t *c = cctx(req);
  c->kind = kind;
  if (!path_id(req, c)) return;
  char inst[24], k[4];
  bd_biz_inst_str(caller, inst);
  snprintf(k, sizeof k, "%d", kind);
  const char *p[] = {c->id, inst, k};
  bd_app_query(req, &S_FILE, 3, p, on_file, req);
}

static void pdf_authed(bd_req_t *req, const bd_biz_caller_t *caller) {
  file_authed(req, caller, 0);
}
static void svg_authed(bd_req_t *req, const bd_biz_caller_t *caller) {
  file_authed(req, caller, 2);
}
void bd_biz_cert_pdf(bd_req_t *req) { bd_biz_authenticate(req, "certificates:view", pdf_authed); }
void bd_biz_cert_svg(bd_req_t *req) { bd_biz_authenticate(req, "certificates:view", svg_authed); }

/* --- POST /business/certificates/{id}/revoke --------------------------------------- */

/* 0 rows: unknown; status 'x' (not generated): 422; else the certificate. */
/* biz_revoke_certificate (018): revokes and emits certificate.revoked in one
 * transaction; (NULL, status) when the certificate is not generated. */
static bd_pg_stmt_t S_REVOKE =
    BD_PG_STMT("SELECT cert, status FROM biz_revoke_certificate($1::uuid, $2::bigint, $3)");

static void on_revoked(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  cctx_t *c = req->ctx;
  if (r->err) {
    bd_app_db_error(req, r);
  } else if (PQntuples(r->res) != 1) {
    bd_biz_not_found(req, c->id);
  } else if (PQgetisnull(r->res, 0, 0)) {
    bd_biz_errors_t e;
    bd_biz_errors_init(&e);
    bd_biz_errors_add(&e, "certificate", "Only generated certificates can be revoked.");
    bd_biz_errors_send(req, &e);
  } else {
    bd_biz_send_data(req, 200, PQgetvalue(r->res, 0, 0));
  }
  bd_req_release(req);
}

static void revoke_authed(bd_req_t *req, const bd_biz_caller_t *caller) {
  cctx_t *c = cctx(req);
  if (!path_id(req, c)) return;
  char inst[24];
  bd_biz_inst_str(caller, inst);
  const char *p[] = {c->id, inst, bd_biz_base_url()};
  bd_app_query(req, &S_REVOKE, 3, p, on_revoked, req);
}

void bd_biz_cert_revoke(bd_req_t *req) {
  bd_biz_authenticate(req, "certificates:manage", revoke_authed);
}

/* --- GET /verify/{reference_id} ----------------------------------------------------- */

static bd_pg_stmt_t S_VERIFY = BD_PG_STMT("SELECT biz_verify_json($1, $2)");

/* Whether the client asked for JSON (Accept naming application/json or
 * +json before any text/html). Browsers send text/html first. */
static bool wants_json(const bd_req_t *req) {
  bd_str_t a = bd_req_header(req, "Accept");
  if (!a.p) return false;
  const char *end = a.p + a.len;
  for (const char *p = a.p; p < end; p++) {
    if ((size_t)(end - p) >= 9 && strncasecmp(p, "text/html", 9) == 0) return false;
    if ((size_t)(end - p) >= 16 && strncasecmp(p, "application/json", 16) == 0) return true;
  }
  return false;
}

static const char k_html_head[] =
    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
    "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
    "<title>Certificate verification</title><style>body{font-family:system-ui,sans-serif;"
    "max-width:42rem;margin:2rem auto;padding:0 1rem;color:#1a1a1a}.valid{color:#0a6b2d}"
    ".revoked{color:#a11}dt{font-weight:600;margin-top:.6rem}code{word-break:break-all}"
    "</style></head><body>";

static void verify_html(bd_req_t *req, json_t *v, const char *ref) {
  bd_buf_t b = BD_BUF_INIT;
  bd_buf_puts(&b, k_html_head);
  if (!v) {
    bd_buf_puts(&b, "<h1>Certificate not found</h1><p>No certificate has the reference <code>");
    bd_html_escape(&b, ref);
    bd_buf_puts(&b, "</code>.</p></body></html>");
    bd_resp_header(req, "Cache-Control", "no-store");
    bd_resp_send(req, 404, "text/html; charset=utf-8", b.data, b.len);
    bd_buf_free(&b);
    return;
  }
  const char *status = json_string_value(json_object_get(v, "status"));
  bool valid = status && strcmp(status, "valid") == 0;
  bd_buf_printf(&b, "<h1 class=\"%s\">%s</h1><dl>", valid ? "valid" : "revoked",
                valid ? "Valid certificate" : "Revoked certificate");
  json_t *sig = json_object_get(v, "signature");
  struct {
    const char *label;
    const char *val;
  } rows[] = {
      {"Recipient", json_string_value(json_object_get(json_object_get(v, "recipient"), "name"))},
      {"Issue date", json_string_value(json_object_get(v, "issue_date"))},
      {"Institution",
       json_string_value(json_object_get(json_object_get(v, "institution"), "name"))},
      {"Reference", json_string_value(json_object_get(v, "reference_id"))},
      {"Revoked at", json_string_value(json_object_get(v, "revoked_at"))},
      {"SHA-256 of the PDF", json_string_value(json_object_get(v, "pdf_sha256"))},
      {"Ed25519 signature", json_string_value(json_object_get(sig, "value"))},
      {"Key id", json_string_value(json_object_get(sig, "key_id"))},
  };
  for (size_t i = 0; i < BD_ARRAY_LEN(rows); i++) {
    if (!rows[i].val) continue;
    bd_buf_printf(&b, "<dt>%s</dt><dd>", rows[i].label);
    bool code = i >= 5;
    if (code) bd_buf_puts(&b, "<code>");
    bd_html_escape(&b, rows[i].val);
    if (code) bd_buf_puts(&b, "</code>");
    bd_buf_puts(&b, "</dd>");
  }
  json_t *sigs = json_object_get(v, "signatories");
  if (json_array_size(sigs)) {
    bd_buf_puts(&b, "<dt>Signed by</dt>");
    for (size_t i = 0; i < json_array_size(sigs); i++) {
      json_t *s = json_array_get(sigs, i);
      bd_buf_puts(&b, "<dd>");
      bd_html_escape(&b, json_string_value(json_object_get(s, "name")));
      const char *d = json_string_value(json_object_get(s, "designation"));
      if (d && *d) {
        bd_buf_puts(&b, ", ");
        bd_html_escape(&b, d);
      }
      bd_buf_puts(&b, "</dd>");
    }
  }
  const char *cred = json_string_value(json_object_get(v, "credential_url"));
  if (cred) {
    bd_buf_puts(&b, "<dt>Verifiable credential</dt><dd><a href=\"");
    bd_html_escape(&b, cred);
    bd_buf_puts(&b, "\">Open Badges 3.0 credential</a> (W3C VC 2.0, eddsa-jcs-2022)</dd>");
  }
  bd_buf_puts(&b, "</dl><p>The signature covers the canonical record below; the public keys are at "
                  "<a href=\"");
  bd_html_escape(&b, json_string_value(json_object_get(sig, "keys_url")));
  bd_buf_puts(&b, "\">batchd-keys.json</a>.</p><pre><code>");
  bd_html_escape(&b, json_string_value(json_object_get(sig, "canonical_record")));
  bd_buf_puts(&b, "</code></pre></body></html>");
  bd_resp_header(req, "Cache-Control", "no-cache");
  bd_resp_send(req, 200, "text/html; charset=utf-8", b.data, b.len);
  bd_buf_free(&b);
}

static void on_verify(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  cctx_t *c = req->ctx;
  if (r->err) {
    bd_app_db_error(req, r);
  } else {
    const char *text = PQntuples(r->res) ? bd_pg_val(r->res, 0, 0) : NULL;
    if (wants_json(req)) {
      if (!text) {
        bd_biz_not_found(req, c->id);
      } else {
        bd_resp_header(req, "Cache-Control", "no-cache");
        bd_resp_header(req, "Vary", "Accept");
        bd_resp_send(req, 200, "application/json; charset=utf-8", text, strlen(text));
      }
    } else {
      json_t *v = text ? json_loads(text, 0, NULL) : NULL;
      bd_resp_header(req, "Vary", "Accept");
      verify_html(req, v, c->id);
      json_decref(v);
    }
  }
  bd_req_release(req);
}

void bd_biz_verify_page(bd_req_t *req) {
  cctx_t *c = cctx(req);
  const char *ref = bd_req_param(req, 0);
  snprintf(c->id, sizeof c->id, "%s", ref);
  if (strlen(ref) > 64) {
    bd_biz_not_found(req, ref);
    return;
  }
  const char *p[] = {c->id, bd_biz_base_url()};
  bd_app_query(req, &S_VERIFY, 2, p, on_verify, req);
}

/* --- GET /.well-known/batchd-keys.json -------------------------------------------------- */

static bd_pg_stmt_t S_KEYS = BD_PG_STMT(
    "SELECT key_id, public_key, biz_ts(created_at) FROM biz_signing_keys ORDER BY created_at, "
    "key_id");

static void on_keys(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  if (r->err) {
    bd_app_db_error(req, r);
    bd_req_release(req);
    return;
  }
  bd_buf_t b = BD_BUF_INIT;
  bd_jw_t w;
  bd_jw_init(&w, &b);
  bd_jw_obj(&w);
  bd_jw_kstr(&w, "current_key_id", g_key.key_id);
  bd_jw_key(&w, "keys");
  bd_jw_arr(&w);
  bool have_current = false;
  for (int i = 0; i < PQntuples(r->res) + 1; i++) {
    const char *id, *pk, *at;
    if (i < PQntuples(r->res)) {
      id = PQgetvalue(r->res, i, 0), pk = PQgetvalue(r->res, i, 1), at = PQgetvalue(r->res, i, 2);
      have_current |= strcmp(id, g_key.key_id) == 0;
    } else if (!have_current) {
      id = g_key.key_id, pk = g_pk_b64, at = NULL; /* not used to sign yet */
    } else {
      break;
    }
    bd_jw_obj(&w);
    bd_jw_kstr(&w, "key_id", id);
    bd_jw_kstr(&w, "algorithm", "Ed25519");
    bd_jw_kstr(&w, "public_key", pk);
    bd_jw_kstr(&w, "created_at", at);
    bd_jw_obj_end(&w);
  }
  bd_jw_arr_end(&w);
  bd_jw_obj_end(&w);
  bd_resp_header(req, "Cache-Control", "public, max-age=300");
  bd_resp_json(req, 200, &b);
  bd_req_release(req);
}

void bd_biz_keys(bd_req_t *req) { bd_app_query(req, &S_KEYS, 0, NULL, on_keys, req); }

const bd_sign_key_t *bd_biz_signing_key(void) { return &g_key; }

/* --- start-up ----------------------------------------------------------------------- */

void bd_biz_certs_init(void) {
  char err[512];
  if (bd_sign_key_load_or_create(bd_app.cfg.signing_key_file, &g_key, err, sizeof err) != 0) {
    /* refusing to start beats signing with an untrusted key or not at all */
    fprintf(stderr, "batchd: %s\n", err);
    exit(1);
  }
  bd_buf_t b = BD_BUF_INIT;
  bd_b64_encode(&b, g_key.pk, sizeof g_key.pk);
  snprintf(g_pk_b64, sizeof g_pk_b64, "%s", b.data);
  bd_buf_free(&b);
  int workers = (int)bd_app.cfg.workers;
  if (workers <= 0) workers = (int)sysconf(_SC_NPROCESSORS_ONLN); /* main.c's default */
  if (workers <= 0) workers = 2;
  g_chunk = BD_MIN(CHUNK_MAX, BD_MAX(CHUNK_MIN, 2 * workers));
  /* two batches at once: one renders while the other records */
  bd_jobs_register("cert.batch", run_job, 2);
}
