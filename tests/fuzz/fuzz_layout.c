/* fuzz_layout: the certificate template body of POST /business/templates,
 * through what the server does with it before the database: the depth
 * pre-check, jansson, bd_cert_layout_parse (every member, type, range,
 * colour, data: URL and PNG image of the layout, the signatory fields) and,
 * for a layout that parses, the placeholder substitution of every text
 * element with an input like a roster row's (custom columns included), the
 * page size and the signatory fields. An error always names its field
 * ("layout...."). Rendering is not fuzzed here: it is CPU-heavy and covered
 * by the unit and integration tests with layouts that parse.
 */
#include "cert_render.h"
#include "json.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 1 << 16) return 0;
  const char *p = (const char *)data;
  if (bd_json_depth(p, size) > 32) return 0; /* the server answers 400 before parsing */
  json_error_t jerr;
  json_t *body = json_loadb(p, size, JSON_REJECT_DUPLICATES, &jerr);
  if (!body) return 0;
  /* a template body carries the layout in "layout"; a bare layout is fuzzed too */
  json_t *layout = json_is_object(body) && json_object_get(body, "layout") ? json_object_get(body, "layout") : body;
  char err[512] = "";
  bd_cert_limits_t lim = {.max_elements = 0, .max_image_bytes = 64 << 10, .max_layout_image_bytes = 256 << 10};
  bd_cert_layout_t *l = bd_cert_layout_parse_ex(layout, &lim, err, sizeof err);
  if (!l) {
    if (strncmp(err, "layout", 6) != 0) { /* an error always names the field */
      fprintf(stderr, "error without a field: \"%s\"\n", err);
      abort();
    }
    json_decref(body);
    return 0;
  }
  double w = bd_cert_layout_width(l), h = bd_cert_layout_height(l);
  if (!(w >= BD_CERT_PAGE_MIN && w <= BD_CERT_PAGE_MAX && h >= BD_CERT_PAGE_MIN && h <= BD_CERT_PAGE_MAX)) abort();
  size_t ns = bd_cert_layout_signatory_count(l);
  for (size_t i = 0; i < ns; i++) {
    char want[32];
    snprintf(want, sizeof want, "signatory_%zu", i + 1);
    if (strcmp(bd_cert_layout_signatory_field(l, i), want) != 0) abort(); /* no gaps, in order */
  }
  json_t *custom = json_pack("{s:s, s:s, s:s}", "Course", "Cryptography {{RecipientsName}}", "Grade", "A+",
                             "", "empty header");
  bd_cert_input_t in = {.recipient_name = "Zoë {{ReferenceId}}",
                        .recipient_email = "zoe@example.org",
                        .issue_date = "2026-12-01",
                        .reference_id = "CERT-0001",
                        .verification_url = "https://b.example/verify/CERT-0001",
                        .institution_name = "Université d'Été",
                        .batch_name = "Cohort }}{{",
                        .custom_data = custom};
  bd_buf_t out = BD_BUF_INIT;
  for (size_t i = 0; i < BD_CERT_MAX_ELEMENTS + 1; i++) {
    bd_buf_reset(&out);
    if (!bd_cert_layout_text(l, i, &in, &out)) continue;
    /* values are inserted once, never re-expanded: the worst case is every
     * placeholder of a 2000-byte text replaced by the longest value */
    if (out.len > BD_CERT_MAX_TEXT_BYTES * 40) abort();
  }
  bd_buf_free(&out);
  json_decref(custom);
  bd_cert_layout_free(l);
  json_decref(body);
  return 0;
}
