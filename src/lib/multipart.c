/* multipart.c: multipart/form-data push parser.
 *
 * The body scan is the hot path (a 75 MB roster passes through it): it
 * looks for CR with memchr and compares the delimiter in place, so a part's
 * bytes go to on_part_data in runs as long as the fed chunk. Only when a
 * delimiter candidate straddles the end of a chunk does the parser remember
 * how much of it matched (`match`); those bytes are always a prefix of the
 * delimiter itself, so no lookbehind copy is needed: if the match fails
 * they are replayed from `delim`. A boundary contains no CR, so a failed
 * candidate can never hide the start of another one inside its prefix.
 */
#include "multipart.h"

#include <stdlib.h>
#include <strings.h>

#define MAX_BOUNDARY 70 /* RFC 2046 section 5.1.1 */

enum {
  S_PREAMBLE,    /* before the first delimiter: discarded */
  S_BODY,        /* inside a part's body */
  S_AFTER_DELIM, /* delimiter seen: "--" closes, else padding + line end */
  S_PAD,         /* transport padding up to the end of the boundary line */
  S_LF,          /* CR seen at the end of the boundary line */
  S_CLOSE,       /* first '-' of the closing "--" seen */
  S_HEADERS,     /* collecting a part's header block */
  S_EPILOGUE,    /* after the closing delimiter: discarded */
};

struct bd_mp {
  bd_mp_callbacks_t cb;          /* copied from bd_mp_new */
  void *ud;                      /* passed to every callback */
  bd_mp_limits_t lim;            /* header block and part count limits */
  char delim[4 + MAX_BOUNDARY];  /* "\r\n--" boundary */
  size_t dlen;                   /* bytes in delim */
  int state;                     /* S_* */
  size_t match;                  /* delimiter bytes matched at the end of the last chunk */
  size_t nparts;                 /* parts begun */
  int err;                       /* sticky negative status, 0 if none */
  bool done;                     /* closing delimiter seen */
  char *hbuf;                    /* current part's header block (lim.max_header_bytes) */
  size_t hlen;                   /* bytes in hbuf */
  size_t hline;                  /* offset in hbuf of the line being collected */
};

void bd_mp_limits_default(bd_mp_limits_t *l) { *l = (bd_mp_limits_t){.max_header_bytes = 16 * 1024, .max_parts = 1000}; }

const char *bd_mp_strerror(int st) {
  switch (st) {
  case BD_MP_OK: return "ok";
  case BD_MP_PAUSED: return "paused";
  case BD_MP_DONE: return "done";
  case BD_MP_ENOT_MULTIPART: return "content type is not multipart/form-data";
  case BD_MP_ENO_BOUNDARY: return "multipart content type has no boundary";
  case BD_MP_EBAD_BOUNDARY: return "multipart boundary is empty, longer than 70 bytes or malformed";
  case BD_MP_EHEADER_TOO_BIG: return "multipart part headers too large";
  case BD_MP_ETOO_MANY_PARTS: return "too many multipart parts";
  case BD_MP_EBAD_HEADER: return "malformed multipart part header";
  case BD_MP_ESYNTAX: return "malformed multipart boundary line";
  case BD_MP_ETRUNCATED: return "multipart body is truncated (no closing boundary)";
  case BD_MP_ECALLBACK: return "multipart consumer aborted";
  default: return "unknown multipart status";
  }
}

/* ---- header value parsing (RFC 9110 parameters) ----------------------- */

static bool ows(char c) { return c == ' ' || c == '\t'; }

static bd_str_t trim(const char *s, const char *e) {
  while (s < e && ows(*s)) s++;
  while (e > s && ows(e[-1])) e--;
  return (bd_str_t){s, (size_t)(e - s)};
}

/* Next `; name=value` at *s (before end). Quoted-string values are
 * unescaped in place, which only ever shortens them. Returns 1 with a
 * parameter, 0 at the end, -1 on syntax errors. */
