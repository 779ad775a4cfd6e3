/* Certificate layouts: parsing and validation; rendering (PDF text checked
 * with pdftotext, the QR in the PNG with zbarimg), determinism. */
#include "cert_render.h"
#include "unit.h"
#include "util.h"

#include <cairo.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static cairo_status_t to_buf(void *closure, const unsigned char *data, unsigned int len) {
  bd_buf_append(closure, data, len);
  return CAIRO_STATUS_SUCCESS;
}

/* A w x h PNG of one colour as bytes. */
static void make_png(bd_buf_t *out, int w, int h, double r, double g, double b) {
  cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, w, h);
  cairo_t *cr = cairo_create(s);
  cairo_set_source_rgb(cr, r, g, b);
  cairo_paint(cr);
  cairo_destroy(cr);
  cairo_surface_write_to_png_stream(s, to_buf, out);
  cairo_surface_destroy(s);
}

/* "data:image/png;base64,..." of a w x h PNG. */
static char *png_data_url(int w, int h) {
  bd_buf_t png = BD_BUF_INIT, url = BD_BUF_INIT;
  make_png(&png, w, h, 0.1, 0.2, 0.6);
  bd_buf_puts(&url, "data:image/png;base64,");
  bd_b64_encode(&url, png.data, png.len);
  bd_buf_free(&png);
  return bd_buf_detach(&url, NULL);
}

static json_t *js(const char *text) {
  json_error_t e;
  json_t *j = json_loads(text, 0, &e);
  if (!j) fprintf(stderr, "bad test JSON: %s: %s\n", e.text, text);
  return j;
}

/* Parses text; returns the layout or NULL with the error in err. */
static bd_cert_layout_t *parse(const char *text, char *err, size_t errsz) {
  json_t *j = js(text);
  bd_cert_layout_t *l = j ? bd_cert_layout_parse(j, err, errsz) : NULL;
  json_decref(j);
  return l;
}

/* Expects text to be rejected with exactly msg. */
static void expect_err(const char *text, const char *msg) {
  char err[256] = "";
  bd_cert_layout_t *l = parse(text, err, sizeof err);
  CHECK(l == NULL);
  if (strcmp(err, msg) != 0) fprintf(stderr, "  for %s\n", text);
  CHECK_STR(err, msg);
  bd_cert_layout_free(l);
}

#define PAGE "\"page\":{\"width\":842,\"height\":595}"

static void test_parse_full_example(void) {
  char *img = png_data_url(8, 4);
  bd_buf_t t = BD_BUF_INIT;
  bd_buf_printf(&t,
                "{" PAGE ",\"background\":{\"color\":\"#ffffff\",\"image\":\"%s\"},"
                "\"elements\":["
                "{\"type\":\"text\",\"x\":421,\"y\":120,\"text\":\"Certificate for "
                "{{RecipientsName}}\",\"font\":\"Noto Serif\",\"size\":36,\"color\":\"#1a1a1a\","
                "\"align\":\"center\",\"max_width\":700,\"bold\":false,\"italic\":false},"
                "{\"type\":\"image\",\"x\":40,\"y\":40,\"width\":120,\"height\":60,\"src\":\"%s\"},"
                "{\"type\":\"qr\",\"x\":700,\"y\":450,\"size\":100},"
                "{\"type\":\"signature\",\"field\":\"signatory_2\",\"x\":450,\"y\":470,"
                "\"width\":160,\"height\":60},"
                "{\"type\":\"signature\",\"field\":\"signatory_1\",\"x\":150,\"y\":470,"
                "\"width\":160,\"height\":60},"
                "{\"type\":\"signature\",\"field\":\"signatory_1\",\"x\":150,\"y\":20,"
                "\"width\":60,\"height\":20}"
                "]}",
                img, img);
  char err[256] = "";
  bd_cert_layout_t *l = parse(t.data, err, sizeof err);
  CHECK_STR(err, "");
  CHECK(l != NULL);
  if (l) {
    CHECK_INT(bd_cert_layout_signatory_count(l), 2);
    CHECK_STR(bd_cert_layout_signatory_field(l, 0), "signatory_1");
    CHECK_STR(bd_cert_layout_signatory_field(l, 1), "signatory_2");
    CHECK(bd_cert_layout_signatory_field(l, 2) == NULL);
    CHECK(bd_cert_layout_width(l) == 842);
    CHECK(bd_cert_layout_height(l) == 595);
  }
  bd_cert_layout_free(l);
  bd_buf_free(&t);
  free(img);
}

