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

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* RFC 8187 ext-value (charset'language'pct-encoded), decoded in place: the
 * bytes of UTF-8, or ISO-8859-1 with bytes above 0x7F replaced by '_' (we
 * cannot widen in place and the name is informational). A value that is
 * not an ext-value is kept as sent: the part still names a file. */
static bd_str_t ext_value(char *s, size_t n) {
  char *q1 = memchr(s, '\'', n), *q2 = q1 ? memchr(q1 + 1, '\'', n - (size_t)(q1 + 1 - s)) : NULL;
  if (!q2) return (bd_str_t){s, n};
  bd_str_t cs = {s, (size_t)(q1 - s)};
  bool latin1 = bd_str_ieq(cs, "ISO-8859-1");
  if (!latin1 && !bd_str_ieq(cs, "UTF-8")) return (bd_str_t){s, n};
  char *e = s + n, *w = s;
  for (char *r = q2 + 1; r < e; r++) /* validate before overwriting anything */
    if (*r == '%' && (e - r < 3 || hexval(r[1]) < 0 || hexval(r[2]) < 0)) return (bd_str_t){s, n};
  for (char *r = q2 + 1; r < e; r++) {
    char c = *r;
    if (c == '%') c = (char)(hexval(r[1]) * 16 + hexval(r[2])), r += 2;
    if (latin1 && (unsigned char)c >= 0x80) c = '_';
    *w++ = c; /* w never passes r: decoding only shortens */
  }
  return (bd_str_t){s, (size_t)(w - s)};
}

