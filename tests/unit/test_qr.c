/* test_qr.c: payloads, designs and rendering (src/render/qr.c, src/render/qr_render.c).
 *
 * Every rendered code is decoded by an independent decoder, zbarimg
 * (zbar-tools), and must give back exactly its payload. PDFs are rasterised
 * with pdftoppm (poppler-utils), SVGs with librsvg (linked by batchd_core
 * for SVG logos). The external tools run on temporary files under $TMPDIR.
 */
#include "qr.h"
#include "qr_logo.h"
#include "qr_scan.h"
#include "util.h"

#include "unit.h"

#include <cairo.h>
#include <librsvg/rsvg.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

/* --- helpers ---------------------------------------------------------------------- */

static const char *tmpdir(void) {
  const char *t = getenv("TMPDIR");
  return t && *t ? t : "/tmp";
}

/* A fresh temporary file name with the given suffix (the file exists). */
static void tmpname(char *out, size_t n, const char *suffix) {
  snprintf(out, n, "%s/bd_test_qr_XXXXXX%s", tmpdir(), suffix);
  int fd = mkstemps(out, (int)strlen(suffix));
  if (fd >= 0) close(fd);
}

static bool write_file(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) return false;
  bool ok = fwrite(p, 1, n, f) == n;
  return fclose(f) == 0 && ok;
}

/* Runs a command and returns its standard output (malloc'd). */
static char *run(const char *cmd) {
  FILE *p = popen(cmd, "r");
  if (!p) return NULL;
  bd_buf_t b = BD_BUF_INIT;
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, p)) > 0) bd_buf_append(&b, chunk, n);
  pclose(p);
  return bd_buf_detach(&b, NULL);
}

/* Decodes the QR code in a PNG file with zbarimg; the payload, without the
 * newline zbarimg adds (malloc'd; NULL when nothing was found). */
static char *zbar_file(const char *png_path) {
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "zbarimg --raw -q -Sdisable -Sqrcode.enable '%s' 2>/dev/null",
           png_path);
  char *s = run(cmd);
  if (s && !*s) {
    free(s);
    return NULL;
  }
  size_t n = s ? strlen(s) : 0;
  if (n && s[n - 1] == '\n') s[n - 1] = '\0';
  return s;
}

static char *zbar_png(const void *png, size_t n) {
  char path[512];
  tmpname(path, sizeof path, ".png");
  char *r = write_file(path, png, n) ? zbar_file(path) : NULL;
  unlink(path);
  return r;
}

/* PNG file → composited onto opaque white → decoded (transparent codes
 * sit on white paper; zbar would composite onto black). Also reports
 * whether the top-left pixel was fully transparent. */
static char *zbar_png_on_white(const void *png, size_t n, bool *corner_transparent) {
  char path[512];
  tmpname(path, sizeof path, ".png");
  char *r = NULL;
  if (write_file(path, png, n)) {
    cairo_surface_t *img = cairo_image_surface_create_from_png(path);
    if (cairo_surface_status(img) == CAIRO_STATUS_SUCCESS) {
      cairo_surface_flush(img);
      const uint32_t *px = (const uint32_t *)(const void *)cairo_image_surface_get_data(img);
      *corner_transparent =
          (px[0] >> 24) == 0 && cairo_image_surface_get_format(img) == CAIRO_FORMAT_ARGB32;
      int w = cairo_image_surface_get_width(img), h = cairo_image_surface_get_height(img);
      cairo_surface_t *flat = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
      cairo_t *cr = cairo_create(flat);
      cairo_set_source_rgb(cr, 1, 1, 1);
      cairo_paint(cr);
      cairo_set_source_surface(cr, img, 0, 0);
      cairo_paint(cr);
      cairo_destroy(cr);
      cairo_surface_write_to_png(flat, path);
      cairo_surface_destroy(flat);
      r = zbar_file(path);
    }
    cairo_surface_destroy(img);
  }
  unlink(path);
  return r;
}

static char *zbar_pdf(const void *pdf, size_t n) {
  char path[512], prefix[600], png[640], cmd[1400];
  tmpname(path, sizeof path, ".pdf");
  snprintf(prefix, sizeof prefix, "%s.out", path);
  snprintf(png, sizeof png, "%s.png", prefix);
  char *r = NULL;
  if (write_file(path, pdf, n)) {
    snprintf(cmd, sizeof cmd, "pdftoppm -png -r 144 -singlefile '%s' '%s' 2>/dev/null", path,
             prefix);
    free(run(cmd));
    r = zbar_file(png);
  }
  unlink(path);
  unlink(png);
  return r;
}

/* SVG → librsvg onto white → PNG → decoded. */
static char *zbar_svg(const void *svg, size_t n, int size) {
  GError *e = NULL;
  RsvgHandle *h = rsvg_handle_new_from_data(svg, n, &e);
  if (!h) {
    if (e) g_error_free(e);
    return NULL;
  }
  cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, size, size);
  cairo_t *cr = cairo_create(s);
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);
  RsvgRectangle vp = {0, 0, size, size};
  bool ok = rsvg_handle_render_document(h, cr, &vp, &e);
  if (e) g_error_free(e);
  cairo_destroy(cr);
  g_object_unref(h);
  char path[512];
  tmpname(path, sizeof path, ".png");
  char *r = NULL;
  if (ok && cairo_surface_write_to_png(s, path) == CAIRO_STATUS_SUCCESS) r = zbar_file(path);
  cairo_surface_destroy(s);
  unlink(path);
  return r;
}

/* Payload of a target given as JSON text; NULL on error (err/param set). */
static char *payload_of(const char *target_json, bd_qr_type_t *type, char *err, size_t errsz,
                        const char **param) {
  json_error_t je;
  json_t *t = json_loads(target_json, JSON_ALLOW_NUL, &je);
  if (!t) {
    fprintf(stderr, "  bad test JSON: %s: %s\n", target_json, je.text);
    return NULL;
  }
  bd_buf_t b = BD_BUF_INIT;
  bd_qr_type_t ty = (bd_qr_type_t)-1;
  err[0] = '\0';
  *param = NULL;
  int rc = bd_qr_payload(t, &ty, &b, err, errsz, param);
  json_decref(t);
  if (type) *type = ty;
  if (rc != 0) {
    bd_buf_free(&b);
    return NULL;
  }
  return bd_buf_detach(&b, NULL);
}

static void check_payload(const char *target_json, bd_qr_type_t want_type, const char *want) {
  char err[256];
  const char *param;
  bd_qr_type_t ty = (bd_qr_type_t)-1; /* set on success only */
  char *p = payload_of(target_json, &ty, err, sizeof err, &param);
  if (!p) fprintf(stderr, "  %s: error %s (%s)\n", target_json, err, param ? param : "-");
  CHECK_STR(p, want);
  CHECK_INT(ty, want_type);
  free(p);
}

/* The target must be refused naming param (and, if given, with msg). */
static void check_payload_err(const char *target_json, const char *want_param,
                              const char *want_msg) {
  char err[256];
  const char *param;
  char *p = payload_of(target_json, NULL, err, sizeof err, &param);
  if (p) fprintf(stderr, "  %s: unexpectedly accepted: %s\n", target_json, p);
  CHECK(p == NULL);
  CHECK_STR(param, want_param);
  if (want_msg) CHECK_STR(err, want_msg);
  CHECK(err[0] != '\0');
  free(p);
}