static int next_param(char **sp, char *end, bd_str_t *name, bd_str_t *val) {
  char *s = *sp;
  while (s < end && ows(*s)) s++;
  if (s == end) return 0;
  if (*s != ';') return -1;
  s++;
  while (s < end && ows(*s)) s++;
  if (s == end) return 0; /* a trailing ';' is harmless */
  char *n0 = s;
  while (s < end && *s != '=' && *s != ';' && !ows(*s)) s++;
  *name = (bd_str_t){n0, (size_t)(s - n0)};
  while (s < end && ows(*s)) s++;
  if (!name->len || s == end || *s != '=') return -1;
  s++;
  while (s < end && ows(*s)) s++;
  if (s < end && *s == '"') {
    char *w = ++s, *v0 = w;
    for (;;) {
      if (s == end) return -1; /* unterminated quoted-string */
      if (*s == '"') break;
      if (*s == '\\' && s + 1 < end) s++;
      *w++ = *s++;
    }
    s++;
    *val = (bd_str_t){v0, (size_t)(w - v0)};
  } else {
    char *v0 = s;
    while (s < end && *s != ';' && !ows(*s)) s++;
    *val = (bd_str_t){v0, (size_t)(s - v0)};
  }
  *sp = s;
  return 1;
}

static int parse_disposition(char *s, char *end, bd_mp_part_t *part) {
  char *t = s;
  while (t < end && *t != ';') t++;
  if (!bd_str_ieq(trim(s, t), "form-data")) return -1;
  bool have_name = false;
  bd_str_t n, v;
  int rc;
  while ((rc = next_param(&t, end, &n, &v)) == 1) {
    if (bd_str_ieq(n, "name") && !have_name) part->name = v, have_name = true;
    else if (bd_str_ieq(n, "filename") && !part->filename.p) part->filename = v;
  }
  if (rc < 0 || !have_name) return -1;
  if (!part->filename.p) part->filename.len = 0;
  return 0;
}

/* Parses the header block hbuf[0..len) (every line ends in LF). */
static int parse_headers(bd_mp_t *m, size_t len, bd_mp_part_t *part) {
  char *s = m->hbuf, *end = m->hbuf + len;
  bool have_cd = false;
  *part = (bd_mp_part_t){{"", 0}, {NULL, 0}, {NULL, 0}};
  while (s < end) {
    char *nl = memchr(s, '\n', (size_t)(end - s)), *le = nl;
    if (le > s && le[-1] == '\r') le--;
    if (ows(*s)) return BD_MP_EBAD_HEADER; /* obs-fold */
    char *colon = memchr(s, ':', (size_t)(le - s));
    if (!colon) return BD_MP_EBAD_HEADER;
    bd_str_t hn = trim(s, colon);
    if (bd_str_ieq(hn, "Content-Disposition")) {
      if (have_cd) return BD_MP_EBAD_HEADER;
      if (parse_disposition(colon + 1, le, part) != 0) return BD_MP_EBAD_HEADER;
      have_cd = true;
    } else if (bd_str_ieq(hn, "Content-Type")) {
      part->content_type = trim(colon + 1, le);
    }
    s = nl + 1;
  }
  return have_cd ? BD_MP_OK : BD_MP_EBAD_HEADER;
}

/* ---- lifecycle -------------------------------------------------------- */

int bd_mp_new(bd_str_t ct, const bd_mp_limits_t *limits, const bd_mp_callbacks_t *cb, void *ud, bd_mp_t **out) {
  *out = NULL;
  if (!ct.p || ct.len > 4096) return BD_MP_ENOT_MULTIPART;
  /* Work on a copy: next_param unescapes in place. */
  char *buf = bd_strndup(ct.p, ct.len), *end = buf + ct.len, *s = buf;
  while (s < end && *s != ';') s++;
  int rc = BD_MP_ENO_BOUNDARY;
  bd_str_t boundary = {NULL, 0}, n, v;
  if (!bd_str_ieq(trim(buf, s), "multipart/form-data")) {
    rc = BD_MP_ENOT_MULTIPART;
    goto out;
  }
  int pr;
  while ((pr = next_param(&s, end, &n, &v)) == 1)
    if (bd_str_ieq(n, "boundary") && !boundary.p) boundary = v;
  if (pr < 0 && !boundary.p) goto out; /* a broken parameter after the boundary is not our problem */
  if (!boundary.p) goto out;
  rc = BD_MP_EBAD_BOUNDARY;
  if (boundary.len == 0 || boundary.len > MAX_BOUNDARY || boundary.p[boundary.len - 1] == ' ') goto out;
  for (size_t i = 0; i < boundary.len; i++)
    if ((unsigned char)boundary.p[i] < 0x20 || (unsigned char)boundary.p[i] > 0x7E) goto out;

  bd_mp_t *m = bd_calloc(1, sizeof *m);
  if (limits) m->lim = *limits;
  else bd_mp_limits_default(&m->lim);
  if (!m->lim.max_header_bytes) m->lim.max_header_bytes = 16 * 1024;
  if (cb) m->cb = *cb;
  m->ud = ud;
  memcpy(m->delim, "\r\n--", 4);
  memcpy(m->delim + 4, boundary.p, boundary.len);
  m->dlen = 4 + boundary.len;
  m->state = S_PREAMBLE;
  m->match = 2; /* the body start counts as the CRLF before the first "--boundary" */
  m->hbuf = bd_malloc(m->lim.max_header_bytes);
  *out = m;
  rc = BD_MP_OK;
out:
  free(buf);
  return rc;
}