static void test_parse_minimal(void) {
  char err[256] = "";
  bd_cert_layout_t *l =
      parse("{" PAGE ",\"elements\":[{\"type\":\"text\",\"x\":1,\"y\":2,\"text\":\"Hi\"}]}", err,
            sizeof err);
  CHECK(l != NULL);
  if (l) CHECK_INT(bd_cert_layout_signatory_count(l), 0);
  bd_cert_layout_free(l);
  /* #rgb colours, reals, null background */
  l = parse("{\"page\":{\"width\":72,\"height\":5000},\"background\":null,\"elements\":[{\"type\":"
            "\"qr\",\"x\":0.5,\"y\":-3}, {\"type\":\"text\",\"x\":1,\"y\":2,\"text\":\"x\","
            "\"color\":\"#AbC\"}]}",
            err, sizeof err);
  CHECK_STR(err, "");
  CHECK(l != NULL);
  bd_cert_layout_free(l);
}

static void test_parse_errors(void) {
  expect_err("[]", "layout must be an object");
  expect_err("{\"elements\":[]}", "layout.page is required");
  expect_err("{\"page\":1,\"elements\":[]}", "layout.page must be an object");
  expect_err("{\"page\":{\"width\":842},\"elements\":[]}", "layout.page.height is required");
  expect_err("{\"page\":{\"width\":71,\"height\":595},\"elements\":[]}",
             "layout.page.width must be between 72 and 5000");
  expect_err("{\"page\":{\"width\":\"842\",\"height\":595},\"elements\":[]}",
             "layout.page.width must be a number");
  expect_err("{\"page\":{\"width\":842,\"height\":595,\"depth\":1},\"elements\":[]}",
             "layout.page.depth is not a known member");
  expect_err("{" PAGE ",\"extra\":1,\"elements\":[]}", "layout.extra is not a known member");
  expect_err("{" PAGE "}", "layout.elements is required");
  expect_err("{" PAGE ",\"elements\":{}}", "layout.elements must be an array");
  expect_err("{" PAGE ",\"elements\":[]}", "layout.elements must have 1 to 200 elements");
  expect_err("{" PAGE ",\"background\":{\"color\":\"white\"},\"elements\":[]}",
             "layout.background.color must be a colour like #1a1a1a or #fff");
  expect_err("{" PAGE ",\"background\":{\"image\":\"http://x/y.png\"},\"elements\":[]}",
             "layout.background.image must be a data:image/png;base64,... URL");
  expect_err("{" PAGE
             ",\"background\":{\"image\":\"data:image/jpeg;base64,AAAA\"},\"elements\":[]}",
             "layout.background.image must be a data:image/png;base64,... URL");
  expect_err("{" PAGE ",\"background\":{\"image\":\"data:image/png;base64,!!!\"},\"elements\":[]}",
             "layout.background.image is not valid base64");
  expect_err("{" PAGE
             ",\"background\":{\"image\":\"data:image/png;base64,AAAAAAAA\"},\"elements\":[]}",
             "layout.background.image is not a readable PNG image of at most 4096x4096 pixels");
  expect_err("{" PAGE ",\"elements\":[1]}", "layout.elements.0 must be an object");
  expect_err("{" PAGE ",\"elements\":[{\"x\":1}]}", "layout.elements.0.type is required");
  expect_err("{" PAGE ",\"elements\":[{\"type\":\"circle\"}]}",
             "layout.elements.0.type must be text, image, qr or signature");
  const char *t1 = "{\"type\":\"text\",\"x\":1,\"y\":2,\"text\":\"a\"}";
  char buf[1024];
  snprintf(buf, sizeof buf,
           "{" PAGE ",\"elements\":[%s,%s,{\"type\":\"text\",\"x\":1,\"y\":2,\"text\":\"a\","
           "\"size\":401}]}",
           t1, t1);
  expect_err(buf, "layout.elements.2.size must be between 1 and 400");
  expect_err("{" PAGE ",\"elements\":[{\"type\":\"text\",\"x\":1,\"y\":2}]}",
             "layout.elements.0.text is required");
  expect_err("{" PAGE ",\"elements\":[{\"type\":\"text\",\"y\":2,\"text\":\"a\"}]}",
             "layout.elements.0.x is required");
  expect_err("{" PAGE ",\"elements\":[{\"type\":\"text\",\"x\":1,\"y\":2,\"text\":\"\"}]}",
             "layout.elements.0.text must be 1 to 2000 bytes long");
  expect_err("{" PAGE ",\"elements\":[{\"type\":\"text\",\"x\":1,\"y\":2,\"text\":\"a\","
             "\"align\":\"justify\"}]}",
             "layout.elements.0.align must be left, center or right");
  expect_err("{" PAGE ",\"elements\":[{\"type\":\"text\",\"x\":1,\"y\":2,\"text\":\"a\","
             "\"bold\":1}]}",
             "layout.elements.0.bold must be true or false");
  expect_err("{" PAGE ",\"elements\":[{\"type\":\"text\",\"x\":1,\"y\":2,\"text\":\"a\","
             "\"font\":\"\"}]}",
             "layout.elements.0.font must be 1 to 100 bytes long");
  expect_err("{" PAGE ",\"elements\":[{\"type\":\"text\",\"x\":1,\"y\":2,\"text\":\"a\","
             "\"max_width\":0}]}",
             "layout.elements.0.max_width must be between 1 and 5000");
  expect_err("{" PAGE ",\"elements\":[{\"type\":\"text\",\"x\":1,\"y\":2,\"text\":\"a\","
             "\"colour\":\"#000\"}]}",
             "layout.elements.0.colour is not a known member");
  expect_err("{" PAGE ",\"elements\":[{\"type\":\"text\",\"x\":1e9,\"y\":2,\"text\":\"a\"}]}",
             "layout.elements.0.x must be between -5000 and 10000");
  expect_err("{" PAGE ",\"elements\":[{\"type\":\"qr\",\"x\":1,\"y\":2,\"size\":35}]}",
             "layout.elements.0.size must be between 36 and 5000");
  expect_err("{" PAGE ",\"elements\":[{\"type\":\"image\",\"x\":1,\"y\":2,\"width\":5,"
             "\"height\":5}]}",
             "layout.elements.0.src is required");
  expect_err("{" PAGE ",\"elements\":[{\"type\":\"image\",\"x\":1,\"y\":2,\"width\":0,"
             "\"height\":5,\"src\":\"data:image/png;base64,\"}]}",
             "layout.elements.0.width must be between 0.01 and 5000");
  expect_err("{" PAGE ",\"elements\":[{\"type\":\"signature\",\"x\":1,\"y\":2,\"width\":5,"
             "\"height\":5}]}",
             "layout.elements.0.field is required");
  const char *bad_fields[] = {"signatory_0",  "signatory_01", "signatory_",
                              "signatory_1a", "Signatory_1",  "signatory_1000"};
  for (size_t i = 0; i < BD_ARRAY_LEN(bad_fields); i++) {
    snprintf(buf, sizeof buf,
             "{" PAGE ",\"elements\":[{\"type\":\"signature\",\"field\":\"%s\",\"x\":1,\"y\":2,"
             "\"width\":5,\"height\":5}]}",
             bad_fields[i]);
    expect_err(buf, "layout.elements.0.field must be signatory_N with N from 1");
  }
  expect_err("{" PAGE ",\"elements\":[{\"type\":\"signature\",\"field\":\"signatory_1\",\"x\":1,"
             "\"y\":2,\"width\":5,\"height\":5},{\"type\":\"signature\",\"field\":\"signatory_3\","
             "\"x\":1,\"y\":2,\"width\":5,\"height\":5}]}",
             "layout.elements: signatory fields must be signatory_1 to signatory_N without gaps "
             "(signatory_2 is missing)");
  expect_err("{" PAGE ",\"elements\":[{\"type\":\"signature\",\"field\":\"signatory_2\",\"x\":1,"
             "\"y\":2,\"width\":5,\"height\":5}]}",
             "layout.elements: signatory fields must be signatory_1 to signatory_N without gaps "
             "(signatory_1 is missing)");
}