static bd_qr_design_t *design_of(const char *json, char *err, size_t errsz, const char **param) {
  json_t *j = json ? json_loads(json, 0, NULL) : NULL;
  if (json && !j) fprintf(stderr, "  bad test JSON: %s\n", json);
  err[0] = '\0';
  *param = NULL;
  bd_qr_design_t *d = bd_qr_design_parse(j, err, errsz, param);
  json_decref(j);
  return d;
}

static void check_design_err(const char *json, const char *want_param) {
  char err[300];
  const char *param;
  bd_qr_design_t *d = design_of(json, err, sizeof err, &param);
  if (d) fprintf(stderr, "  design %s: unexpectedly accepted\n", json);
  CHECK(d == NULL);
  if (param && strcmp(param, want_param)) fprintf(stderr, "  design %s: %s\n", json, err);
  CHECK_STR(param, want_param);
  CHECK(err[0] != '\0');
  bd_qr_design_free(d);
}

/* Renders payload with a design (JSON text, NULL: default) in a format and
 * size, decodes it, and checks the result is exactly the payload. */
static void check_render(const char *payload, const char *design_json, bd_qr_format_t fmt,
                         int size) {
  char err[300];
  const char *param;
  bd_qr_design_t *d = design_of(design_json, err, sizeof err, &param);
  if (!d) fprintf(stderr, "  design %s: %s (%s)\n", design_json ? design_json : "null", err, param);
  CHECK(d != NULL);
  if (!d) return;
  bd_buf_t out = BD_BUF_INIT;
  int rc = bd_qr_render(payload, d, fmt, size, &out, err, sizeof err);
  if (rc != 0) fprintf(stderr, "  render: %s\n", err);
  CHECK_INT(rc, 0);
  char *got = NULL;
  if (rc == 0) {
    if (fmt == BD_QR_PNG) {
      CHECK(out.len > 8 && !memcmp(out.data, "\x89PNG\r\n\x1a\n", 8));
      got = zbar_png(out.data, out.len);
    } else if (fmt == BD_QR_SVG) {
      CHECK(!strncmp(out.data, "<?xml", 5) || !strncmp(out.data, "<svg", 4));
      CHECK(strstr(out.data, "</svg>") != NULL);
      got = zbar_svg(out.data, out.len, size);
    } else {
      CHECK(out.len > 5 && !memcmp(out.data, "%PDF-", 5));
      CHECK(strstr(out.data + out.len - 32 > out.data ? out.data + out.len - 32 : out.data,
                   "%%EOF") != NULL);
      got = zbar_pdf(out.data, out.len);
    }
  }
  if (!got || strcmp(got, payload))
    fprintf(stderr, "  decode mismatch: format %d size %d design %s\n", (int)fmt, size,
            design_json ? design_json : "null");
  CHECK_STR(got, payload);
  free(got);
  bd_buf_free(&out);
  bd_qr_design_free(d);
}

static void b64(bd_buf_t *out, const unsigned char *p, size_t n) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
                 (i + 2 < n ? p[i + 2] : 0);
    char q[4] = {tab[v >> 18], tab[(v >> 12) & 63], i + 1 < n ? tab[(v >> 6) & 63] : '=',
                 i + 2 < n ? tab[v & 63] : '='};
    bd_buf_append(out, q, 4);
  }
}

static cairo_status_t to_buf(void *closure, const unsigned char *data, unsigned int len) {
  bd_buf_append(closure, data, len);
  return CAIRO_STATUS_SUCCESS;
}

/* A data: URL of a 96x96 PNG logo: an orange disc with a dark ring on
 * transparency (alpha, colours, detail: a realistic logo). */
static char *logo_data_url(void) {
  cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, 96, 96);
  cairo_t *cr = cairo_create(s);
  cairo_arc(cr, 48, 48, 44, 0, 2 * M_PI);
  cairo_set_source_rgb(cr, 1, 0.5, 0);
  cairo_fill_preserve(cr);
  cairo_set_line_width(cr, 6);
  cairo_set_source_rgb(cr, 0.2, 0.1, 0.3);
  cairo_stroke(cr);
  cairo_destroy(cr);
  bd_buf_t png = BD_BUF_INIT, url = BD_BUF_INIT;
  cairo_surface_write_to_png_stream(s, to_buf, &png);
  cairo_surface_destroy(s);
  bd_buf_puts(&url, "data:image/png;base64,");
  b64(&url, (unsigned char *)png.data, png.len);
  bd_buf_free(&png);
  return bd_buf_detach(&url, NULL);
}

/* --- payloads ------------------------------------------------------------------------ */

static void test_payload_url_utm(void) {
  check_payload("{\"destination\": \"https://example.com/p?a=1&utm_source=old&utm_sourcex=2#frag\","
                " \"utm\": {\"source\": \"qr\", \"campaign\": \"spring sale\", \"content\": "
                "\"a&b/\u00fc~\"}}",
                BD_QR_TYPE_URL,
                "https://example.com/p?a=1&utm_sourcex=2&utm_source=qr&utm_campaign=spring%20sale"
                "&utm_content=a%26b%2F%C3%BC~#frag");
  check_payload("{\"destination\": \"http://example.com\"}", BD_QR_TYPE_URL, "http://example.com");
  check_payload("{\"destination\": \"https://example.com/x?\", \"utm\": {\"medium\": \"print\"}}",
                BD_QR_TYPE_URL, "https://example.com/x?utm_medium=print");
  /* an existing utm_ key we do not set stays; empty values are not added */
  check_payload("{\"destination\": \"https://example.com/?utm_term=keep&utm_medium\", \"utm\": "
                "{\"medium\": \"m\", "
                "\"term\": \"\", \"source\": null}}",
                BD_QR_TYPE_URL, "https://example.com/?utm_term=keep&utm_medium=m");

  /* the merge on its own, as /s/{code} uses it */
  bd_buf_t b = BD_BUF_INIT;
  char err[200];
  const char *param = NULL;
  json_t *utm = json_pack("{s:s, s:s}", "source", "news letter", "term", "x=y");
  CHECK_INT(bd_qr_merge_utm("https://a.example/b#c", utm, &b, err, sizeof err, &param), 0);
  CHECK_STR(b.data, "https://a.example/b?utm_source=news%20letter&utm_term=x%3Dy#c");
  bd_buf_reset(&b);
  CHECK_INT(bd_qr_merge_utm("https://a.example/b?q=1", NULL, &b, err, sizeof err, &param), 0);
  CHECK_STR(b.data, "https://a.example/b?q=1");
  json_object_set_new(utm, "gclid", json_string("x"));
  bd_buf_reset(&b);
  CHECK_INT(bd_qr_merge_utm("https://a.example/", utm, &b, err, sizeof err, &param), -1);
  CHECK_STR(param, "target.utm");
  json_decref(utm);
  utm = json_pack("{s:i}", "source", 3);
  CHECK_INT(bd_qr_merge_utm("https://a.example/", utm, &b, err, sizeof err, &param), -1);
  CHECK_STR(param, "target.utm.source");
  json_decref(utm);
  bd_buf_free(&b);

  check_payload_err("{\"destination\": \"https:///nohost\"}", "target.destination", NULL);
  check_payload_err("{\"destination\": \"https://exa mple.com\"}", "target.destination", NULL);
  /* anything but http(s) is a pre-encoded payload, kept exactly, its type
   * told by its start */
  check_payload("{\"destination\": \"ftp://example.com/f\"}", BD_QR_TYPE_TEXT, "ftp://example.com/f");
  check_payload("{\"destination\": \"example.com\"}", BD_QR_TYPE_TEXT, "example.com");
  check_payload("{\"destination\": \"mailto:a@example.com?subject=Hi\"}", BD_QR_TYPE_EMAIL,
                "mailto:a@example.com?subject=Hi");
  check_payload("{\"destination\": \"tel:+4930123\"}", BD_QR_TYPE_PHONE, "tel:+4930123");
  check_payload("{\"destination\": \"SMSTO:+4930123:hi\"}", BD_QR_TYPE_SMS, "SMSTO:+4930123:hi");
  check_payload("{\"destination\": \"WIFI:T:WPA;S:net;P:secret12;;\"}", BD_QR_TYPE_WIFI,
                "WIFI:T:WPA;S:net;P:secret12;;");
  check_payload("{\"destination\": \"BEGIN:VCARD\\r\\nFN:A\\r\\nEND:VCARD\"}", BD_QR_TYPE_VCARD,
                "BEGIN:VCARD\r\nFN:A\r\nEND:VCARD");
  check_payload("{\"destination\": \"BEGIN:VEVENT\\r\\nEND:VEVENT\"}", BD_QR_TYPE_EVENT,
                "BEGIN:VEVENT\r\nEND:VEVENT");
  check_payload_err("{\"destination\": \"tel:+4930123\", \"utm\": {\"source\": \"x\"}}", "target", NULL);
  check_payload_err("{\"destination\": \"\"}", "target.destination", NULL);
  check_payload_err("{\"destination\": \"https://example.com\", \"utm\": \"x\"}", "target.utm",
                    NULL);
}

