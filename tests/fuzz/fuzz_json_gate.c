/* fuzz_json_gate: the gate every JSON body of every surface passes before
 * anything looks inside it (/v1 bodies, /business template and approval
 * bodies, /rpc arguments): bd_json_depth, our own bracket scanner that
 * refuses over-deep bodies before jansson recurses into them, then jansson.
 * Properties: the scanner never reads past the body and never reports less
 * than the real nesting of a text jansson accepts (an under-count would let
 * a deep body through to the parser), and re-serialised JSON scans to the
 * same depth. The /rpc arguments themselves are interpreted by the
 * PL/pgSQL functions, beyond libFuzzer's reach: test_rpc_fuzz.py sends them
 * generated bodies through the real server instead.
 */
#include "json.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int depth_of(const json_t *v) {
  int d = 0;
  if (json_is_object(v)) {
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x) {
      int e = depth_of(x);
      if (e > d) d = e;
    }
    return d + 1;
  }
  if (json_is_array(v)) {
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) {
      int e = depth_of(x);
      if (e > d) d = e;
    }
    return d + 1;
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 1 << 16) return 0;
  /* an exact-size copy: ASan catches any read past the body */
  char *p = malloc(size ? size : 1);
  memcpy(p, data, size);
  int depth = bd_json_depth(p, size);
  if (depth > 64 || depth < -1) {
    free(p);
    return 0; /* refused with 400 before parsing */
  }
  json_error_t jerr;
  json_t *v = json_loadb(p, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
  if (v) {
    int real = depth_of(v);
    if (depth < real) {
      fprintf(stderr, "bd_json_depth %d < real depth %d\n", depth, real);
      abort();
    }
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text) abort();
    if (bd_json_depth(text, strlen(text)) != real) {
      fprintf(stderr, "re-serialised depth %d != %d\n", bd_json_depth(text, strlen(text)), real);
      abort();
    }
    free(text);
    json_decref(v);
  }
  free(p);
  return 0;
}