static void test_limits(void) {
  /* 201 elements */
  bd_buf_t t = BD_BUF_INIT;
  bd_buf_puts(&t, "{" PAGE ",\"elements\":[");
  for (int i = 0; i < 201; i++)
    bd_buf_printf(&t, "%s{\"type\":\"qr\",\"x\":1,\"y\":2}", i ? "," : "");
  bd_buf_puts(&t, "]}");
  expect_err(t.data, "layout.elements must have 1 to 200 elements");
  /* exactly 200 is fine */
  bd_buf_reset(&t);
  bd_buf_puts(&t, "{" PAGE ",\"elements\":[");
  for (int i = 0; i < 200; i++)
    bd_buf_printf(&t, "%s{\"type\":\"qr\",\"x\":1,\"y\":2}", i ? "," : "");
  bd_buf_puts(&t, "]}");
  char err[256] = "";
  bd_cert_layout_t *l = parse(t.data, err, sizeof err);
  CHECK(l != NULL);
  bd_cert_layout_free(l);
  /* text of 2000 bytes passes, 2001 fails */
  for (int n = 2000; n <= 2001; n++) {
    bd_buf_reset(&t);
    bd_buf_puts(&t, "{" PAGE ",\"elements\":[{\"type\":\"text\",\"x\":1,\"y\":2,\"text\":\"");
    for (int i = 0; i < n; i++) bd_buf_putc(&t, 'a');
    bd_buf_puts(&t, "\"}]}");
    l = parse(t.data, err, sizeof err);
    CHECK((l != NULL) == (n == 2000));
    if (n == 2001) CHECK_STR(err, "layout.elements.0.text must be 1 to 2000 bytes long");
    bd_cert_layout_free(l);
  }
  /* a caller's tighter limits: image bytes and element count */
  char *img = png_data_url(64, 64);
  bd_buf_reset(&t);
  bd_buf_printf(&t,
                "{" PAGE ",\"elements\":[{\"type\":\"image\",\"x\":1,\"y\":2,\"width\":5,"
                "\"height\":5,\"src\":\"%s\"},{\"type\":\"image\",\"x\":1,\"y\":2,\"width\":5,"
                "\"height\":5,\"src\":\"%s\"}]}",
                img, img);
  json_t *j = js(t.data);
  bd_buf_t raw = BD_BUF_INIT;
  const char *b64 = strchr(img, ',') + 1;
  CHECK(bd_b64_decode(&raw, b64, strlen(b64)));
  bd_cert_limits_t lim = {0};
  lim.max_image_bytes = raw.len - 1;
  l = bd_cert_layout_parse_ex(j, &lim, err, sizeof err);
  CHECK(l == NULL);
  char want[200];
  snprintf(want, sizeof want, "layout.elements.0.src must hold at most %zu bytes of PNG",
           raw.len - 1);
  CHECK_STR(err, want);
  lim.max_image_bytes = raw.len;
  lim.max_layout_image_bytes = raw.len * 2 - 1;
  l = bd_cert_layout_parse_ex(j, &lim, err, sizeof err);
  CHECK(l == NULL);
  snprintf(want, sizeof want,
           "layout.elements.1.src: the images of a layout may total at most %zu bytes",
           raw.len * 2 - 1);
  CHECK_STR(err, want);
  lim.max_layout_image_bytes = raw.len * 2;
  l = bd_cert_layout_parse_ex(j, &lim, err, sizeof err);
  CHECK(l != NULL);
  bd_cert_layout_free(l);
  lim = (bd_cert_limits_t){.max_elements = 1};
  l = bd_cert_layout_parse_ex(j, &lim, err, sizeof err);
  CHECK(l == NULL);
  CHECK_STR(err, "layout.elements must have 1 to 1 elements");
  json_decref(j);
  bd_buf_free(&raw);
  free(img);
  /* an image over 4096 px on a side is refused from its header */
  img = png_data_url(4097, 1);
  bd_buf_reset(&t);
  bd_buf_printf(&t,
                "{" PAGE ",\"background\":{\"image\":\"%s\"},\"elements\":[{\"type\":\"qr\","
                "\"x\":1,\"y\":2}]}",
                img);
  expect_err(t.data,
             "layout.background.image is not a readable PNG image of at most 4096x4096 pixels");
  free(img);
  bd_buf_free(&t);
}