static void test_payload_text(void) {
  check_payload("{\"text\": \"Cr\u00e8me br\u00fbl\u00e9e \U0001F36E na\u00efve caf\u00e9\"}",
                BD_QR_TYPE_TEXT, "Crème brûlée 🍮 naïve café");
  check_payload("{\"text\": \"line 1\\nline 2\"}", BD_QR_TYPE_TEXT, "line 1\nline 2");
  check_payload_err("{\"text\": \"\"}", "target.text", NULL);
  check_payload_err("{\"text\": 5}", "target.text", NULL);
  check_payload_err("{\"text\": \"a\\u0000b\"}", "target.text", NULL);
  check_payload_err("{}", "target", NULL);
  check_payload_err("[]", "target", NULL);
  check_payload_err("{\"nonsense\": 1}", "target", NULL);
  /* two types at once: refused, naming the stray field */
  check_payload_err("{\"text\": \"x\", \"destination\": \"https://e.com\"}", "target.text", NULL);
  check_payload_err("{\"text\": \"x\", \"subject\": \"s\"}", "target.subject", NULL);
  /* too long for any QR code */
  char big[3100];
  memset(big, 'a', sizeof big);
  memcpy(big, "{\"text\": \"", 10);
  memcpy(big + sizeof big - 3, "\"}", 3);
  check_payload_err(big, "target.text", NULL);
}

static void test_payload_email(void) {
  check_payload("{\"email\": \"ana@example.com\", \"subject\": \"Hi there & more\", \"message\": "
                "\"a&b=c\\nline2\"}",
                BD_QR_TYPE_EMAIL,
                "mailto:ana@example.com?subject=Hi%20there%20%26%20more&body=a%26b%3Dc%0D%0Aline2");
  check_payload("{\"email\": \"ana+tag@example.co.uk\"}", BD_QR_TYPE_EMAIL,
                "mailto:ana%2Btag@example.co.uk");
  check_payload("{\"email\": \"x@example.com\", \"message\": \"caf\u00e9\"}", BD_QR_TYPE_EMAIL,
                "mailto:x@example.com?body=caf%C3%A9");
  check_payload_err("{\"email\": \"not-an-email\"}", "target.email",
                    "target.email is not a valid e-mail address");
  check_payload_err("{\"email\": \"a@b\"}", "target.email", NULL);
  check_payload_err("{\"email\": \"a b@example.com\"}", "target.email", NULL);
  check_payload_err("{\"email\": \"a..b@example.com\"}", "target.email", NULL);
  check_payload_err("{\"email\": \"a@-x.com\"}", "target.email", NULL);
}

static void test_payload_phone_sms(void) {
  check_payload("{\"phone\": \"+15551234567\", \"message\": \"Yes: come\"}", BD_QR_TYPE_SMS,
                "SMSTO:+15551234567:Yes: come");
  check_payload("{\"phone\": \"+44 20 7946 0958\"}", BD_QR_TYPE_PHONE, "tel:+442079460958");
  check_payload("{\"phone\": \"(555) 123-4567\"}", BD_QR_TYPE_PHONE, "tel:5551234567");
  check_payload_err("{\"phone\": \"call me\"}", "target.phone", NULL);
  check_payload_err("{\"phone\": \"12\"}", "target.phone", NULL);
  check_payload_err("{\"phone\": \"1+2345\"}", "target.phone", NULL);
}

static void test_payload_wifi(void) {
  check_payload("{\"ssid\": \"Caf\u00e9;Net:\\\"5G\\\"\", \"password\": \"p\\\\a,ss:w;rd\"}",
                BD_QR_TYPE_WIFI, "WIFI:T:WPA;S:Café\\;Net\\:\\\"5G\\\";P:p\\\\a\\,ss\\:w\\;rd;;");
  check_payload("{\"ssid\": \"Open\", \"encryption\": \"nopass\", \"hidden\": true}",
                BD_QR_TYPE_WIFI, "WIFI:T:nopass;S:Open;H:true;;");
  check_payload("{\"ssid\": \"Open\"}", BD_QR_TYPE_WIFI, "WIFI:T:nopass;S:Open;;");
  check_payload("{\"ssid\": \"Old\", \"password\": \"abcde\", \"encryption\": \"wep\"}",
                BD_QR_TYPE_WIFI, "WIFI:T:WEP;S:Old;P:abcde;;");
  check_payload_err("{\"ssid\": \"x\", \"password\": \"12345678\", \"encryption\": \"WPA4\"}",
                    "target.encryption", NULL);
  check_payload_err("{\"ssid\": \"x\", \"password\": \"short\"}", "target.password", NULL);
  check_payload_err("{\"ssid\": \"x\", \"password\": \"12345678\", \"encryption\": \"nopass\"}",
                    "target.password", NULL);
  check_payload_err("{\"ssid\": \"\"}", "target.ssid", NULL);
  check_payload_err("{\"ssid\": \"123456789012345678901234567890123\"}", "target.ssid", NULL);
  check_payload_err("{\"ssid\": \"x\", \"hidden\": \"yes\"}", "target.hidden", NULL);
}

