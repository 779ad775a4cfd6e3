/* fuzz_gs1: GS1 Digital Link resolver paths (src/gs1.h).
 *
 * Input: the raw path, then optionally '?' and the raw query. A path that
 * parses is formatted back with bd_gs1_dl_format and must parse again to
 * the same GTIN, lot and serial (the URIs we mint are the URIs we
 * resolve). The value and GTIN validators get the same bytes too.
 */
#include "buf.h"
#include "gs1.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096) return 0;
  const char *p = (const char *)data;
  const char *q = memchr(p, '?', size);
  bd_str_t path = {p, q ? (size_t)(q - p) : size};
  bd_str_t query = q ? (bd_str_t){q + 1, size - path.len - 1} : (bd_str_t){"", 0};
  bd_gs1_dl_t dl;
  int rc = bd_gs1_dl_parse(path, query, &dl);
  (void)bd_gs1_strerror(rc);
  if (rc != BD_GS1_OK) {
    if (!memchr(dl.errmsg, '\0', sizeof dl.errmsg) || !dl.errmsg[0]) abort();
  } else {
    if (strlen(dl.gtin) != BD_GS1_GTIN14_LEN) abort();
    if (bd_gs1_gtin_normalise(dl.gtin, strlen(dl.gtin), (char[BD_GS1_GTIN14_LEN + 1]){0}) !=
        BD_GS1_OK)
      abort();
    bd_buf_t out = BD_BUF_INIT;
    if (bd_gs1_dl_format(&out, "https://id.example/", dl.gtin, dl.has_lot ? dl.lot : NULL,
                         dl.has_serial ? dl.serial : NULL) != BD_GS1_OK) {
      fprintf(stderr, "a parsed link does not format: %s %s %s\n", dl.gtin, dl.lot, dl.serial);
      abort();
    }
    const char *prefix = "https://id.example";
    if (out.len < strlen(prefix) || memcmp(out.data, prefix, strlen(prefix))) abort();
    bd_gs1_dl_t again;
    bd_str_t p2 = {out.data + strlen(prefix), out.len - strlen(prefix)};
    if (bd_gs1_dl_parse(p2, (bd_str_t){"", 0}, &again) != BD_GS1_OK ||
        strcmp(again.gtin, dl.gtin) || strcmp(again.lot, dl.lot) ||
        strcmp(again.serial, dl.serial) || again.has_lot != dl.has_lot ||
        again.has_serial != dl.has_serial) {
      fprintf(stderr, "round trip differs: %.*s\n", (int)out.len, out.data);
      abort();
    }
    bd_buf_free(&out);
  }
  char g[BD_GS1_GTIN14_LEN + 1];
  if (bd_gs1_gtin_normalise(p, size, g) == BD_GS1_OK && strlen(g) != BD_GS1_GTIN14_LEN) abort();
  (void)bd_gs1_value_check(p, size);
  (void)bd_gs1_check_digit(p, size);
  return 0;
}