/* Writes bytes to a fresh file under the temporary directory; returns its path. */
static char *tmp_write(const char *suffix, const void *p, size_t n) {
  const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  char *path = bd_malloc(strlen(dir) + 64);
  sprintf(path, "%s/bdcertXXXXXX%s", dir, suffix);
  int fd = mkstemps(path, (int)strlen(suffix));
  CHECK(fd >= 0);
  if (fd >= 0) {
    CHECK(write(fd, p, n) == (ssize_t)n);
    close(fd);
  }
  return path;
}

/* Runs a shell command and returns its stdout. */
static char *run(const char *cmd) {
  FILE *f = popen(cmd, "r");
  bd_buf_t out = BD_BUF_INIT;
  char chunk[4096];
  size_t n;
  while (f && (n = fread(chunk, 1, sizeof chunk, f)) > 0) bd_buf_append(&out, chunk, n);
  if (f) pclose(f);
  return bd_buf_detach(&out, NULL);
}

static char *pdf_text(const bd_buf_t *pdf) {
  char *path = tmp_write(".pdf", pdf->data, pdf->len), cmd[512];
  snprintf(cmd, sizeof cmd, "pdftotext -q -layout -enc UTF-8 %s - 2>/dev/null", path);
  char *t = run(cmd);
  unlink(path);
  free(path);
  return t;
}