static void test_payload_event(void) {
  check_payload("{\"title\": \"Launch, day 1\", \"location\": \"Hall A; Berlin\\\\2\", "
                "\"start\": \"2025-03-14T13:04:03.250Z\", \"end\": \"2025-03-14T15:00:00+01:00\"}",
                BD_QR_TYPE_EVENT,
                "BEGIN:VEVENT\r\nSUMMARY:Launch\\, day 1\r\nLOCATION:Hall A\\; Berlin\\\\2\r\n"
                "DTSTART:20250314T130403Z\r\nDTEND:20250314T140000Z\r\nEND:VEVENT");
  /* offsets that cross midnight and a year; no end */
  check_payload("{\"title\": \"NYE\\nparty\", \"start\": \"2024-12-31T20:30:00-05:00\"}",
                BD_QR_TYPE_EVENT,
                "BEGIN:VEVENT\r\nSUMMARY:NYE\\nparty\r\nDTSTART:20250101T013000Z\r\nEND:VEVENT");
  /* all-day: end is the last day, DTEND the day after */
  check_payload(
      "{\"title\": \"Fair\", \"start\": \"2024-02-28\", \"end\": \"2024-02-29\"}", BD_QR_TYPE_EVENT,
      "BEGIN:VEVENT\r\nSUMMARY:Fair\r\nDTSTART;VALUE=DATE:20240228\r\nDTEND;VALUE=DATE:20240301\r\n"
      "END:VEVENT");
  /* folding at 75 octets, never inside a UTF-8 sequence: "SUMMARY:" and
   * 33 two-byte characters make 74 octets, the 34th goes on the next line */
  char tj[200] = "{\"title\": \"", want[300] = "BEGIN:VEVENT\r\nSUMMARY:";
  for (int i = 0; i < 40; i++) strcat(tj, "\u00e9");
  strcat(tj, "\", \"start\": \"2025-01-01T00:00:00Z\"}");
  for (int i = 0; i < 40; i++) strcat(want, i == 33 ? "\r\n \u00e9" : "\u00e9");
  strcat(want, "\r\nDTSTART:20250101T000000Z\r\nEND:VEVENT");
  check_payload(tj, BD_QR_TYPE_EVENT, want);
  check_payload_err("{\"title\": \"x\", \"start\": \"2025-02-30T10:00:00Z\"}", "target.start",
                    NULL);
  check_payload_err("{\"title\": \"x\", \"start\": \"2025-03-01T10:00:00\"}", "target.start", NULL);
  check_payload_err("{\"title\": \"x\"}", "target.start", NULL);
  check_payload_err("{\"start\": \"2025-03-01T10:00:00Z\"}", "target.title", NULL);
  check_payload_err(
      "{\"title\": \"x\", \"start\": \"2025-03-01T10:00:00Z\", \"end\": \"2025-03-01T09:00:00Z\"}",
      "target.end", "target.end is before target.start");
  check_payload_err(
      "{\"title\": \"x\", \"start\": \"2025-03-01\", \"end\": \"2025-03-01T09:00:00Z\"}",
      "target.end", NULL);
}

static void test_payload_vcard(void) {
  check_payload(
      "{\"vcard\": {\"first_name\": \"Zo\u00eb\", \"last_name\": \"\u00c5ngstr\u00f6m\", "
      "\"organization\": \"ACME, Inc.\", \"title\": \"CTO; founder\", \"phone\": \"+1 555 0100\", "
      "\"mobile\": \"+1 555 0199\", \"email\": \"z@example.com\", \"url\": "
      "\"https://acme.example\", "
      "\"address\": {\"street\": \"1 Main St\", \"city\": \"Springfield\", \"postal_code\": "
      "\"12345\", "
      "\"country\": \"USA\"}, \"note\": \"line1\\nline2\"}}",
      BD_QR_TYPE_VCARD,
      "BEGIN:VCARD\r\nVERSION:3.0\r\nN:Ångström;Zoë;;;\r\nFN:Zoë Ångström\r\nORG:ACME\\, Inc.\r\n"
      "TITLE:CTO\\; founder\r\nTEL:+1 555 0100\r\nTEL;TYPE=CELL:+1 555 "
      "0199\r\nEMAIL:z@example.com\r\n"
      "URL:https://acme.example\r\nADR:;;1 Main St;Springfield;;12345;USA\r\nNOTE:line1\\nline2\r\n"
      "END:VCARD");
  check_payload("{\"vcard\": {\"organization\": \"Shop\", \"address\": \"Market 1, Town\"}}",
                BD_QR_TYPE_VCARD,
                "BEGIN:VCARD\r\nVERSION:3.0\r\nN:;;;;\r\nFN:Shop\r\nORG:Shop\r\nADR:;;Market 1\\, "
                "Town;;;;\r\n"
                "END:VCARD");
  check_payload_err("{\"vcard\": {\"first_name\": \"A\", \"email\": \"nope\"}}",
                    "target.vcard.email", "target.vcard.email is not a valid e-mail address");
  check_payload_err("{\"vcard\": {\"title\": \"only a title\"}}", "target.vcard", NULL);
  check_payload_err("{\"vcard\": {\"first_name\": \"A\", \"fax\": \"1\"}}", "target.vcard", NULL);
  check_payload_err("{\"vcard\": {\"first_name\": \"A\", \"phone\": \"abc\"}}",
                    "target.vcard.phone", NULL);
  check_payload_err("{\"vcard\": \"BEGIN:VCARD\"}", "target.vcard", NULL);
}

/* --- designs ---------------------------------------------------------------------------- */

static void test_design_parse_and_json(void) {
  char err[300];
  const char *param;
  bd_qr_design_t *d = design_of(NULL, err, sizeof err, &param);
  CHECK(d && bd_qr_design_ec(d) == 'M' && bd_qr_design_is_plain(d));
  json_t *j = bd_qr_design_to_json(d);
  char *s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
  CHECK_STR(s, "{\"colors\":{\"background\":\"#ffffff\",\"foreground\":\"#000000\"},\"error_"
               "correction\":\"M\","
               "\"shapes\":{\"body\":\"square\",\"eye_ball\":\"square\",\"eye_frame\":\"square\"},"
               "\"transparent_background\":false}");
  free(s);
  json_decref(j);
  bd_qr_design_free(d);

  d = design_of(
      "{\"error_correction\": \"Q\", \"colors\": {\"foreground\": \"#13A\", \"background\": "
      "\"#FFFDE7\"},"
      " \"gradient\": {\"start\": \"#005ae0\", \"end\": \"#003080\"},"
      " \"shapes\": {\"body\": \"dots\", \"eye_frame\": \"circle\", \"eye_ball\": \"rounded\"},"
      " \"eye_colors\": {\"frame\": \"#b71c1c\"}, \"transparent_background\": true}",
      err, sizeof err, &param);
  CHECK(d != NULL);
  if (d) {
    CHECK(!bd_qr_design_is_plain(d));
    j = bd_qr_design_to_json(d);
    s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    CHECK_STR(s, "{\"colors\":{\"background\":\"#fffde7\",\"foreground\":\"#1133aa\"},\"error_"
                 "correction\":\"Q\","
                 "\"eye_colors\":{\"frame\":\"#b71c1c\"},"
                 "\"gradient\":{\"end\":\"#003080\",\"start\":\"#005ae0\",\"type\":\"linear-top-to-"
                 "bottom\"},"
                 "\"shapes\":{\"body\":\"dots\",\"eye_ball\":\"rounded\",\"eye_frame\":\"circle\"},"
                 "\"transparent_background\":true}");
    /* the stored form parses back to the same design */
    bd_qr_design_t *d2 = bd_qr_design_parse(j, err, sizeof err, &param);
    CHECK(d2 != NULL);
    if (d2) {
      json_t *j2 = bd_qr_design_to_json(d2);
      CHECK(json_equal(j, j2));
      json_decref(j2);
    }
    /* a copy is independent of the original */
    bd_qr_design_t *c = bd_qr_design_copy(d);
    bd_qr_design_free(d);
    json_t *j3 = bd_qr_design_to_json(c);
    CHECK(json_equal(j, j3));
    json_decref(j3);
    bd_qr_design_free(c);
    bd_qr_design_free(d2);
    free(s);
    json_decref(j);
  }

  /* a logo: parsed, sized per level, copied with its bytes */
  char *logo = logo_data_url();
  char buf[20000];
  snprintf(buf, sizeof buf,
           "{\"error_correction\": \"H\", \"logo\": {\"url\": \"%s\", \"source_url\": \"x\"}}",
           logo);
  d = design_of(buf, err, sizeof err, &param);
  CHECK(d != NULL);
  if (d) {
    bd_qr_design_t *c = bd_qr_design_copy(d);
    bd_qr_design_free(d);
    j = bd_qr_design_to_json(c);
    CHECK_STR(json_string_value(json_object_get(json_object_get(j, "logo"), "url")), logo);
    CHECK(fabs(json_number_value(json_object_get(json_object_get(j, "logo"), "size")) - 0.22) <
          1e-9);
    json_decref(j);
    bd_qr_design_free(c);
  }
  free(logo);

  /* remote logos are flagged for the server */
  j = json_pack("{s:{s:s}}", "logo", "url", "https://cdn.example/logo.png");
  const char *u = NULL;
  CHECK(bd_qr_design_remote_logo(j, &u));
  CHECK_STR(u, "https://cdn.example/logo.png");
  json_decref(j);
  j = json_pack("{s:{s:s}}", "logo", "url", "data:image/png;base64,AAAA");
  CHECK(!bd_qr_design_remote_logo(j, &u));
  CHECK(!bd_qr_design_remote_logo(NULL, &u));
  json_decref(j);
}

