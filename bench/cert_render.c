/* cert_render: certificates rendered per second on one thread, then through
 * the work queue (src/core/work.h) on the libuv thread pool with N items in
 * flight, as the cert.batch job runs them. Usage:
 *   cert_render [count] [workers] [issue|png|all] [signatories]
 * issue (default): what issuance renders, PDF + QR SVG; png: the PNG alone,
 * as GET .../png renders it on first request; all: the three, as issuance
 * did before the PNG became derived. signatories: 1 (default) or 2
 * signature elements. The JSON line also gives the bytes of one
 * certificate's artefacts. */
#include "cert_render.h"
#include "qr.h"
#include "util.h"
#include "work.h"

#include <cairo.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *LAYOUT =
    "{\"page\":{\"width\":842,\"height\":595},\"elements\":["
    "{\"type\":\"text\",\"x\":421,\"y\":60,\"text\":\"{{InstitutionName}}\",\"size\":20,\"align\":"
    "\"center\"},"
    "{\"type\":\"text\",\"x\":421,\"y\":120,\"text\":\"Certificate for {{RecipientsName}}\","
    "\"font\":\"Noto Serif\",\"size\":30,\"align\":\"center\",\"max_width\":700,\"bold\":true},"
    "{\"type\":\"text\",\"x\":60,\"y\":220,\"text\":\"Course: {{Course}}\",\"size\":16},"
    "{\"type\":\"text\",\"x\":782,\"y\":260,\"text\":\"Issued "
    "{{IssueDate}}\",\"size\":14,\"align\":\"right\"},"
    "{\"type\":\"qr\",\"x\":700,\"y\":440,\"size\":120},"
    "{\"type\":\"signature\",\"field\":\"signatory_1\",\"x\":100,\"y\":430,\"width\":160,"
    "\"height\":60}%s]}";
static const char *SIG2 =
    ",{\"type\":\"signature\",\"field\":\"signatory_2\",\"x\":400,\"y\":430,\"width\":160,"
    "\"height\":60}";

static bd_cert_layout_t *g_layout;
static bd_cert_image_t *g_sig;
static int g_done, g_failed, g_next, g_count;
static unsigned g_what = BD_CERT_PDF | BD_CERT_QR_SVG;
static size_t g_nsig = 1;
static size_t g_pdf_bytes, g_png_bytes, g_svg_bytes; /* of certificate 0 */

typedef struct {
  bd_work_t w;
  int i;
  int rc;
} item_t;

static double cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void render_one(int i, int *rc) {
  char name[64], url[96], ref[32];
  snprintf(name, sizeof name, "Recipient Número %d", i);
  snprintf(ref, sizeof ref, "CERT-%08d", i);
  snprintf(url, sizeof url, "https://certs.example.org/verify/%s", ref);
  bd_cert_signatory_t s[2] = {{"Ana Núñez", "Directora", g_sig}, {"Dr. Rita Registrar", "Registrar", g_sig}};
  json_t *custom = json_pack("{ss}", "Course", "Análisis Matemático");
  bd_cert_input_t in = {name,
                        "r@example.org",
                        "2025-02-15",
                        ref,
                        url,
                        "Université de Genève",
                        "Class of 2025",
                        custom,
                        s,
                        g_nsig};
  bd_cert_output_t out;
  char err[256];
  *rc = bd_cert_render_ex(g_layout, &in, g_what, &out, err, sizeof err);
  if (*rc) fprintf(stderr, "render: %s\n", err);
  if (i == 0) g_pdf_bytes = out.pdf.len, g_png_bytes = out.png.len, g_svg_bytes = out.qr_svg.len;
  bd_cert_output_free(&out);
  json_decref(custom);
}

static void work_fn(bd_work_t *w) {
  item_t *it = w->data;
  render_one(it->i, &it->rc);
}

/* Warm-up on every pool thread before the pooled measurement: each render
 * thread loads its own fonts on its first certificate (a fraction of a
 * second), which the server's long-lived threads have long done. The items
 * wait for each other, so each one holds a distinct thread. */
static atomic_int g_warm_started;
static int g_warm_total, g_warm_done;

static void warm_fn(bd_work_t *w) {
  atomic_fetch_add(&g_warm_started, 1);
  while (atomic_load(&g_warm_started) < g_warm_total) usleep(1000);
  int rc;
  render_one(0, &rc);
}