void bd_mp_free(bd_mp_t *m) {
  if (!m) return;
  free(m->hbuf);
  free(m);
}

size_t bd_mp_parts(const bd_mp_t *m) { return m->nparts; }

int bd_mp_finish(bd_mp_t *m) {
  if (m->err) return m->err;
  return m->done ? BD_MP_OK : BD_MP_ETRUNCATED;
}

/* ---- the push parser -------------------------------------------------- */

static bool delim_term(char c) { return c == '-' || c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

size_t bd_mp_feed(bd_mp_t *m, const char *p, size_t n, int *status) {
  size_t i = 0;
  int rc;
  if (m->err) {
    *status = m->err;
    return 0;
  }
/* Runs a callback; returns from bd_mp_feed on pause or abort. State must
 * already describe "after this callback" and i the bytes consumed. */
#define CALL(fn, ...)                                                  \
  do {                                                                 \
    rc = m->cb.fn ? m->cb.fn(m->ud, ##__VA_ARGS__) : BD_MP_CB_OK;      \
    if (rc != BD_MP_CB_OK) {                                           \
      if (rc == BD_MP_CB_PAUSE) {                                      \
        *status = BD_MP_PAUSED;                                        \
        return i;                                                      \
      }                                                                \
      goto abort_cb;                                                   \
    }                                                                  \
  } while (0)
#define FAIL(code)   \
  do {               \
    m->err = (code); \
    goto fail;       \
  } while (0)

  while (i < n) {
    switch (m->state) {
    case S_PREAMBLE:
    case S_BODY: {
      bool body = m->state == S_BODY;
      if (m->match) {
        /* Continue a delimiter that started in an earlier chunk. */
        if (m->match < m->dlen) {
          if (p[i] == m->delim[m->match]) {
            m->match++, i++;
            continue;
          }
        } else if (delim_term(p[i])) {
          m->match = 0;
          goto delimiter;
        }
        size_t held = m->match; /* not a delimiter: replay what we held back */
        m->match = 0;
        if (body) CALL(on_part_data, m->delim, held);
        continue; /* p[i] is examined again in scan mode */
      }
      size_t start = i, pos = i, at = n;
      bool full = false;
      while (pos < n) {
        const char *cr = memchr(p + pos, '\r', n - pos);
        if (!cr) break;
        size_t k = (size_t)(cr - p), avail = n - k;
        if (avail > m->dlen) {
          if (memcmp(cr, m->delim, m->dlen) == 0 && delim_term(cr[m->dlen])) {
            at = k, full = true;
            break;
          }
        } else if (memcmp(cr, m->delim, avail) == 0) {
          at = k; /* candidate runs off the end of the chunk */
          break;
        }
        pos = k + 1;
      }
      if (body && at > start) {
        i = at; /* on pause, the delimiter candidate is re-scanned on re-feed */
        CALL(on_part_data, p + start, at - start);
      }
      if (at == n) {
        i = n;
        continue;
      }
      if (!full) {
        m->match = n - at;
        i = n;
        continue;
      }
      i = at + m->dlen;
    delimiter:
      if (m->state == S_BODY) {
        m->state = S_AFTER_DELIM;
        CALL(on_part_end);
      }
      m->state = S_AFTER_DELIM;
      continue;
    }
    case S_AFTER_DELIM:
      if (p[i] == '-') {
        m->state = S_CLOSE, i++;
        continue;
      }
      m->state = S_PAD;
      continue;
    case S_PAD:
      if (ows(p[i])) {
        i++;
        continue;
      }
      if (p[i] == '\r') {
        m->state = S_LF, i++;
        continue;
      }
      if (p[i] != '\n') FAIL(BD_MP_ESYNTAX);
      goto begin_part;
    case S_LF:
      if (p[i] != '\n') FAIL(BD_MP_ESYNTAX);
    begin_part:
      i++;
      if (++m->nparts > m->lim.max_parts) FAIL(BD_MP_ETOO_MANY_PARTS);
      m->hlen = m->hline = 0;
      m->state = S_HEADERS;
      continue;
    case S_CLOSE:
      if (p[i] != '-') FAIL(BD_MP_ESYNTAX);
      i++;
      m->state = S_EPILOGUE;
      m->done = true;
      CALL(on_done);
      continue;
    case S_HEADERS: {
      const char *nl = memchr(p + i, '\n', n - i);
      size_t end = nl ? (size_t)(nl - p) + 1 : n, len = end - i;
      if (len > m->lim.max_header_bytes - m->hlen) FAIL(BD_MP_EHEADER_TOO_BIG);
      memcpy(m->hbuf + m->hlen, p + i, len);
      m->hlen += len;
      i = end;
      if (!nl) continue;
      size_t ll = m->hlen - m->hline - 1; /* the line without its LF */
      if (ll && m->hbuf[m->hline + ll - 1] == '\r') ll--;
      if (ll) {
        m->hline = m->hlen;
        continue;
      }
      bd_mp_part_t part;
      int hr = parse_headers(m, m->hline, &part);
      if (hr != BD_MP_OK) FAIL(hr);
      m->state = S_BODY;
      m->match = 0;
      CALL(on_part_begin, &part);
      continue;
    }
    case S_EPILOGUE:
      i = n;
      continue;
    }
  }
  *status = m->done ? BD_MP_DONE : BD_MP_OK;
  return i;
abort_cb:
  m->err = BD_MP_ECALLBACK;
fail:
  *status = m->err;
  return i;
#undef CALL
#undef FAIL
}

/* ---- Laravel field names ---------------------------------------------- */

static bool parse_index(bd_str_t s, uint32_t *v) {
  if (s.len == 0 || s.len > 9 || (s.len > 1 && s.p[0] == '0')) return false;
  uint32_t x = 0;
  for (size_t i = 0; i < s.len; i++) {
    if (s.p[i] < '0' || s.p[i] > '9') return false;
    x = x * 10 + (uint32_t)(s.p[i] - '0');
  }
  *v = x;
  return true;
}

static bool all_digits(bd_str_t s) {
  for (size_t i = 0; i < s.len; i++)
    if (s.p[i] < '0' || s.p[i] > '9') return false;
  return s.len > 0;
}

/* Reads "[inner]" at *s; inner must be non-empty and bracket-free. */
static bool bracket(const char **s, const char *end, bd_str_t *inner) {
  if (*s >= end || **s != '[') return false;
  const char *b = *s + 1, *c = memchr(b, ']', (size_t)(end - b));
  if (!c || c == b || memchr(b, '[', (size_t)(c - b))) return false;
  *inner = (bd_str_t){b, (size_t)(c - b)};
  *s = c + 1;
  return true;
}

bool bd_mp_parse_field_name(bd_str_t name, bd_mp_field_name_t *out) {
  *out = (bd_mp_field_name_t){{NULL, 0}, false, 0, {NULL, 0}};
  if (!name.p || !name.len) return false;
  const char *s = name.p, *end = name.p + name.len;
  const char *b = memchr(s, '[', name.len);
  if (memchr(s, ']', (size_t)((b ? b : end) - s))) return false;
  out->base = (bd_str_t){s, (size_t)((b ? b : end) - s)};
  if (!b) return true;
  if (!out->base.len) return false;
  s = b;
  bd_str_t first;
  if (!bracket(&s, end, &first)) return false;
  if (all_digits(first)) {
    if (!parse_index(first, &out->index)) return false;
    out->has_index = true;
    if (s == end) return true;
    if (!bracket(&s, end, &out->key)) return false;
  } else {
    out->key = first;
  }
  return s == end;
}