static void test_design_errors(void) {
  check_design_err("[1]", "design");
  check_design_err("{\"surprise\": 1}", "design");
  check_design_err("{\"error_correction\": \"X\"}", "design.error_correction");
  check_design_err("{\"colors\": {\"foreground\": \"blue\"}}", "design.colors.foreground");
  check_design_err("{\"colors\": {\"background\": \"#12345\"}}", "design.colors.background");
  check_design_err("{\"colors\": {\"fg\": \"#000\"}}", "design.colors");
  check_design_err("{\"colors\": \"#000\"}", "design.colors");
  check_design_err("{\"shapes\": {\"body\": \"hearts\"}}", "design.shapes.body");
  check_design_err("{\"shapes\": {\"eye_frame\": \"star\"}}", "design.shapes.eye_frame");
  check_design_err("{\"shapes\": {\"eye_ball\": \"dots\"}}", "design.shapes.eye_ball");
  check_design_err("{\"gradient\": {\"start\": \"#000\", \"end\": \"#003\", \"type\": \"conic\"}}",
                   "design.gradient.type");
  check_design_err("{\"gradient\": {\"start\": \"#000\"}}", "design.gradient.end");
  check_design_err("{\"transparent_background\": \"yes\"}", "design.transparent_background");
  /* scannability */
  check_design_err("{\"colors\": {\"foreground\": \"#dddddd\", \"background\": \"#ffffff\"}}",
                   "design.colors.foreground");
  check_design_err("{\"colors\": {\"foreground\": \"#ffffff\", \"background\": \"#000000\"}}",
                   "design.colors.foreground");
  check_design_err("{\"colors\": {\"foreground\": \"#888888\", \"background\": \"#bbbbbb\"}}",
                   "design.colors.foreground");
  check_design_err("{\"gradient\": {\"start\": \"#000000\", \"end\": \"#eeeeee\"}}",
                   "design.gradient.end");
  check_design_err("{\"eye_colors\": {\"ball\": \"#ffff00\"}}", "design.eye_colors.ball");
  /* symbol contrast around 40 %: #cbcbcb on white is 40.3 %, #cccccc 39.6 %;
   * the seed's gradient end #00c2ff (2.07:1 as a WCAG ratio) is 54 % */
  char err[300];
  const char *param;
  bd_qr_design_t *d =
      design_of("{\"colors\": {\"foreground\": \"#cbcbcb\"}}", err, sizeof err, &param);
  CHECK(d != NULL);
  bd_qr_design_free(d);
  d = design_of("{\"gradient\": {\"start\": \"#005ae0\", \"end\": \"#00c2ff\"}}", err, sizeof err,
                &param);
  CHECK(d != NULL);
  bd_qr_design_free(d);
  check_design_err("{\"colors\": {\"foreground\": \"#cccccc\"}}", "design.colors.foreground");
  /* logos */
  char *logo = logo_data_url();
  char buf[20000];
  snprintf(buf, sizeof buf, "{\"error_correction\": \"L\", \"logo\": {\"url\": \"%s\"}}", logo);
  check_design_err(buf, "design.logo");
  snprintf(buf, sizeof buf,
           "{\"error_correction\": \"M\", \"logo\": {\"url\": \"%s\", \"size\": 0.2}}", logo);
  check_design_err(buf, "design.logo");
  snprintf(buf, sizeof buf,
           "{\"error_correction\": \"H\", \"logo\": {\"url\": \"%s\", \"size\": 0.31}}", logo);
  check_design_err(buf, "design.logo");
  snprintf(buf, sizeof buf,
           "{\"error_correction\": \"H\", \"logo\": {\"url\": \"%s\", \"size\": 2}}", logo);
  check_design_err(buf, "design.logo.size");
  snprintf(buf, sizeof buf,
           "{\"error_correction\": \"H\", \"logo\": {\"url\": \"%s\", \"clear_background\": 1}}",
           logo);
  check_design_err(buf, "design.logo.clear_background");
  snprintf(buf, sizeof buf,
           "{\"error_correction\": \"H\", \"logo\": {\"url\": \"%s\", \"sise\": 0.2}}", logo);
  check_design_err(buf, "design.logo");
  free(logo);
  check_design_err(
      "{\"error_correction\": \"H\", \"logo\": {\"url\": \"https://example.com/logo.png\"}}",
      "design.logo.url");
  check_design_err(
      "{\"error_correction\": \"H\", \"logo\": {\"url\": \"data:image/gif;base64,R0lGODlh\"}}",
      "design.logo.url");
  check_design_err(
      "{\"error_correction\": \"H\", \"logo\": {\"url\": \"data:image/png;base64,iVBORw0KGgo=\"}}",
      "design.logo.url");
  check_design_err(
      "{\"error_correction\": \"H\", \"logo\": {\"url\": \"data:image/png;base64,!!!\"}}",
      "design.logo.url");
  check_design_err("{\"error_correction\": \"H\", \"logo\": {}}", "design.logo.url");
}

/* --- decompression bombs ----------------------------------------------------------- */

static void png_chunk(bd_buf_t *out, const char *type, const unsigned char *data, uint32_t n) {
  unsigned char be[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16), (unsigned char)(n >> 8),
                         (unsigned char)n};
  bd_buf_append(out, (const char *)be, 4);
  size_t at = out->len;
  bd_buf_append(out, type, 4);
  if (n) bd_buf_append(out, (const char *)data, n);
  uint32_t crc = (uint32_t)crc32(0, (const unsigned char *)out->data + at, (uInt)(n + 4));
  unsigned char c[4] = {(unsigned char)(crc >> 24), (unsigned char)(crc >> 16), (unsigned char)(crc >> 8),
                        (unsigned char)crc};
  bd_buf_append(out, (const char *)c, 4);
}

/* A valid 8-bit grey PNG of side x side black pixels, deflated as it is made
 * (one row at a time, so making it costs no memory): at 16000 px it is about
 * 250 KB and decodes to 1 GB of cairo pixels. */
