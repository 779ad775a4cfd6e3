/* body.c: generated and file request bodies (see body.h). */
#include "body.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growable byte buffer for building bodies at startup. */
typedef struct {
  char *p;    /* bytes, owned */
  size_t n;   /* used */
  size_t cap; /* allocated */
  int oom;    /* an allocation failed; the contents are incomplete */
} sbuf_t;

static void sb_reserve(sbuf_t *s, size_t more) {
  if (s->oom || s->n + more + 1 <= s->cap) return;
  size_t cap = s->cap ? s->cap : 4096;
  while (cap < s->n + more + 1) cap *= 2;
  char *p = realloc(s->p, cap);
  if (!p) {
    s->oom = 1;
    return;
  }
  s->p = p;
  s->cap = cap;
}

static void sb_add(sbuf_t *s, const char *d, size_t n) {
  sb_reserve(s, n);
  if (s->oom) return;
  memcpy(s->p + s->n, d, n);
  s->n += n;
  s->p[s->n] = 0;
}

static void sb_str(sbuf_t *s, const char *d) { sb_add(s, d, strlen(d)); }

__attribute__((format(printf, 2, 3))) static void sb_fmt(sbuf_t *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  sb_reserve(s, (size_t)n);
  if (s->oom) return;
  va_start(ap, fmt);
  vsnprintf(s->p + s->n, (size_t)n + 1, fmt, ap);
  va_end(ap);
  s->n += (size_t)n;
}

static int parse_count(const char *s, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < 1 || v > 100000000) return -1;
  *out = v;
  return 0;
}

static const char *field_value(const lg_field_t *f, size_t n, const char *name, const char *dflt) {
  for (size_t i = 0; i < n; i++)
    if (f[i].name_len == strlen(name) && !memcmp(f[i].name, name, f[i].name_len)) return f[i].value;
  return dflt;
}

static void qr_batch(sbuf_t *s, long n) {
  sb_str(s, "{\"items\":[");
  for (long i = 0; i < n; i++)
    sb_fmt(s,
           "%s{\"name\":\"item %ld\",\"target\":{\"destination\":\"https://example.com/p/%ld\","
           "\"utm\":{\"source\":\"loadgen\"}}}",
           i ? "," : "", i, i);
  sb_str(s, "],\"design\":{\"error_correction\":\"M\",\"colors\":{\"foreground\":\"#000000\","
            "\"background\":\"#ffffff\"},\"shapes\":{\"body\":\"square\"}}}");
}

#define BOUNDARY "loadgen-7d41b3c9e2a8f650"

static void text_part(sbuf_t *s, const char *name, size_t name_len, const char *value) {
  sb_str(s, "--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"");
  sb_add(s, name, name_len);
  sb_str(s, "\"\r\n\r\n");
  sb_str(s, value);
  sb_str(s, "\r\n");
}

static void csv_multipart(sbuf_t *s, long n, const lg_field_t *f, size_t nf) {
  /* name and template_id first, always present, then any other field */
  text_part(s, "name", 4, field_value(f, nf, "name", "loadgen"));
  text_part(s, "template_id", 11, field_value(f, nf, "template_id", ""));
  for (size_t i = 0; i < nf; i++) {
    if ((f[i].name_len == 4 && !memcmp(f[i].name, "name", 4)) ||
        (f[i].name_len == 11 && !memcmp(f[i].name, "template_id", 11)))
      continue;
    text_part(s, f[i].name, f[i].name_len, f[i].value);
  }
  sb_str(s, "--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"csv_file\"; filename=\"recipients.csv\"\r\n"
            "Content-Type: text/csv\r\n\r\nRecipientsEmail,RecipientsName,IssueDate\r\n");
  /* IssueDate is DD-MM-YYYY, as the certificate API requires */
  for (long i = 0; i < n; i++)
    sb_fmt(s, "recipient%ld@example.com,Recipient %ld,%02ld-%02ld-2024\r\n", i, i, i % 28 + 1, i % 12 + 1);
  sb_str(s, "\r\n--" BOUNDARY "--\r\n");
}

int lg_body_generate(lg_body_t *b, const char *spec, const lg_field_t *fields, size_t nfields, char *err,
                     size_t errsz) {
  memset(b, 0, sizeof *b);
  sbuf_t s = {0};
  long n;
  if (!strncmp(spec, "qr-batch:", 9)) {
    if (parse_count(spec + 9, &n)) goto bad_count;
    qr_batch(&s, n);
    snprintf(b->content_type, sizeof b->content_type, "application/json");
  } else if (!strncmp(spec, "csv-multipart:", 14)) {
    if (parse_count(spec + 14, &n)) goto bad_count;
    csv_multipart(&s, n, fields, nfields);
    snprintf(b->content_type, sizeof b->content_type, "multipart/form-data; boundary=" BOUNDARY);
  } else if (!strncmp(spec, "rpc:", 4)) {
    sb_str(&s, spec + 4);
    snprintf(b->content_type, sizeof b->content_type, "application/json");
  } else {
    snprintf(err, errsz, "unknown --gen '%s' (qr-batch:N, csv-multipart:N, rpc:JSON)", spec);
    return -1;
  }
  if (s.oom) {
    free(s.p);
    snprintf(err, errsz, "out of memory building the body");
    return -1;
  }
  b->data = s.p;
  b->len = s.n;
  return 0;
bad_count:
  snprintf(err, errsz, "bad count in --gen '%s' (1..100000000)", spec);
  return -1;
}

int lg_body_from_file(lg_body_t *b, const char *path, char *err, size_t errsz) {
  memset(b, 0, sizeof *b);
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errsz, "%s: %s", path, strerror(errno));
    return -1;
  }
  sbuf_t s = {0};
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) sb_add(&s, buf, n);
  int rerr = ferror(f);
  fclose(f);
  if (rerr || s.oom) {
    free(s.p);
    snprintf(err, errsz, "%s: %s", path, rerr ? "read error" : "out of memory");
    return -1;
  }
  b->data = s.p;
  b->len = s.n;
  snprintf(b->content_type, sizeof b->content_type, "application/octet-stream");
  return 0;
}

void lg_body_free(lg_body_t *b) {
  free(b->data);
  b->data = NULL;
  b->len = 0;
}