static int parse_disposition(char *s, char *end, bd_mp_part_t *part) {
  char *t = s;
  while (t < end && *t != ';') t++;
  if (!bd_str_ieq(trim(s, t), "form-data")) return -1;
  bool have_name = false;
  bd_str_t n, v, ext = {NULL, 0};
  int rc;
  while ((rc = next_param(&t, end, &n, &v)) == 1) {
    if (bd_str_ieq(n, "name") && !have_name) part->name = v, have_name = true;
    else if (bd_str_ieq(n, "filename") && !part->filename.p) part->filename = v;
    else if (bd_str_ieq(n, "filename*") && !ext.p) ext = v;
  }
  if (rc < 0 || !have_name) return -1;
  if (ext.p) part->filename = ext_value((char *)ext.p, ext.len); /* as busboy: filename* wins */
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

/* Every step below handles the byte(s) at p[*i] in the current state and
 * advances *i past what it consumed. It returns BD_MP_OK to go on,
 * BD_MP_PAUSED (a callback paused: *i already counts the bytes handed to
 * it) or a negative status, which is then also m->err (sticky). State must
 * already describe "after this callback" when a callback runs. */

/* A step's result for a callback's: go on, pause, or abort for good. */
static int cb_status(bd_mp_t *m, int rc) {
  if (rc == BD_MP_CB_OK) return BD_MP_OK;
  if (rc == BD_MP_CB_PAUSE) return BD_MP_PAUSED;
  return m->err = BD_MP_ECALLBACK;
}

/* Runs callback `fn` (a NULL member counts as BD_MP_CB_OK): a step's result. */
#define CALL(m, fn, ...) cb_status((m), (m)->cb.fn ? (m)->cb.fn((m)->ud, ##__VA_ARGS__) : BD_MP_CB_OK)

static int fail(bd_mp_t *m, int code) { return m->err = code; }

/* Finds the next delimiter candidate in p[pos..n): returns its offset (n if
 * none) and sets *full when it is complete; otherwise the candidate runs
 * off the end of the chunk. A complete CRLF "--" boundary is a delimiter
 * whatever follows it: what may follow is checked by the states after it. */
static size_t find_delim(const bd_mp_t *m, const char *p, size_t pos, size_t n, bool *full) {
  *full = false;
  while (pos < n) {
    const char *cr = memchr(p + pos, '\r', n - pos);
    if (!cr) break;
    size_t k = (size_t)(cr - p), avail = n - k;
    if (avail >= m->dlen) {
      if (memcmp(cr, m->delim, m->dlen) == 0) {
        *full = true;
        return k;
      }
    } else if (memcmp(cr, m->delim, avail) == 0) {
      return k; /* candidate runs off the end of the chunk */
    }
    pos = k + 1;
  }
  return n;
}

/* A whole delimiter was consumed: the current part (if any) ends. */
static int delimiter_seen(bd_mp_t *m) {
  bool body = m->state == S_BODY;
  m->state = S_AFTER_DELIM;
  return body ? CALL(m, on_part_end) : BD_MP_OK;
}

/* S_PREAMBLE, S_BODY with m->match bytes of a delimiter held from an
 * earlier chunk: p[*i] extends it, completes it, or proves it data. */
static int scan_held(bd_mp_t *m, const char *p, size_t *i) {
  if (p[*i] == m->delim[m->match]) {
    m->match++, (*i)++;
    if (m->match < m->dlen) return BD_MP_OK;
    m->match = 0;
    return delimiter_seen(m);
  }
  size_t held = m->match; /* not a delimiter: replay what we held back */
  m->match = 0;
  /* p[*i] is examined again in scan mode */
  return m->state == S_BODY ? CALL(m, on_part_data, m->delim, held) : BD_MP_OK;
}

/* S_PREAMBLE, S_BODY, nothing held: hands the bytes up to the next
 * delimiter candidate to on_part_data (in S_BODY), then consumes the
 * delimiter or holds the candidate's prefix that ends the chunk. */
static int scan_run(bd_mp_t *m, const char *p, size_t n, size_t *i) {
  size_t start = *i;
  bool full;
  size_t at = find_delim(m, p, start, n, &full);
  if (m->state == S_BODY && at > start) {
    *i = at; /* on pause, the delimiter candidate is re-scanned on re-feed */
    int st = CALL(m, on_part_data, p + start, at - start);
    if (st != BD_MP_OK) return st;
  }
  if (at == n) {
    *i = n;
    return BD_MP_OK;
  }
  if (!full) {
    m->match = n - at;
    *i = n;
    return BD_MP_OK;
  }
  *i = at + m->dlen;
  return delimiter_seen(m);
}

/* S_AFTER_DELIM: "-" may start the closing "--"; padding or the line end
 * go on to S_PAD; anything else is a body that another parser (busboy, a
 * WAF) would split here while a lenient one reads it as data: refused. */
static int after_delim(bd_mp_t *m, const char *p, size_t *i) {
  if (p[*i] == '-') {
    m->state = S_CLOSE, (*i)++;
    return BD_MP_OK;
  }
  if (!ows(p[*i]) && p[*i] != '\r' && p[*i] != '\n') return fail(m, BD_MP_ESYNTAX);
  m->state = S_PAD;
  return BD_MP_OK;
}

/* The LF ending the boundary line at p[*i]: a new part's headers follow. */
static int begin_part(bd_mp_t *m, size_t *i) {
  (*i)++;
  if (++m->nparts > m->lim.max_parts) return fail(m, BD_MP_ETOO_MANY_PARTS);
  m->hlen = m->hline = 0;
  m->state = S_HEADERS;
  return BD_MP_OK;
}

/* S_PAD: spaces and tabs up to the CRLF or LF of the boundary line. */
static int boundary_pad(bd_mp_t *m, const char *p, size_t *i) {
  if (ows(p[*i])) {
    (*i)++;
    return BD_MP_OK;
  }
  if (p[*i] == '\r') {
    m->state = S_LF, (*i)++;
    return BD_MP_OK;
  }
  if (p[*i] != '\n') return fail(m, BD_MP_ESYNTAX);
  return begin_part(m, i);
}

/* S_LF: the boundary line's CR must be followed by LF. */
static int boundary_lf(bd_mp_t *m, const char *p, size_t *i) {
  if (p[*i] != '\n') return fail(m, BD_MP_ESYNTAX);
  return begin_part(m, i);
}

/* S_CLOSE: the second '-' of the closing delimiter. */
static int close_dash(bd_mp_t *m, const char *p, size_t *i) {
  if (p[*i] != '-') return fail(m, BD_MP_ESYNTAX);
  (*i)++;
  m->state = S_EPILOGUE;
  m->done = true;
  return CALL(m, on_done);
}

/* The empty line ended the header block hbuf[0..hline): the part begins. */
static int headers_done(bd_mp_t *m) {
  bd_mp_part_t part;
  int hr = parse_headers(m, m->hline, &part);
  if (hr != BD_MP_OK) return fail(m, hr);
  m->state = S_BODY;
  m->match = 0;
  return CALL(m, on_part_begin, &part);
}

/* S_HEADERS: collects header bytes up to and including the next LF. */
static int header_line(bd_mp_t *m, const char *p, size_t n, size_t *i) {
  const char *nl = memchr(p + *i, '\n', n - *i);
  size_t end = nl ? (size_t)(nl - p) + 1 : n, len = end - *i;
  if (len > m->lim.max_header_bytes - m->hlen) return fail(m, BD_MP_EHEADER_TOO_BIG);
  memcpy(m->hbuf + m->hlen, p + *i, len);
  m->hlen += len;
  *i = end;
  if (!nl) return BD_MP_OK;
  size_t ll = m->hlen - m->hline - 1; /* the line without its LF */
  if (ll && m->hbuf[m->hline + ll - 1] == '\r') ll--;
  if (ll) {
    m->hline = m->hlen;
    return BD_MP_OK;
  }
  return headers_done(m);
}

/* One step in the current state (i < n). */
static int step(bd_mp_t *m, const char *p, size_t n, size_t *i) {
  switch (m->state) {
  case S_PREAMBLE:
  case S_BODY: return m->match ? scan_held(m, p, i) : scan_run(m, p, n, i);
  case S_AFTER_DELIM: return after_delim(m, p, i);
  case S_PAD: return boundary_pad(m, p, i);
  case S_LF: return boundary_lf(m, p, i);
  case S_CLOSE: return close_dash(m, p, i);
  case S_HEADERS: return header_line(m, p, n, i);
  case S_EPILOGUE:
    *i = n; /* discarded */
    return BD_MP_OK;
  }
  return BD_MP_OK;
}

#undef CALL

size_t bd_mp_feed(bd_mp_t *m, const char *p, size_t n, int *status) {
  size_t i = 0;
  if (m->err) {
    *status = m->err;
    return 0;
  }
  while (i < n) {
    int st = step(m, p, n, &i);
    if (st != BD_MP_OK) {
      *status = st;
      return i;
    }
  }
  *status = m->done ? BD_MP_DONE : BD_MP_OK;
  return i;
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