static void png_bomb(bd_buf_t *out, uint32_t side) {
  static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  bd_buf_append(out, (const char *)sig, 8);
  unsigned char ihdr[13] = {(unsigned char)(side >> 24), (unsigned char)(side >> 16), (unsigned char)(side >> 8),
                            (unsigned char)side,         (unsigned char)(side >> 24), (unsigned char)(side >> 16),
                            (unsigned char)(side >> 8),  (unsigned char)side,         8, 0, 0, 0, 0};
  png_chunk(out, "IHDR", ihdr, 13);
  z_stream z;
  memset(&z, 0, sizeof z);
  deflateInit(&z, 9);
  unsigned char *row = calloc(1, side + 1), *zout = malloc(1 << 16);
  bd_buf_t idat = BD_BUF_INIT;
  for (uint32_t y = 0; y <= side; y++) {
    z.next_in = row;
    z.avail_in = y < side ? side + 1 : 0;
    int flush = y < side ? Z_NO_FLUSH : Z_FINISH;
    do {
      z.next_out = zout;
      z.avail_out = 1 << 16;
      deflate(&z, flush);
      bd_buf_append(&idat, (const char *)zout, (1 << 16) - z.avail_out);
    } while (z.avail_out == 0);
  }
  deflateEnd(&z);
  png_chunk(out, "IDAT", (const unsigned char *)idat.data, (uint32_t)idat.len);
  png_chunk(out, "IEND", NULL, 0);
  bd_buf_free(&idat);
  free(row);
  free(zout);
}

static long max_rss_kb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

/* A logo that declares more than BD_QR_LOGO_MAX_SIDE px is refused from its
 * header: probing it, or parsing a design that carries it, allocates next to
 * nothing (decoding it would take 1 GB), and the small one beside it passes. */
static void test_logo_bomb(void) {
  bd_buf_t small = BD_BUF_INIT, bomb = BD_BUF_INIT;
  png_bomb(&small, 64);
  png_bomb(&bomb, 16000);
  CHECK(bomb.len < 1024 * 1024); /* within the 1 MiB of a logo */
  CHECK(bd_qr_logo_probe(BD_QR_LOGO_PNG, (const unsigned char *)small.data, small.len));
  long before = max_rss_kb();
  CHECK(!bd_qr_logo_probe(BD_QR_LOGO_PNG, (const unsigned char *)bomb.data, bomb.len));
  bd_buf_t json = BD_BUF_INIT;
  bd_buf_puts(&json, "{\"error_correction\": \"H\", \"logo\": {\"url\": \"data:image/png;base64,");
  bd_b64_encode(&json, bomb.data, bomb.len);
  bd_buf_puts(&json, "\"}}");
  check_design_err(json.data, "design.logo.url");
  long grown_mb = (max_rss_kb() - before) / 1024;
  if (grown_mb >= 64) fprintf(stderr, "  the bomb grew the peak RSS by %ld MB\n", grown_mb);
  CHECK(grown_mb < 64);
  bd_buf_free(&json);
  bd_buf_free(&small);
  bd_buf_free(&bomb);
}

/* --- rendering ----------------------------------------------------------------------------- */

/* Every payload type, built by bd_qr_payload, decodes back exactly. */
static void test_render_every_type(void) {
  static const char *targets[] = {
      "{\"destination\": \"https://example.com/p?a=1#f\", \"utm\": {\"source\": \"qr code\", "
      "\"campaign\": \"\u00e9t\u00e9\"}}",
      "{\"text\": \"Cr\u00e8me br\u00fbl\u00e9e \U0001F36E na\u00efve caf\u00e9 \u2014 "
      "\u65e5\u672c\"}",
      "{\"text\": \"UPPER lower 0123456789 MIXED: $%*+-./\"}",
      "{\"email\": \"ana@example.com\", \"subject\": \"Hi there\", \"message\": \"a&b=c\"}",
      "{\"phone\": \"+15551234567\", \"message\": \"Yes: come\"}",
      "{\"phone\": \"+44 20 7946 0958\"}",
      "{\"ssid\": \"Caf\u00e9;Net:\\\"5G\\\"\", \"password\": \"p\\\\a,ss:w;rd\", \"hidden\": "
      "true}",
      "{\"title\": \"Launch, day 1\", \"location\": \"Hall A; Berlin\", \"start\": "
      "\"2025-03-14T13:04:03Z\", "
      "\"end\": \"2025-03-14T15:00:00+01:00\"}",
      "{\"vcard\": {\"first_name\": \"Zo\u00eb\", \"last_name\": \"\u00c5ngstr\u00f6m\", "
      "\"organization\": \"ACME, Inc.\","
      " \"phone\": \"+1 555\", \"email\": \"z@example.com\", \"note\": \"a\\nb\"}}",
  };
  for (size_t i = 0; i < BD_ARRAY_LEN(targets); i++) {
    char err[256];
    const char *param;
    char *p = payload_of(targets[i], NULL, err, sizeof err, &param);
    CHECK(p != NULL);
    if (!p) {
      fprintf(stderr, "  %s: %s\n", targets[i], err);
      continue;
    }
    check_render(p, NULL, BD_QR_PNG, 512);
    free(p);
  }
}

static void test_render_png_fast_path(void) {
  char err[256];
  const char *param;
  bd_qr_design_t *d = design_of(NULL, err, sizeof err, &param);
  bd_buf_t out = BD_BUF_INIT;
  CHECK_INT(
      bd_qr_render("https://example.com/s/abcdefgh", d, BD_QR_PNG, 1024, &out, err, sizeof err), 0);
  /* IHDR: 1024x1024, bit depth 1, colour type 3 (palette) */
  CHECK(out.len > 33 && !memcmp(out.data + 12, "IHDR", 4));
  const unsigned char *ih = (const unsigned char *)out.data + 16;
  CHECK_INT((ih[0] << 24 | ih[1] << 16 | ih[2] << 8 | ih[3]), 1024);
  CHECK_INT(ih[8], 1);
  CHECK_INT(ih[9], 3);
  CHECK(out.len < 8000); /* compact */
  bd_buf_free(&out);
  /* sizes: limits and too small for the symbol */
  CHECK_INT(bd_qr_render("x", d, BD_QR_PNG, 127, &out, err, sizeof err), -1);
  CHECK_INT(bd_qr_render("x", d, BD_QR_PNG, 4097, &out, err, sizeof err), -1);
  char big[1500];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  CHECK_INT(bd_qr_render(big, d, BD_QR_PNG, 128, &out, err, sizeof err), -1);
  CHECK(strstr(err, "too small") != NULL);
  CHECK_INT(out.len, 0);
  CHECK(bd_qr_fits(big, d));
  bd_qr_design_free(d);
  /* level H holds less */
  d = design_of("{\"error_correction\": \"H\"}", err, sizeof err, &param);
  CHECK(!bd_qr_fits(big, d));
  CHECK_INT(bd_qr_render(big, d, BD_QR_PNG, 1024, &out, err, sizeof err), -1);
  CHECK(strstr(err, "does not fit") != NULL);
  bd_qr_design_free(d);
  /* small and large sizes decode */
  check_render("https://example.com/s/Ab3dE5fG", NULL, BD_QR_PNG, 128);
  check_render("https://example.com/s/Ab3dE5fG", "{\"error_correction\": \"L\"}", BD_QR_PNG, 130);
  check_render("https://example.com/s/Ab3dE5fG", NULL, BD_QR_PNG, 4096);
  check_render("plain but coloured",
               "{\"colors\": {\"foreground\": \"#1a237e\", \"background\": \"#fffde7\"}}",
               BD_QR_PNG, 333);
  /* a long payload: a large version */
  check_render(big, "{\"error_correction\": \"L\"}", BD_QR_PNG, 1024);
}

/* Decodes a PNG with cairo (libpng + zlib: CRCs and Adler-32 checked). */
static cairo_surface_t *png_decode(const bd_buf_t *png) {
  char path[512];
  tmpname(path, sizeof path, ".png");
  cairo_surface_t *s = NULL;
  if (write_file(path, png->data, png->len)) s = cairo_image_surface_create_from_png(path);
  unlink(path);
  if (s && cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
    cairo_surface_destroy(s);
    s = NULL;
  }
  if (s) cairo_surface_flush(s);
  return s;
}

