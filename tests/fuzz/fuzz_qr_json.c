/* fuzz_qr_json: JSON bodies of the QR surface (/v1), through the same
 * steps POST /v1/batches and POST /v1/qr-codes take before the database:
 * the depth pre-check (bd_json_depth), jansson with duplicate keys
 * rejected, the envelope (items array, design object), the design
 * (bd_qr_design_parse, and its normalised form must parse back to the same
 * JSON), each item (qr_item_parse: target -> payload, UTM merge, tags,
 * folder) and the stored code row (qr_item_code_json). Rendering is not
 * fuzzed here (it is CPU-heavy and fed only with validated payloads);
 * bd_qr_fits is.
 */
#include "app.h"
#include "json.h"
#include "qr.h"
#include "qr_api.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  bd_app.cfg.public_url = strdup("https://q.example");
  bd_app.cfg.max_json_depth = 32;
  bd_app.cfg.max_qr_items = 1000;
  return 0;
}

static void check_design(json_t *design, bd_qr_design_t **out) {
  char err[256] = "";
  const char *param = NULL;
  bd_qr_design_t *d = bd_qr_design_parse(design, err, sizeof err, &param);
  if (!d) {
    if (!err[0]) abort(); /* an error always says why */
    *out = NULL;
    return;
  }
  /* normalised form round-trips */
  json_t *j1 = bd_qr_design_to_json(d);
  bd_qr_design_t *d2 = bd_qr_design_parse(j1, err, sizeof err, &param);
  if (!d2) {
    fprintf(stderr, "normalised design does not parse: %s\n", err);
    abort();
  }
  json_t *j2 = bd_qr_design_to_json(d2);
  if (!json_equal(j1, j2)) abort();
  bd_qr_design_t *d3 = bd_qr_design_copy(d2);
  (void)bd_qr_design_ec(d3);
  (void)bd_qr_design_is_plain(d3);
  const char *url;
  (void)bd_qr_design_remote_logo(design, &url);
  json_decref(j1);
  json_decref(j2);
  bd_qr_design_free(d2);
  bd_qr_design_free(d3);
  *out = d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 1 << 16) return 0;
  const char *p = (const char *)data;
  if (bd_json_depth(p, size) > 32) return 0; /* the server answers 400 before parsing */
  json_error_t jerr;
  json_t *body = json_loadb(p, size, JSON_REJECT_DUPLICATES, &jerr);
  if (!body) return 0;
  if (!json_is_object(body)) {
    json_decref(body);
    return 0;
  }
  json_t *design = json_object_get(body, "design");
  bd_qr_design_t *d = NULL;
  check_design(json_is_object(design) ? design : NULL, &d);
  if (!d) {
    json_decref(body);
    return 0;
  }
  json_t *items = json_object_get(body, "items");
  size_t i;
  json_t *it;
  bd_buf_t payload = BD_BUF_INIT;
  if (json_is_array(items) && json_array_size(items) <= 1000) {
    json_array_foreach(items, i, it) {
      char err[256] = "";
      qr_item_t item;
      if (qr_item_parse(it, d, &item, &payload, err, sizeof err)) {
        if (!payload.data) abort();
        (void)bd_qr_fits(payload.data, d);
        json_t *code = qr_item_code_json(&item, payload.data);
        char *text = json_dumps(code, JSON_COMPACT);
        if (!text) abort();
        free(text);
        json_decref(code);
      } else if (!err[0]) {
        abort();
      }
      bd_buf_reset(&payload);
    }
  } else {
    /* a single code body: the object itself is the item */
    char err[256] = "";
    qr_item_t item;
    if (qr_item_parse(body, d, &item, &payload, err, sizeof err)) {
      json_t *code = qr_item_code_json(&item, payload.data);
      json_decref(code);
    }
    bd_buf_reset(&payload);
    /* the payload builder on its own, with the target */
    json_t *target = json_object_get(body, "target");
    if (target) {
      bd_qr_type_t type;
      const char *param = NULL;
      if (bd_qr_payload(target, &type, &payload, err, sizeof err, &param) == 0)
        (void)bd_qr_type_name(type);
      bd_buf_reset(&payload);
      json_t *dest = json_object_get(target, "destination");
      if (json_is_string(dest) &&
          bd_qr_merge_utm(json_string_value(dest), json_object_get(target, "utm"), &payload, err,
                          sizeof err, &param) == 0 &&
          !payload.data)
        abort();
    }
  }
  bd_buf_free(&payload);
  bd_qr_design_free(d);
  json_decref(body);
  return 0;
}
