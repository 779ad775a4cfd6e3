/* fetch.c: bounded GETs on the loop, through a multi handle of curl_uv.h. */
#include "fetch.h"

#include "curl_uv.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
  CURL *easy;             /* the transfer */
  bd_buf_t body;          /* response so far */
  size_t max;             /* size limit */
  bool too_big;           /* the limit was hit */
  bd_fetch_cb cb;         /* completion */
  void *ud;               /* its argument */
  char errbuf[CURL_ERROR_SIZE]; /* curl's message */
} xfer_t;

static struct {
  uv_loop_t *loop;        /* the loop */
  bd_curl_uv_t *curl;     /* the multi handle on the loop (NULL until first use) */
} F;

static void on_done(void *ud, CURL *e, CURLcode res) {
  xfer_t *x;
  curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
  long status = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  char *ct = NULL;
  curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &ct);
  char ctype[128];
  snprintf(ctype, sizeof ctype, "%s", ct ? ct : "");
  curl_easy_cleanup(e);
  char msg[300];
  int err = 1;
  if (x->too_big || res == CURLE_FILESIZE_EXCEEDED) snprintf(msg, sizeof msg, "larger than %zu bytes", x->max);
  else if (res != CURLE_OK) snprintf(msg, sizeof msg, "%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(res));
  else if (status != 200) snprintf(msg, sizeof msg, "answered HTTP %ld", status);
  else err = 0, msg[0] = '\0';
  x->cb(x->ud, err, msg, &x->body, ctype);
  bd_buf_free(&x->body);
  free(x);
}

static size_t on_data(char *p, size_t size, size_t n, void *ud) {
  xfer_t *x = ud;
  size_t len = size * n;
  if (x->body.len + len > x->max) {
    x->too_big = true;
    return 0; /* aborts the transfer */
  }
  bd_buf_append(&x->body, p, len);
  return len;
}

void bd_fetch_init(uv_loop_t *loop) { F.loop = loop; }

static bool ensure_multi(void) {
  if (!F.curl) F.curl = bd_curl_uv_new(F.loop, on_done, NULL);
  return F.curl != NULL;
}

bool bd_fetch_url_host(const char *url, char *out, size_t outsz) {
  CURLU *u = curl_url();
  char *scheme = NULL, *host = NULL;
  bool ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
            curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
            curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
            (!strcmp(scheme, "http") || !strcmp(scheme, "https")) && strlen(host) < outsz;
  if (ok) {
    size_t i = 0;
    for (; host[i]; i++) out[i] = (char)tolower((unsigned char)host[i]);
    out[i] = '\0';
  }
  curl_free(scheme);
  curl_free(host);
  curl_url_cleanup(u);
  return ok;
}

int bd_fetch(const char *url, size_t max_bytes, uint32_t timeout_ms, bd_fetch_cb cb, void *ud) {
  if (!ensure_multi()) return -1;
  xfer_t *x = bd_calloc(1, sizeof *x);
  x->max = max_bytes;
  x->cb = cb;
  x->ud = ud;
  CURL *e = curl_easy_init();
  if (!e) {
    free(x);
    return -1;
  }
  x->easy = e;
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_PRIVATE, x);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max_bytes);
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "batchd/" BATCHD_VERSION);
  if (bd_curl_uv_add(F.curl, e) != 0) {
    curl_easy_cleanup(e);
    free(x);
    return -1;
  }
  return 0; /* `cb` never runs from inside this call (curl_uv.h) */
}

void bd_fetch_close(void) {
  /* called at shutdown once requests have drained, so nothing is in flight;
   * a transfer that still is would only lose its (discarded) answer */
  bd_curl_uv_close(F.curl);
  F.curl = NULL;
}