/* The hand-made PNG of the fast path has exactly the pixels of the cairo
 * path drawing the same symbol with squares (made non-plain by an eye
 * colour one step off black), at sizes that do and do not align modules
 * to bytes, with and without transparency. */
static void test_render_fast_path_pixels(void) {
  static const int sizes[] = {128, 129, 200, 333, 1024, 1031, 4096};
  static const char *payloads[] = {"A",
                                   "https://example.com/s/Ab3dE5fG?src=batch&campaign=spring-2025"};
  for (int tr = 0; tr < 2; tr++)
    for (size_t pi = 0; pi < BD_ARRAY_LEN(payloads); pi++)
      for (size_t si = 0; si < BD_ARRAY_LEN(sizes); si++) {
        char err[256], dj[200];
        const char *param;
        snprintf(dj, sizeof dj, "{\"transparent_background\": %s}", tr ? "true" : "false");
        bd_qr_design_t *fast = design_of(dj, err, sizeof err, &param);
        snprintf(dj, sizeof dj,
                 "{\"transparent_background\": %s, \"eye_colors\": {\"frame\": \"#000001\"}}",
                 tr ? "true" : "false");
        bd_qr_design_t *slow = design_of(dj, err, sizeof err, &param);
        CHECK(fast && slow && bd_qr_design_is_plain(fast) && !bd_qr_design_is_plain(slow));
        bd_buf_t a = BD_BUF_INIT, b = BD_BUF_INIT;
        CHECK_INT(bd_qr_render(payloads[pi], fast, BD_QR_PNG, sizes[si], &a, err, sizeof err), 0);
        CHECK_INT(bd_qr_render(payloads[pi], slow, BD_QR_PNG, sizes[si], &b, err, sizeof err), 0);
        cairo_surface_t *sa = png_decode(&a), *sb = png_decode(&b);
        CHECK(sa && sb);
        if (sa && sb) {
          CHECK_INT(cairo_image_surface_get_width(sa), sizes[si]);
          CHECK_INT(cairo_image_surface_get_height(sa), sizes[si]);
          int bad = 0;
          for (int y = 0; y < sizes[si]; y++) {
            const uint32_t *ra =
                (const uint32_t *)(const void *)(cairo_image_surface_get_data(sa) +
                                                 (size_t)y *
                                                     (size_t)cairo_image_surface_get_stride(sa));
            const uint32_t *rb =
                (const uint32_t *)(const void *)(cairo_image_surface_get_data(sb) +
                                                 (size_t)y *
                                                     (size_t)cairo_image_surface_get_stride(sb));
            for (int x = 0; x < sizes[si]; x++) {
              uint32_t pa = ra[x], pb = rb[x];
              if (!tr)
                pa |= 0xFF000000u, pb |= 0xFF000000u; /* RGB24 leaves the top byte undefined */
              bool same = (pa >> 24) == (pb >> 24) &&
                          abs((int)(pa & 0xFF) - (int)(pb & 0xFF)) <= 1 &&
                          ((pa ^ pb) & 0x00FFFF00u) == 0;
              if (!same && bad++ < 3)
                fprintf(stderr, "  size %d %s: pixel %d,%d fast %08x cairo %08x\n", sizes[si],
                        tr ? "transparent" : "opaque", x, y, pa, pb);
            }
          }
          CHECK_INT(bad, 0);
        }
        if (sa) cairo_surface_destroy(sa);
        if (sb) cairo_surface_destroy(sb);
        bd_buf_free(&a);
        bd_buf_free(&b);
        bd_qr_design_free(fast);
        bd_qr_design_free(slow);
      }
}

static void test_render_designs(void) {
  const char *p = "https://example.com/s/Ab3dE5fG?x=1";
  static const char *designs[] = {
      "{\"gradient\": {\"start\": \"#005ae0\", \"end\": \"#003080\", \"type\": "
      "\"linear-top-to-bottom\"}}",
      "{\"gradient\": {\"start\": \"#202020\", \"end\": \"#004bb8\", \"type\": "
      "\"linear-left-to-right\"},"
      " \"shapes\": {\"body\": \"dots\"}}",
      "{\"gradient\": {\"start\": \"#5b0060\", \"end\": \"#000000\", \"type\": \"diagonal\"},"
      " \"shapes\": {\"body\": \"rounded\", \"eye_frame\": \"rounded\", \"eye_ball\": "
      "\"rounded\"}}",
      "{\"gradient\": {\"start\": \"#202020\", \"end\": \"#004bb8\", \"type\": \"radial\"},"
      " \"shapes\": {\"body\": \"rounded\", \"eye_frame\": \"circle\", \"eye_ball\": \"circle\"},"
      " \"eye_colors\": {\"frame\": \"#b71c1c\", \"ball\": \"#1b5e20\"}}",
      "{\"error_correction\": \"Q\", \"shapes\": {\"body\": \"dots\", \"eye_frame\": \"circle\", "
      "\"eye_ball\": "
      "\"square\"}, \"colors\": {\"foreground\": \"#0d47a1\", \"background\": \"#e3f2fd\"}}",
      "{\"shapes\": {\"eye_frame\": \"circle\", \"eye_ball\": \"circle\"}}",
  };
  for (size_t i = 0; i < BD_ARRAY_LEN(designs); i++) {
    check_render(p, designs[i], BD_QR_PNG, 600);
    check_render(p, designs[i], BD_QR_PDF, 400);
    check_render(p, designs[i], BD_QR_SVG, 600);
  }
  /* small raster with shapes (they fall back to squares) */
  check_render(p, designs[1], BD_QR_PNG, 128);
}

static void test_render_logo(void) {
  char *logo = logo_data_url();
  char buf[20000];
  const char *p = "https://example.com/s/Ab3dE5fG";
  /* the largest logo level H allows, on a cleared area */
  snprintf(buf, sizeof buf,
           "{\"error_correction\": \"H\", \"logo\": {\"url\": \"%s\", \"clear_background\": true, "
           "\"size\": 0.3}}",
           logo);
  check_render(p, buf, BD_QR_PNG, 1024);
  check_render(p, buf, BD_QR_PDF, 600);
  check_render(p, buf, BD_QR_SVG, 600);
  /* over the modules, level Q, with shapes and a gradient */
  snprintf(
      buf, sizeof buf,
      "{\"error_correction\": \"Q\", \"logo\": {\"url\": \"%s\"}, \"shapes\": {\"body\": \"dots\"},"
      " \"gradient\": {\"start\": \"#003080\", \"end\": \"#000000\", \"type\": \"radial\"}}",
      logo);
  check_render(p, buf, BD_QR_PNG, 800);
  /* level M at its limit */
  snprintf(buf, sizeof buf,
           "{\"error_correction\": \"M\", \"logo\": {\"url\": \"%s\", \"clear_background\": true}}",
           logo);
  check_render("a longer payload so that the version is larger: 0123456789 abcdefghij", buf,
               BD_QR_PNG, 700);
  free(logo);
  /* an SVG logo in a percent-encoded data: URL */
  check_render(p,
               "{\"error_correction\": \"H\", \"logo\": {\"clear_background\": true, \"url\": "
               "\"data:image/svg+xml;charset=utf-8,%3Csvg xmlns='http://www.w3.org/2000/svg' "
               "viewBox='0 0 10 10'%3E"
               "%3Ccircle cx='5' cy='5' r='4' fill='%23e91e63'/%3E%3C/svg%3E\"}}",
               BD_QR_PNG, 700);
}

