/* body.h: request bodies for loadgen, built once before the run and then
 * shared, read-only, by every request (so a request costs no allocation).
 * Not thread-safe (startup only). */
#ifndef LG_BODY_H
#define LG_BODY_H

#include <stddef.h>

typedef struct lg_body {
  char *data;              /* body bytes, owned (malloc), NULL when empty */
  size_t len;              /* body length */
  char content_type[128];  /* default Content-Type, "" for none */
} lg_body_t;

/* One --field name=value (form fields of generated multipart bodies). */
typedef struct lg_field {
  const char *name;  /* borrowed from argv */
  size_t name_len;   /* name is not NUL-terminated at '=' */
  const char *value; /* borrowed from argv */
} lg_field_t;

/* Builds a generated body from spec:
 *   qr-batch:N       {"items":[N items with target.destination URLs],
 *                     "design":{...}} for POST /v1/batches (N >= 1)
 *   csv-multipart:N  multipart/form-data: one text part per field (name
 *                     defaults to "loadgen", template_id to ""), then a
 *                     csv_file part "RecipientsEmail,RecipientsName,IssueDate"
 *                     with N rows
 *   rpc:JSON         JSON, sent as is
 * 0 on success; -1 with a message in err. */
__attribute__((warn_unused_result)) int lg_body_generate(lg_body_t *b, const char *spec, const lg_field_t *fields,
                                                         size_t nfields, char *err, size_t errsz);
/* Reads a whole file as the body (Content-Type application/octet-stream). */
__attribute__((warn_unused_result)) int lg_body_from_file(lg_body_t *b, const char *path, char *err, size_t errsz);
void lg_body_free(lg_body_t *b);

#endif
