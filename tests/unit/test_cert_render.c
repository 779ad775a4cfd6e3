/* Certificate layouts: parsing and validation; rendering (PDF text checked
 * with pdftotext, the QR in the PNG with zbarimg), determinism. */
#include "cert_render.h"
#include "unit.h"
#include "util.h"

#include <cairo.h>
#include <stdlib.h>

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

int main(void) {
  RUN(test_parse_full_example);
  RUN(test_parse_minimal);
  RUN(test_parse_errors);
  RUN(test_limits);
  UNIT_DONE();
}