static void test_render_transparent(void) {
  char err[256];
  const char *param;
  static const char *designs[] = {
      "{\"transparent_background\": true}", /* plain: palette + tRNS */
      "{\"transparent_background\": true, \"shapes\": {\"body\": \"dots\"}, \"colors\": "
      "{\"foreground\": "
      "\"#1a237e\"}}", /* cairo: RGBA */
  };
  for (size_t i = 0; i < BD_ARRAY_LEN(designs); i++) {
    bd_qr_design_t *d = design_of(designs[i], err, sizeof err, &param);
    CHECK(d != NULL);
    if (!d) continue;
    bd_buf_t out = BD_BUF_INIT;
    CHECK_INT(bd_qr_render("transparent \u2713", d, BD_QR_PNG, 512, &out, err, sizeof err), 0);
    bool transparent = false;
    char *got = zbar_png_on_white(out.data, out.len, &transparent);
    CHECK(transparent);
    CHECK_STR(got, "transparent \u2713");
    free(got);
    bd_buf_reset(&out);
    /* SVG without a background rectangle, still decodes on white */
    CHECK_INT(bd_qr_render("transparent svg", d, BD_QR_SVG, 512, &out, err, sizeof err), 0);
    got = zbar_svg(out.data, out.len, 512);
    CHECK_STR(got, "transparent svg");
    free(got);
    bd_buf_free(&out);
    bd_qr_design_free(d);
  }
}

static void test_render_formats(void) {
  const char *p = "BEGIN:VEVENT\r\nSUMMARY:x\r\nEND:VEVENT";
  check_render(p, NULL, BD_QR_SVG, 256);
  check_render(p, NULL, BD_QR_PDF, 256);
  check_render(p, "{\"error_correction\": \"H\"}", BD_QR_PDF, 128);
  /* plain SVG is the compact text form */
  char err[256];
  const char *param;
  bd_qr_design_t *d = design_of(NULL, err, sizeof err, &param);
  bd_buf_t out = BD_BUF_INIT;
  CHECK_INT(bd_qr_render("hello", d, BD_QR_SVG, 300, &out, err, sizeof err), 0);
  CHECK(strstr(out.data, "viewBox=\"0 0 29 29\"") != NULL); /* version 1: 21 + 8 */
  CHECK(strstr(out.data, "width=\"300\"") != NULL);
  CHECK(out.len < 3000);
  bd_buf_free(&out);
  bd_qr_design_free(d);
}

/* --- threads ---------------------------------------------------------------------------------- */

typedef struct {
  const bd_qr_design_t *d; /* shared read-only design */
  const bd_buf_t *want;    /* reference output */
  int mismatches;          /* renders that differed */
} thr_t;

static void *thr_main(void *arg) {
  thr_t *t = arg;
  bd_qr_design_t *mine = bd_qr_design_copy(t->d);
  for (int i = 0; i < 20; i++) {
    bd_buf_t out = BD_BUF_INIT;
    char err[200];
    if (bd_qr_render("https://example.com/s/threads", i % 2 ? mine : t->d, BD_QR_PNG, 400, &out,
                     err, sizeof err) != 0 ||
        out.len != t->want->len || memcmp(out.data, t->want->data, out.len))
      t->mismatches++;
    bd_buf_free(&out);
  }
  bd_qr_design_free(mine);
  return NULL;
}

/* Renders concurrently on four threads: same bytes as a single render. */
static void test_render_threads(void) {
  char err[256];
  const char *param;
  char *logo = logo_data_url();
  char buf[20000];
  snprintf(buf, sizeof buf,
           "{\"error_correction\": \"H\", \"logo\": {\"url\": \"%s\", \"clear_background\": true},"
           " \"shapes\": {\"body\": \"rounded\", \"eye_frame\": \"circle\"},"
           " \"gradient\": {\"start\": \"#003080\", \"end\": \"#000000\", \"type\": \"diagonal\"}}",
           logo);
  free(logo);
  bd_qr_design_t *d = design_of(buf, err, sizeof err, &param);
  CHECK(d != NULL);
  if (!d) return;
  bd_buf_t want = BD_BUF_INIT;
  CHECK_INT(
      bd_qr_render("https://example.com/s/threads", d, BD_QR_PNG, 400, &want, err, sizeof err), 0);
  thr_t t[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    t[i] = (thr_t){d, &want, 0};
    pthread_create(&th[i], NULL, thr_main, &t[i]);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    CHECK_INT(t[i].mismatches, 0);
  }
  bd_buf_free(&want);
  bd_qr_design_free(d);
}

/* The decoding guard: the seed page's design scans; eye shape pairs whose
 * diagonals break the finder proportions are refused, naming the shape
 * (zxing-cpp reads neither; see qr_scan.c). */
static void test_scan_guard(void) {
  const char *p = "https://qr.example.com/s/Ab3dE5fG";
  static const struct {
    const char *design;
    int want;
    const char *param;
  } cases[] = {
      {"{\"error_correction\": \"Q\", \"gradient\": {\"start\": \"#005ae0\", \"end\": \"#00c2ff\"},"
       " \"eye_colors\": {\"frame\": \"#005ae0\", \"ball\": \"#004bb8\"}}",
       BD_QR_SCAN_OK, NULL},
      {"{\"shapes\": {\"body\": \"dots\", \"eye_frame\": \"circle\", \"eye_ball\": \"circle\"}}",
       BD_QR_SCAN_OK, NULL},
      {"{\"shapes\": {\"eye_frame\": \"rounded\", \"eye_ball\": \"square\"}}", BD_QR_SCAN_OK, NULL},
      {"{\"shapes\": {\"eye_frame\": \"circle\", \"eye_ball\": \"square\"}}", BD_QR_SCAN_FAILS,
       "design.shapes.eye_frame"},
      {"{\"shapes\": {\"body\": \"dots\", \"eye_frame\": \"square\", \"eye_ball\": \"circle\"}}",
       BD_QR_SCAN_FAILS, "design.shapes.eye_ball"},
  };
  for (size_t i = 0; i < BD_ARRAY_LEN(cases); i++) {
    char err[480];
    const char *param = NULL;
    bd_qr_design_t *d = design_of(cases[i].design, err, sizeof err, &param);
    CHECK(d != NULL);
    if (!d) continue;
    int rc = bd_qr_scan_check(p, d, err, sizeof err, &param);
    if (rc != cases[i].want) fprintf(stderr, "  %s: %d %s\n", cases[i].design, rc, err);
    CHECK(rc == cases[i].want);
    if (cases[i].param) CHECK_STR(param, cases[i].param);
    bd_qr_design_free(d);
  }
  CHECK(bd_qr_symbol_version("x", 'M') == 1);
  CHECK(bd_qr_symbol_version(p, 'H') > bd_qr_symbol_version(p, 'L'));
}

int main(void) {
  RUN(test_payload_url_utm);
  RUN(test_payload_text);
  RUN(test_payload_email);
  RUN(test_payload_phone_sms);
  RUN(test_payload_wifi);
  RUN(test_payload_event);
  RUN(test_payload_vcard);
  RUN(test_design_parse_and_json);
  RUN(test_design_errors);
  RUN(test_logo_bomb);
  RUN(test_render_every_type);
  RUN(test_render_png_fast_path);
  RUN(test_render_fast_path_pixels);
  RUN(test_render_designs);
  RUN(test_render_logo);
  RUN(test_render_transparent);
  RUN(test_render_formats);
  RUN(test_render_threads);
  RUN(test_scan_guard);
  UNIT_DONE();
}