static char *png_qr(const bd_buf_t *png) {
  char *path = tmp_write(".png", png->data, png->len), cmd[512];
  snprintf(cmd, sizeof cmd, "zbarimg -q --raw %s 2>/dev/null", path);
  char *t = run(cmd);
  unlink(path);
  free(path);
  return t;
}

/* Collapses runs of white space to one space and trims: pdftotext's layout
 * spacing is not what we test. */
static void squeeze(char *s) {
  char *o = s;
  bool sp = true;
  for (char *p = s; *p; p++) {
    bool w = *p == ' ' || *p == '\n' || *p == '\t' || *p == '\f' || *p == '\r';
    if (w && sp) continue;
    *o++ = w ? ' ' : *p;
    sp = w;
  }
  if (o > s && o[-1] == ' ') o--;
  *o = '\0';
}

static const char *CERT_LAYOUT =
    "{\"page\":{\"width\":842,\"height\":595},\"background\":{\"color\":\"#fdfbf5\"},"
    "\"elements\":["
    "{\"type\":\"text\",\"x\":421,\"y\":60,\"text\":\"{{InstitutionName}}\",\"size\":20,"
    "\"align\":\"center\"},"
    "{\"type\":\"text\",\"x\":421,\"y\":120,\"text\":\"Certificate for {{RecipientsName}}\","
    "\"font\":\"Noto Serif\",\"size\":30,\"color\":\"#1a1a1a\",\"align\":\"center\","
    "\"max_width\":700,\"bold\":true},"
    "{\"type\":\"text\",\"x\":60,\"y\":220,\"text\":\"Course: {{Course Name}}{{Unknown}}\","
    "\"size\":16},"
    "{\"type\":\"text\",\"x\":782,\"y\":260,\"text\":\"Issued {{IssueDate}}\",\"size\":14,"
    "\"align\":\"right\",\"italic\":true},"
    "{\"type\":\"text\",\"x\":60,\"y\":300,\"text\":\"Ref {{ ReferenceId }} / {{BatchName}}\","
    "\"size\":12},"
    "{\"type\":\"qr\",\"x\":700,\"y\":440,\"size\":120},"
    "{\"type\":\"signature\",\"field\":\"signatory_1\",\"x\":100,\"y\":430,\"width\":160,"
    "\"height\":60},"
    "{\"type\":\"signature\",\"field\":\"signatory_2\",\"x\":400,\"y\":430,\"width\":160,"
    "\"height\":60,\"size\":11}"
    "]}";

typedef struct {
  bd_cert_layout_t *layout;
  bd_cert_image_t *sig;
  bd_cert_signatory_t sigs[2];
  json_t *custom;
  bd_cert_input_t in;
} fixture_t;