static void warm_after(bd_work_t *w, int status) {
  (void)status;
  free(w);
  g_warm_done++;
}

static void submit_next(void);
static void after_fn(bd_work_t *w, int status) {
  item_t *it = w->data;
  if (status || it->rc) g_failed++;
  g_done++;
  free(it);
  submit_next();
}

static void submit_next(void) {
  if (g_next >= g_count) return;
  item_t *it = bd_calloc(1, sizeof *it);
  it->i = g_next++;
  it->w.work = work_fn;
  it->w.after = after_fn;
  it->w.data = it;
  bd_work_submit(&it->w);
}

int main(int argc, char **argv) {
  int count = argc > 1 ? atoi(argv[1]) : 200;
  int workers = argc > 2 ? atoi(argv[2]) : 2;
  const char *mode = argc > 3 ? argv[3] : "issue";
  if (strcmp(mode, "png") == 0)
    g_what = BD_CERT_PNG;
  else if (strcmp(mode, "all") == 0)
    g_what = BD_CERT_ALL;
  else if (strcmp(mode, "issue") != 0)
    return fprintf(stderr, "mode: issue, png or all\n"), 2;
  g_nsig = argc > 4 && atoi(argv[4]) == 2 ? 2 : 1;
  char layout[2048];
  snprintf(layout, sizeof layout, LAYOUT, g_nsig == 2 ? SIG2 : "");
  json_error_t je;
  json_t *j = json_loads(layout, 0, &je);
  char err[256];
  g_layout = bd_cert_layout_parse(j, err, sizeof err);
  json_decref(j);
  if (!g_layout) return fprintf(stderr, "%s\n", err), 1;
  cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, 240, 80);
  bd_buf_t png = BD_BUF_INIT;
  cairo_t *cr = cairo_create(s);
  cairo_set_source_rgb(cr, 0, 0, 0.5);
  cairo_move_to(cr, 10, 60);
  cairo_curve_to(cr, 60, 0, 120, 80, 230, 20);
  cairo_stroke(cr);
  cairo_destroy(cr);
  if (bd_qr_png_encode(s, true, &png, err, sizeof err)) return 1;
  cairo_surface_destroy(s);
  g_sig = bd_cert_image_decode(png.data, png.len, err, sizeof err);
  bd_buf_free(&png);
  int rc;
  render_one(0, &rc); /* warm the fonts */
  uint64_t t0 = bd_now_ns();
  double c0 = cpu_s();
  for (int i = 0; i < count; i++) render_one(i, &rc);
  double single = count / ((bd_now_ns() - t0) / 1e9);
  double cpu_ms = (cpu_s() - c0) * 1000 / count;

  char env[16];
  snprintf(env, sizeof env, "%d", workers + 2);
  setenv("UV_THREADPOOL_SIZE", env, 1);
  uv_loop_t *loop = uv_default_loop();
  /* every thread of the pool (workers + 2, like batchd's) */
  bd_work_init(loop, workers + 2, 0);
  g_warm_total = workers + 2;
  for (int i = 0; i < g_warm_total; i++) {
    bd_work_t *w = calloc(1, sizeof *w);
    w->work = warm_fn;
    w->after = warm_after;
    bd_work_submit(w);
  }
  while (g_warm_done < g_warm_total) uv_run(loop, UV_RUN_ONCE);
  bd_work_init(loop, workers, 0);
  g_count = count;
  t0 = bd_now_ns();
  for (int i = 0; i < workers; i++) submit_next();
  uv_run(loop, UV_RUN_DEFAULT);
  double pooled = count / ((bd_now_ns() - t0) / 1e9);
  /* CPU time per certificate is what a loaded machine does not distort */
  printf("{\"mode\":\"%s\",\"signatories\":%zu,\"certificates\":%d,\"single_thread_per_s\":%.1f,"
         "\"cpu_ms_per_certificate\":%.2f,\"work_queue_workers\":%d,\"work_queue_per_s\":%.1f,"
         "\"failed\":%d,\"pdf_bytes\":%zu,\"png_bytes\":%zu,\"qr_svg_bytes\":%zu}\n",
         mode, g_nsig, count, single, cpu_ms, workers, pooled, g_failed, g_pdf_bytes, g_png_bytes,
         g_svg_bytes);
  bd_cert_image_free(g_sig);
  bd_cert_layout_free(g_layout);
  return g_failed != 0;
}