static void fixture(fixture_t *f, const char *name, const char *course, const char *inst) {
  char err[256] = "";
  memset(f, 0, sizeof *f);
  f->layout = parse(CERT_LAYOUT, err, sizeof err);
  CHECK_STR(err, "");
  bd_buf_t png = BD_BUF_INIT;
  make_png(&png, 120, 40, 0.1, 0.1, 0.5);
  f->sig = bd_cert_image_decode(png.data, png.len, err, sizeof err);
  CHECK(f->sig != NULL);
  bd_buf_free(&png);
  f->sigs[0] = (bd_cert_signatory_t){"Ana Núñez", "Directora", f->sig};
  f->sigs[1] = (bd_cert_signatory_t){"Faizan Ali", "Software Developer", NULL};
  f->custom = json_pack("{ss}", "Course Name", course);
  f->in = (bd_cert_input_t){.recipient_name = name,
                            .recipient_email = "r@example.com",
                            .issue_date = "2025-02-15",
                            .reference_id = "CERT-7QX2-9KDA",
                            .verification_url = "http://127.0.0.1:8080/verify/CERT-7QX2-9KDA",
                            .institution_name = inst,
                            .batch_name = "Class 10th, 2024",
                            .custom_data = f->custom,
                            .signatories = f->sigs,
                            .nsignatories = 2};
}

static void fixture_free(fixture_t *f) {
  bd_cert_layout_free(f->layout);
  bd_cert_image_free(f->sig);
  json_decref(f->custom);
}

/* Renders and checks the PDF contains every string of want (exactly, after
 * white space is squeezed), the PNG's QR decodes to the verification URL. */
static void render_and_check(fixture_t *f, const char *const *want, size_t nwant) {
  bd_cert_output_t out;
  char err[256] = "";
  int rc = bd_cert_render(f->layout, &f->in, &out, err, sizeof err);
  CHECK_INT(rc, 0);
  CHECK_STR(err, "");
  if (rc == 0) {
    CHECK(out.pdf.len > 1000 && memcmp(out.pdf.data, "%PDF-", 5) == 0);
    CHECK(out.png.len > 1000 && memcmp(out.png.data, "\x89PNG", 4) == 0);
    /* a mostly flat page compresses well (an encoder setting that cannot
     * match RGB repeats made these 1.5 MB) */
    CHECK(out.png.len < 400 * 1024);
    CHECK_INT(out.png_width, 1684);
    CHECK_INT(out.png_height, 1190);
    /* IHDR says the same */
    const unsigned char *p = (const unsigned char *)out.png.data;
    CHECK_INT((p[16] << 24 | p[17] << 16 | p[18] << 8 | p[19]), 1684);
    CHECK_INT((p[20] << 24 | p[21] << 16 | p[22] << 8 | p[23]), 1190);
    char *text = pdf_text(&out.pdf);
    squeeze(text);
    for (size_t i = 0; i < nwant; i++) {
      if (!strstr(text, want[i]))
        fprintf(stderr, "  missing \"%s\" in PDF text: %s\n", want[i], text);
      CHECK(strstr(text, want[i]) != NULL);
    }
    free(text);
    char *qr = png_qr(&out.png);
    CHECK_STR(qr, "http://127.0.0.1:8080/verify/CERT-7QX2-9KDA\n");
    free(qr);
    CHECK(strstr(out.qr_svg.data, "<svg") != NULL);
    char h[65];
    bd_sha256_hex(h, out.pdf.data, out.pdf.len);
    CHECK_STR(out.pdf_sha256, h);
    bd_sha256_hex(h, out.png.data, out.png.len);
    CHECK_STR(out.png_sha256, h);
  }
  bd_cert_output_free(&out);
}

static void test_render_latin(void) {
  fixture_t f;
  fixture(&f, "José Ñúñez-Çelik", "Análisis Matemático", "Université de Genève");
  const char *want[] = {"Université de Genève",
                        "Certificate for José Ñúñez-Çelik",
                        "Course: Análisis Matemático",
                        "Issued 15-02-2025",
                        "Ref CERT-7QX2-9KDA / Class 10th, 2024",
                        "Ana Núñez",
                        "Directora",
                        "Faizan Ali",
                        "Software Developer"};
  render_and_check(&f, want, BD_ARRAY_LEN(want));
  fixture_free(&f);
}

static void test_render_arabic(void) {
  fixture_t f;
  fixture(&f, "محمد عبد الله", "الرياضيات", "جامعة القاهرة");
  const char *want[] = {"محمد عبد الله", "الرياضيات", "جامعة القاهرة", "Issued 15-02-2025"};
  render_and_check(&f, want, BD_ARRAY_LEN(want));
  fixture_free(&f);
}

static void test_render_cjk(void) {
  fixture_t f;
  fixture(&f, "山田太郎", "数学基础", "东京大学");
  const char *want[] = {"Certificate for 山田太郎", "Course: 数学基础", "东京大学",
                        "Issued 15-02-2025"};
  render_and_check(&f, want, BD_ARRAY_LEN(want));
  fixture_free(&f);
}

static void test_render_wraps(void) {
  /* a long name wraps inside max_width: two lines, both in the PDF */
  fixture_t f;
  fixture(&f, "Alexandrina Wilhelmina Maximiliana Konstantinopoulou-Papadimitriou", "x", "y");
  bd_cert_output_t out;
  char err[256] = "";
  CHECK_INT(bd_cert_render(f.layout, &f.in, &out, err, sizeof err), 0);
  char *text = pdf_text(&out.pdf);
  /* the line breaks after "Konstantinopoulou-" (pango breaks after a
   * hyphen); the next line starts with "Papadimitriou" */
  CHECK(strstr(text, "Maximiliana Konstantinopoulou-\n") != NULL ||
        strstr(text, "Maximiliana Konstantinopoulou- ") != NULL);
  CHECK(strstr(text, "Papadimitriou") != NULL);
  CHECK(strstr(text, "Certificate for Alexandrina Wilhelmina Maximiliana Konstantinopoulou") ==
        NULL);
  free(text);
  bd_cert_output_free(&out);
  fixture_free(&f);
}

static void test_render_deterministic(void) {
  fixture_t f;
  fixture(&f, "José", "Álgebra", "Institut");
  bd_cert_output_t a, b;
  char err[256] = "";
  CHECK_INT(bd_cert_render(f.layout, &f.in, &a, err, sizeof err), 0);
  CHECK_INT(bd_cert_render(f.layout, &f.in, &b, err, sizeof err), 0);
  CHECK_STR(a.pdf_sha256, b.pdf_sha256);
  CHECK_STR(a.png_sha256, b.png_sha256);
  CHECK(a.pdf.len == b.pdf.len && memcmp(a.pdf.data, b.pdf.data, a.pdf.len) == 0);
  /* the creation date comes from the issue date */
  /* (cairo 1.16 writes the date without the "D:" prefix) */
  CHECK(memmem(a.pdf.data, a.pdf.len, "/CreationDate (20250215000000Z)", 31) != NULL);
  bd_cert_output_free(&b);
  /* another recipient: different bytes */
  f.in.recipient_name = "Josée";
  CHECK_INT(bd_cert_render(f.layout, &f.in, &b, err, sizeof err), 0);
  CHECK(strcmp(a.pdf_sha256, b.pdf_sha256) != 0);
  CHECK(strcmp(a.png_sha256, b.png_sha256) != 0);
  bd_cert_output_free(&a);
  bd_cert_output_free(&b);
  fixture_free(&f);
}

static void test_render_errors(void) {
  fixture_t f;
  fixture(&f, "A", "B", "C");
  bd_cert_output_t out;
  char err[256] = "";
  f.in.issue_date = "2025-02-30";
  CHECK_INT(bd_cert_render(f.layout, &f.in, &out, err, sizeof err), -1);
  CHECK_STR(err, "the issue date is not a valid YYYY-MM-DD date");
  bd_cert_output_free(&out);
  f.in.issue_date = "2024-02-29";
  f.in.nsignatories = 1;
  CHECK_INT(bd_cert_render(f.layout, &f.in, &out, err, sizeof err), -1);
  CHECK_STR(err, "the layout needs 2 signatories, 1 given");
  bd_cert_output_free(&out);
  /* a CSV field may be 64 KiB: a text over 4000 bytes once filled in fails */
  bd_buf_t big = BD_BUF_INIT;
  for (int i = 0; i < 3985; i++) bd_buf_putc(&big, 'x'); /* + "Certificate for " = 4001 */
  f.in.nsignatories = 2;
  f.in.recipient_name = big.data;
  CHECK_INT(bd_cert_render(f.layout, &f.in, &out, err, sizeof err), -1);
  CHECK_STR(
      err, "the text of layout.elements.1 is 4001 bytes long with its placeholders (at most 4000)");
  bd_cert_output_free(&out);
  big.data[big.len - 1] = '\0'; /* 4000: fine */
  CHECK_INT(bd_cert_render(f.layout, &f.in, &out, err, sizeof err), 0);
  bd_cert_output_free(&out);
  f.in.recipient_name = "A";
  bd_buf_free(&big);
  bd_buf_t junk = BD_BUF_INIT;
  bd_buf_puts(&junk, "not a png at all, not a png at all, not a png");
  CHECK(bd_cert_image_decode(junk.data, junk.len, err, sizeof err) == NULL);
  CHECK_STR(err, "the signature is not a readable PNG image of at most 4096x4096 pixels");
  bd_buf_free(&junk);
  fixture_free(&f);
}

static void test_placeholders(void) {
  fixture_t f;
  fixture(&f, "N", "Maths", "I");
  bd_buf_t t = BD_BUF_INIT;
  CHECK(bd_cert_layout_text(f.layout, 2, &f.in, &t));
  CHECK_STR(t.data, "Course: Maths"); /* {{Unknown}} is empty */
  bd_buf_reset(&t);
  CHECK(bd_cert_layout_text(f.layout, 4, &f.in, &t));
  CHECK_STR(t.data, "Ref CERT-7QX2-9KDA / Class 10th, 2024");
  CHECK(!bd_cert_layout_text(f.layout, 5, &f.in, &t)); /* the qr element */
  fixture_free(&f);
  char err[256] = "";
  bd_cert_layout_t *l =
      parse("{" PAGE
            ",\"elements\":[{\"type\":\"text\",\"x\":1,\"y\":2,\"text\":\"a {{ b {{RecipientsName}}"
            " {{}} {{ RecipientsEmail }}}} {{IssueDate\"}]}",
            err, sizeof err);
  CHECK(l != NULL);
  bd_cert_input_t in = {
      .recipient_name = "Zoë", .recipient_email = "z@x.org", .issue_date = "2026-12-01"};
  bd_buf_reset(&t);
  CHECK(l && bd_cert_layout_text(l, 0, &in, &t));
  /* "{{ b {{RecipientsName}}": the name may not hold "{{"... it is "b {{RecipientsName" */
  CHECK_STR(t.data, "a  {{}} z@x.org}} {{IssueDate");
  bd_buf_free(&t);
  bd_cert_layout_free(l);
}

/* Threads render from one shared layout at once, each with its own font
 * map: every thread gets the bytes a single thread gets. */
typedef struct {
  fixture_t *f;
  char pdf[65], png[65];
  int rc;
} thr_t;

static void *thr_main(void *arg) {
  thr_t *t = arg;
  t->rc = 0;
  for (int i = 0; i < 3 && t->rc == 0; i++) {
    bd_cert_output_t out;
    char err[256];
    t->rc = bd_cert_render(t->f->layout, &t->f->in, &out, err, sizeof err);
    if (t->rc == 0 && i > 0 && (strcmp(t->pdf, out.pdf_sha256) || strcmp(t->png, out.png_sha256)))
      t->rc = 2;
    memcpy(t->pdf, out.pdf_sha256, 65);
    memcpy(t->png, out.png_sha256, 65);
    bd_cert_output_free(&out);
  }
  return NULL;
}

static void test_render_threads(void) {
  fixture_t f;
  fixture(&f, "山田 محمد José", "Álgebra", "東京大学");
  bd_cert_output_t ref;
  char err[256];
  CHECK_INT(bd_cert_render(f.layout, &f.in, &ref, err, sizeof err), 0);
  thr_t t[3];
  pthread_t th[3];
  for (int i = 0; i < 3; i++) {
    t[i].f = &f;
    CHECK(pthread_create(&th[i], NULL, thr_main, &t[i]) == 0);
  }
  for (int i = 0; i < 3; i++) {
    pthread_join(th[i], NULL);
    CHECK_INT(t[i].rc, 0);
    CHECK_STR(t[i].pdf, ref.pdf_sha256);
    CHECK_STR(t[i].png, ref.png_sha256);
  }
  bd_cert_output_free(&ref);
  fixture_free(&f);
}

int main(void) {
  RUN(test_parse_full_example);
  RUN(test_parse_minimal);
  RUN(test_parse_errors);
  RUN(test_limits);
  RUN(test_placeholders);
  RUN(test_render_latin);
  RUN(test_render_arabic);
  RUN(test_render_cjk);
  RUN(test_render_wraps);
  RUN(test_render_deterministic);
  RUN(test_render_errors);
  RUN(test_render_threads);
  bd_cert_render_shutdown();
  UNIT_DONE();
}
