/* roster.c: streaming roster (CSV) validator producing COPY text.
 *
 * Data path per input byte: BOM check (first 3 bytes only) -> our CSV
 * state machine (spans of field bytes copied straight into the row buffer,
 * limits checked as they grow) -> field_end (UTF-8 check) -> record_end
 * (header handling or validation + one COPY line written with raw pointer
 * stores after a single reserve). No allocation per row: the row buffer and
 * the field table are reused and only grow to their limits.
 *
 * The parser is ours rather than libcsv's: libcsv cannot read a field the
 * way Python's csv does once text follows a closing quote ("a"b), and
 * strict mode refuses a quote inside an unquoted field, which is data.
 */
#include "roster.h"

#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

/* SWAR tests on 8 bytes at once; each is exact about whether some byte
 * matches (not about which), which is all the fast paths need. */
#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull
static inline uint64_t has_byte(uint64_t v, unsigned char c) {
  uint64_t x = v ^ (ONES * c);
  return (x - ONES) & ~x & HIGHS;
}
static inline uint64_t has_less(uint64_t v, unsigned char c) { return (v - ONES * c) & ~v & HIGHS; } /* c <= 128 */

#define MSG_NAME_MAX 64     /* bytes of a header name quoted in a message */

typedef struct {
  uint32_t off; /* offset of the field in row.data */
  uint32_t len; /* field length in bytes */
} field_t;

struct bd_roster {
  bd_roster_opts_t o;     /* limits (today points into today_iso) */
  char today_iso[11];     /* validated default IssueDate, YYYY-MM-DD */
  bd_buf_t *out;          /* borrowed COPY output */
  int st;                 /* parser state (ST_*) */
  size_t foff;            /* offset of the current field in row.data */
  size_t flen;            /* bytes of the current field so far */
  size_t row_bytes;       /* bytes of the current record's fields so far */
  int err;                /* sticky bd_roster_code_t */
  char msg[256];          /* message for err */
  unsigned bom;           /* BOM bytes matched so far (0..3); 4 = decided */
  bool header_done;       /* header row processed */
  bool extra;             /* current row has non-empty fields past the header */
  bool finished;          /* bd_roster_finish ran */
  size_t col;             /* index of the next field in the current row */
  size_t store_cols;      /* fields stored per row (max_columns for the header) */
  bd_buf_t row;           /* current row's field bytes, back to back */
  field_t *fields;        /* store_cols entries for the current row */
  size_t ncols;           /* header columns */
  size_t email_col;       /* column index of RecipientsEmail */
  size_t name_col;        /* column index of RecipientsName */
  size_t date_col;        /* column index of IssueDate, SIZE_MAX if absent */
  size_t *custom;         /* column indexes of custom columns, header order */
  size_t ncustom;         /* entries in custom */
  bd_buf_t names;         /* custom header names, trimmed, back to back */
  field_t *name_at;       /* ncustom spans into names */
  bd_buf_t keys;          /* pre-escaped `"name":` JSON keys (COPY-escaped) */
  field_t *key_at;        /* ncustom spans into keys */
  uint64_t rows;          /* data rows emitted */
  uint64_t failed;        /* data rows emitted with status failed */
};

static const char *const code_names[] = {
  "ok", "empty", "missing_header", "duplicate_header", "empty_header", "too_many_columns",
  "malformed_quote", "invalid_utf8", "field_too_big", "row_too_big", "too_many_rows", "no_rows",
};

const char *bd_roster_code_name(int code) {
  if (code < 0 || (size_t)code >= BD_ARRAY_LEN(code_names)) return "unknown";
  return code_names[code];
}

void bd_roster_opts_default(bd_roster_opts_t *o) {
  *o = (bd_roster_opts_t){
    .max_rows = 1000000, .max_field = 65536, .max_columns = 256, .max_row_bytes = 1u << 20, .today = NULL};
}

/* ---- small helpers ---------------------------------------------------- */

static bool is_ws(unsigned char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }

static bd_str_t trim(const char *p, size_t n) {
  while (n && is_ws((unsigned char)p[0])) p++, n--;
  while (n && is_ws((unsigned char)p[n - 1])) n--;
  return (bd_str_t){p, n};
}

static bool leap(unsigned y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static bool valid_ymd(unsigned y, unsigned m, unsigned d) {
  static const unsigned char mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (y < 1000 || y > 9999 || m < 1 || m > 12 || d < 1) return false;
  return d <= mdays[m - 1] + (unsigned)(m == 2 && leap(y));
}

/* Reads 1..max digits at *s (advancing it). */
static bool digits(const char **s, const char *end, unsigned min, unsigned max, unsigned *v) {
  unsigned n = 0, x = 0;
  while (*s < end && n < max && **s >= '0' && **s <= '9') x = x * 10 + (unsigned)(*(*s)++ - '0'), n++;
  *v = x;
  return n >= min && (*s == end || **s < '0' || **s > '9');
}

/* D-M-YYYY (1-2 digit day and month) -> "YYYY-MM-DD" in iso[10]. */
static bool parse_dmy(bd_str_t t, char iso[10]) {
  const char *s = t.p, *end = t.p + t.len;
  unsigned d, m, y;
  if (!digits(&s, end, 1, 2, &d) || s == end || *s++ != '-') return false;
  if (!digits(&s, end, 1, 2, &m) || s == end || *s++ != '-') return false;
  if (!digits(&s, end, 4, 4, &y) || s != end) return false;
  if (!valid_ymd(y, m, d)) return false;
  /* By hand: snprintf here was a tenth of the per-row cost. */
  iso[0] = (char)('0' + y / 1000), iso[1] = (char)('0' + y / 100 % 10);
  iso[2] = (char)('0' + y / 10 % 10), iso[3] = (char)('0' + y % 10), iso[4] = '-';
  iso[5] = (char)('0' + m / 10), iso[6] = (char)('0' + m % 10), iso[7] = '-';
  iso[8] = (char)('0' + d / 10), iso[9] = (char)('0' + d % 10);
  return true;
}

static bool parse_iso(const char *s, unsigned *y, unsigned *m, unsigned *d) {
  if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-') return false;
  for (int i = 0; i < 10; i++)
    if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9')) return false;
  *y = (unsigned)atoi(s), *m = (unsigned)atoi(s + 5), *d = (unsigned)atoi(s + 8);
  return valid_ymd(*y, *m, *d);
}

static bool atext(unsigned char c) {
  if (c >= 0x80) return true; /* UTF-8 already validated: allow SMTPUTF8 */
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return c && strchr("!#$%&'*+/=?^_`{|}~-", c) != NULL;
}

static bool email_ok(bd_str_t e) {
  if (e.len < 5 || e.len > 254) return false; /* a@b.cd */
  const unsigned char *s = (const unsigned char *)e.p;
  const unsigned char *at = memchr(s, '@', e.len);
  if (!at || memchr(at + 1, '@', e.len - (size_t)(at - s) - 1)) return false;
  size_t ll = (size_t)(at - s), dl = e.len - ll - 1;
  if (ll == 0 || ll > 64 || dl < 4) return false;
  if (s[0] == '.' || s[ll - 1] == '.') return false;
  for (size_t i = 0; i < ll; i++) {
    if (s[i] == '.') {
      if (s[i + 1] == '.') return false;
    } else if (!atext(s[i])) {
      return false;
    }
  }
  const unsigned char *d = at + 1, *lab = d;
  size_t labels = 0;
  for (size_t i = 0; i <= dl; i++) {
    if (i == dl || d[i] == '.') {
      size_t n = (size_t)(d + i - lab);
      if (n == 0 || n > 63 || lab[0] == '-' || lab[n - 1] == '-') return false;
      labels++;
      if (i == dl) { /* TLD: >= 2 chars and not all digits */
        bool alpha = false;
        for (size_t k = 0; k < n; k++) alpha |= !(lab[k] >= '0' && lab[k] <= '9');
        if (n < 2 || !alpha) return false;
      }
      lab = d + i + 1;
    } else {
      unsigned char c = d[i];
      if (!(c >= 0x80 || c == '-' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
        return false;
    }
  }
  return labels >= 2;
}

/* 0 = valid UTF-8 without NUL, 1 = invalid UTF-8, 2 = NUL byte. ASCII is
 * checked 8 bytes per step, which is nearly all of a typical roster. */
static int utf8_check(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    if (n - i >= 8) {
      uint64_t v;
      memcpy(&v, s + i, 8);
      if (!(v & HIGHS)) {
        if ((v - ONES) & HIGHS) return 2; /* all bytes < 0x80, so only a 0 byte borrows */
        i += 8;
        continue;
      }
    }
    unsigned c = s[i];
    if (c < 0x80) {
      if (!c) return 2;
      i++;
      continue;
    }
    size_t need;
    unsigned lo = 0x80, up = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c >= 0xE0 && c <= 0xEF) need = 2, lo = c == 0xE0 ? 0xA0 : 0x80, up = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) need = 3, lo = c == 0xF0 ? 0x90 : 0x80, up = c == 0xF4 ? 0x8F : 0xBF;
    else return 1; /* continuation byte, overlong lead C0/C1, or > U+10FFFF */
    if (n - i <= need) return 1;
    if (s[i + 1] < lo || s[i + 1] > up) return 1;
    for (size_t k = 2; k <= need; k++)
      if ((s[i + k] & 0xC0) != 0x80) return 1;
    i += need + 1;
  }
  return 0;
}

/* How many bytes of s (at most `max`) to quote without cutting a UTF-8 sequence. */
static int cut_utf8(bd_str_t s, size_t max) {
  if (s.len <= max) return (int)s.len;
  size_t n = max;
  while (n && ((unsigned char)s.p[n] & 0xC0) == 0x80) n--;
  return (int)n;
}

static void fail(bd_roster_t *r, int code, const char *fmt, ...) BD_PRINTF(3, 4);
static void fail(bd_roster_t *r, int code, const char *fmt, ...) {
  if (r->err) return;
  r->err = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->msg, sizeof r->msg, fmt, ap);
  va_end(ap);
}

/* "the header row" or "data row N" for messages; N is the row being read. */
static const char *where(bd_roster_t *r, char *buf, size_t n) {
  if (!r->header_done) return "the header row";
  snprintf(buf, n, "data row %llu", (unsigned long long)r->rows + 1);
  return buf;
}

/* ---- escaping --------------------------------------------------------- */

/* COPY text escapes: the byte after the backslash, 0 for "copy as is". */
static const char copy_esc[256] = {['\\'] = '\\', ['\t'] = 't', ['\n'] = 'n', ['\r'] = 'r'};

static char *put_copy(char *w, const char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    if (n - i >= 8) {
      uint64_t v;
      memcpy(&v, s + i, 8);
      if (!(has_byte(v, '\\') | has_less(v, '\r' + 1))) { /* nothing to escape in these 8 */
        memcpy(w, &v, 8);
        w += 8, i += 8;
        continue;
      }
    }
    size_t end = BD_MIN(n, i + 8);
    for (; i < end; i++) {
      unsigned char c = (unsigned char)s[i];
      char e = copy_esc[c];
      if (e) *w++ = '\\', *w++ = e;
      else *w++ = (char)c;
    }
  }
  return w;
}

/* JSON string body, then COPY-escaped: JSON's backslashes double for COPY
 * (`\n` in JSON is `\\n` on the wire). At most 7 output bytes per input
 * byte (`\\u001f`). Control characters are escaped, so no raw tab or
 * newline can reach COPY. */
static char *put_json_copy(char *w, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  size_t i = 0;
  while (i < n) {
    if (n - i >= 8) {
      uint64_t v;
      memcpy(&v, s + i, 8);
      if (!(has_byte(v, '"') | has_byte(v, '\\') | has_less(v, 0x20))) {
        memcpy(w, &v, 8);
        w += 8, i += 8;
        continue;
      }
    }
    size_t end = BD_MIN(n, i + 8);
    for (; i < end; i++) {
      unsigned char c = (unsigned char)s[i];
      if (c >= 0x20 && c != '"' && c != '\\') {
        *w++ = (char)c;
        continue;
      }
      *w++ = '\\', *w++ = '\\';
      switch (c) {
      case '"': *w++ = '"'; break;
      case '\\': *w++ = '\\', *w++ = '\\'; break;
      case '\n': *w++ = 'n'; break;
      case '\r': *w++ = 'r'; break;
      case '\t': *w++ = 't'; break;
      case '\b': *w++ = 'b'; break;
      case '\f': *w++ = 'f'; break;
      default: *w++ = 'u', *w++ = '0', *w++ = '0', *w++ = hex[c >> 4], *w++ = hex[c & 15]; break;
      }
    }
  }
  return w;
}

static char *put_u64(char *w, uint64_t v) {
  char tmp[20];
  int n = 0;
  do tmp[n++] = (char)('0' + v % 10), v /= 10;
  while (v);
  while (n) *w++ = tmp[--n];
  return w;
}

#define PUT_LIT(w, lit) (memcpy((w), (lit), sizeof(lit) - 1), (w) + sizeof(lit) - 1)

/* ---- header ----------------------------------------------------------- */

static bd_str_t cell(bd_roster_t *r, size_t i) {
  if (i >= r->col || i >= r->store_cols) return (bd_str_t){"", 0};
  return (bd_str_t){r->row.data + r->fields[i].off, r->fields[i].len};
}

static bool row_blank(bd_roster_t *r) {
  if (r->extra) return false;
  size_t n = BD_MIN(r->col, r->store_cols);
  for (size_t i = 0; i < n; i++) {
    const char *p = r->row.data + r->fields[i].off;
    if (r->fields[i].len && !is_ws((unsigned char)p[0])) return false; /* the usual case, decided at once */
    if (trim(p, r->fields[i].len).len) return false;
  }
  return true;
}

static void header_row(bd_roster_t *r) {
  size_t n = r->col;
  const char *reserved[3] = {"RecipientsEmail", "RecipientsName", "IssueDate"};
  size_t *slot[3] = {&r->email_col, &r->name_col, &r->date_col};
  r->custom = bd_malloc(n * sizeof *r->custom);
  r->name_at = bd_malloc(n * sizeof *r->name_at);
  r->key_at = bd_malloc(n * sizeof *r->key_at);
  for (size_t i = 0; i < n; i++) {
    bd_str_t h = trim(r->row.data + r->fields[i].off, r->fields[i].len);
    if (!h.len) {
      fail(r, BD_ROSTER_EEMPTY_HEADER, "The csv file has an empty header in column %zu.", i + 1);
      return;
    }
    int k;
    for (k = 0; k < 3; k++)
      if (bd_str_ieq(h, reserved[k])) break;
    if (k < 3) {
      if (*slot[k] != SIZE_MAX) {
        fail(r, BD_ROSTER_EDUP_HEADER, "The csv file has a duplicate header \"%s\".", reserved[k]);
        return;
      }
      *slot[k] = i;
      continue;
    }
    for (size_t j = 0; j < r->ncustom; j++) {
      if (r->name_at[j].len == h.len && memcmp(r->names.data + r->name_at[j].off, h.p, h.len) == 0) {
        fail(r, BD_ROSTER_EDUP_HEADER, "The csv file has a duplicate header \"%.*s\".", cut_utf8(h, MSG_NAME_MAX),
             h.p);
        return;
      }
    }
    r->custom[r->ncustom] = i;
    r->name_at[r->ncustom] = (field_t){(uint32_t)r->names.len, (uint32_t)h.len};
    bd_buf_append(&r->names, h.p, h.len);
    /* The JSON key, escaped once here instead of once per row. */
    size_t koff = r->keys.len;
    bd_buf_reserve(&r->keys, 7 * h.len + 4);
    char *w = r->keys.data + r->keys.len;
    *w++ = '"';
    w = put_json_copy(w, h.p, h.len);
    *w++ = '"', *w++ = ':';
    r->keys.len = (size_t)(w - r->keys.data);
    r->key_at[r->ncustom] = (field_t){(uint32_t)koff, (uint32_t)(r->keys.len - koff)};
    r->ncustom++;
  }
  if (r->email_col == SIZE_MAX || r->name_col == SIZE_MAX) {
    if (r->email_col == SIZE_MAX && r->name_col == SIZE_MAX)
      fail(r, BD_ROSTER_EMISSING_HEADER,
           "The csv file is missing the required headers RecipientsEmail and RecipientsName.");
    else
      fail(r, BD_ROSTER_EMISSING_HEADER, "The csv file is missing the required header %s.",
           r->email_col == SIZE_MAX ? "RecipientsEmail" : "RecipientsName");
    return;
  }
  r->ncols = n;
  r->store_cols = n; /* data rows: fields past the header are only checked for emptiness */
  r->header_done = true;
}

/* ---- data rows -------------------------------------------------------- */

static void data_row(bd_roster_t *r) {
  if (r->rows >= r->o.max_rows) {
    fail(r, BD_ROSTER_ETOO_MANY_ROWS, "The csv file has more than %llu data rows.",
         (unsigned long long)r->o.max_rows);
    return;
  }
  uint64_t row_no = ++r->rows;
  bd_str_t email = trim(cell(r, r->email_col).p, cell(r, r->email_col).len);
  bd_str_t name = cell(r, r->name_col); /* kept as written; required = not blank */
  char iso[11];
  bool date_ok = true;
  if (r->date_col != SIZE_MAX) {
    bd_str_t d = cell(r, r->date_col);
    d = trim(d.p, d.len);
    if (d.len) date_ok = parse_dmy(d, iso);
    else memcpy(iso, r->today_iso, 10);
  } else {
    memcpy(iso, r->today_iso, 10);
  }
  bool mail_ok = email_ok(email), name_ok = trim(name.p, name.len).len > 0;
  bool ok = !r->extra && mail_ok && name_ok && date_ok;

  /* One reserve for the whole line, then raw stores. Bound: COPY doubles,
   * JSON-in-COPY is at most 7x, plus keys, separators and reasons. */
  size_t bound = 7 * r->row.len + r->keys.len + 4 * r->ncustom + 256;
  bd_buf_reserve(r->out, bound);
  char *w0 = r->out->data + r->out->len, *w = w0;
  w = put_u64(w, row_no);
  *w++ = '\t';
  w = put_copy(w, email.p, email.len);
  *w++ = '\t';
  w = put_copy(w, name.p, name.len);
  *w++ = '\t';
  if (date_ok) memcpy(w, iso, 10), w += 10;
  else w = PUT_LIT(w, "\\N");
  *w++ = '\t';
  *w++ = '{';
  for (size_t j = 0; j < r->ncustom; j++) {
    if (j) *w++ = ',';
    field_t k = r->key_at[j];
    memcpy(w, r->keys.data + k.off, k.len), w += k.len;
    bd_str_t v = cell(r, r->custom[j]);
    *w++ = '"';
    w = put_json_copy(w, v.p, v.len);
    *w++ = '"';
  }
  *w++ = '}';
  if (ok) {
    w = PUT_LIT(w, "\tpending\t\\N\n");
  } else {
    r->failed++;
    w = PUT_LIT(w, "\tfailed\t");
    char *first = w;
#define REASON(lit) (w = (w != first ? PUT_LIT(w, "; ") : w), w = PUT_LIT(w, lit))
    if (r->extra) REASON("Row has more columns than the header");
    if (!mail_ok) REASON("Invalid email address");
    if (!name_ok) REASON("Recipient name is required");
    if (!date_ok) REASON("Invalid IssueDate, expected DD-MM-YYYY");
#undef REASON
    *w++ = '\n';
  }
  r->out->len += (size_t)(w - w0);
  r->out->data[r->out->len] = '\0';
}

/* ---- the CSV state machine ------------------------------------------ */

/* RFC 4180 read the way Python's csv module reads it (excel dialect,
 * strict off), so a roster means what csvkit, pandas' python engine and a
 * spreadsheet export say it means:
 * - every byte of a field is data: spaces around a field are kept;
 * - a field is quoted only when its first byte is '"'; a quote anywhere in
 *   an unquoted field is data (37°36'37.8"N);
 * - inside quotes, "" is one quote and CR/LF are data;
 * - after the closing quote, a delimiter or a line end closes the field,
 *   and anything else continues it as unquoted data ("a"b reads ab);
 * - CR, LF and CRLF end a record; a line end that ends no field is an
 *   empty record (skipped as blank).
 * One deliberate difference: end of input inside quotes is structural
 * (BD_ROSTER_EQUOTE) where Python keeps the rest of the file as one cell. */
enum {
  ST_RECORD,   /* nothing of the record read yet */
  ST_FIELD,    /* after a delimiter: a field starts here */
  ST_UNQUOTED, /* inside an unquoted field */
  ST_QUOTED,   /* inside quotes */
  ST_QQ,       /* a quote inside quotes: closing, or the first of "" */
};

/* Bytes that end an unquoted field. */
static const unsigned char ends_unquoted[256] = {[','] = 1, ['\r'] = 1, ['\n'] = 1};

static void field_begin(bd_roster_t *r) {
  if (r->col >= r->store_cols && !r->header_done) {
    fail(r, BD_ROSTER_ETOO_MANY_COLUMNS, "The csv file has more than %zu columns.", r->o.max_columns);
    return;
  }
  r->foff = r->row.len;
  r->flen = 0;
}

/* Appends n bytes of the current field. The limit first passed, byte by
 * byte, decides the error (field before row on the same byte), so the
 * verdict does not depend on where the input was cut. */
static void field_add(bd_roster_t *r, const char *p, size_t n) {
  if (!n || r->err) return;
  char w[32];
  size_t f_room = r->o.max_field - r->flen;        /* bytes until the field limit is passed */
  size_t r_room = r->o.max_row_bytes - r->row_bytes; /* same for the row */
  if (n > f_room || n > r_room) {
    if (f_room <= r_room)
      fail(r, BD_ROSTER_EFIELD_TOO_BIG, "The csv file has a field longer than %zu bytes in %s.", r->o.max_field,
           where(r, w, sizeof w));
    else
      fail(r, BD_ROSTER_EROW_TOO_BIG, "The csv file has a row longer than %zu bytes in %s.", r->o.max_row_bytes,
           where(r, w, sizeof w));
    return;
  }
  if (r->row.cap - r->row.len <= n) bd_buf_reserve(&r->row, n);
  memcpy(r->row.data + r->row.len, p, n); /* no NUL needed: fields are spans */
  r->row.len += n;
  r->flen += n;
  r->row_bytes += n;
}

static void field_end(bd_roster_t *r) {
  char w[32];
  if (r->err) return;
  const char *s = r->row.data + r->foff;
  int u = utf8_check((const unsigned char *)s, r->flen);
  if (u) {
    fail(r, BD_ROSTER_EUTF8, u == 2 ? "The csv file contains a NUL byte in %s." : "The csv file is not valid UTF-8 (%s).",
         where(r, w, sizeof w));
    return;
  }
  if (r->col < r->store_cols) {
    r->fields[r->col] = (field_t){(uint32_t)r->foff, (uint32_t)r->flen};
  } else {
    if (trim(s, r->flen).len) r->extra = true; /* a cell past the header that says something */
    r->row.len = r->foff;                      /* only its emptiness matters */
  }
  r->col++;
}

static void record_end(bd_roster_t *r) {
  if (r->err) return;
  if (!row_blank(r)) {
    if (!r->header_done) header_row(r);
    else data_row(r);
  }
  r->col = 0;
  r->extra = false;
  r->row.len = 0;
  r->row_bytes = 0;
}

static void parse(bd_roster_t *r, const char *p, size_t n) {
  const char *end = p + n;
  while (p < end && !r->err) {
    switch (r->st) {
    case ST_RECORD:
      if (*p == '\r' || *p == '\n') { /* a line end with no field: an empty record */
        p++;
        record_end(r);
        continue;
      }
      /* a field starts */
      __attribute__((fallthrough));
    case ST_FIELD:
      field_begin(r);
      if (r->err) return;
      if (*p == '"') {
        r->st = ST_QUOTED, p++;
      } else if (*p == ',') {
        field_end(r), p++;
        r->st = ST_FIELD;
      } else if (*p == '\r' || *p == '\n') {
        field_end(r), p++;
        record_end(r);
        r->st = ST_RECORD;
      } else {
        r->st = ST_UNQUOTED;
      }
      continue;
    case ST_UNQUOTED: {
      const char *q = p;
      while (q < end && !ends_unquoted[(unsigned char)*q]) q++;
      field_add(r, p, (size_t)(q - p));
      p = q;
      if (p == end || r->err) continue;
      field_end(r);
      if (*p++ == ',') {
        r->st = ST_FIELD;
      } else {
        record_end(r);
        r->st = ST_RECORD;
      }
      continue;
    }
    case ST_QUOTED: {
      const char *q = memchr(p, '"', (size_t)(end - p));
      if (!q) q = end;
      field_add(r, p, (size_t)(q - p));
      p = q;
      if (p < end) r->st = ST_QQ, p++;
      continue;
    }
    case ST_QQ:
      if (*p == '"') { /* "" inside quotes: one quote */
        field_add(r, p, 1);
        r->st = ST_QUOTED;
      } else if (*p == ',') {
        field_end(r);
        r->st = ST_FIELD;
      } else if (*p == '\r' || *p == '\n') {
        field_end(r);
        record_end(r);
        r->st = ST_RECORD;
      } else { /* text after the closing quote: more of the field, unquoted */
        r->st = ST_UNQUOTED;
        continue;
      }
      p++;
      continue;
    }
  }
}

/* ---- public ----------------------------------------------------------- */

bd_roster_t *bd_roster_new(const bd_roster_opts_t *opts, bd_buf_t *out) {
  unsigned y, m, d;
  if (!opts || !out || !parse_iso(opts->today, &y, &m, &d)) return NULL;
  if (!opts->max_rows || !opts->max_field || !opts->max_columns || !opts->max_row_bytes) return NULL;
  if (opts->max_row_bytes > UINT32_MAX || opts->max_field > UINT32_MAX) return NULL; /* field_t is 32-bit */
  bd_roster_t *r = bd_calloc(1, sizeof *r);
  r->o = *opts;
  memcpy(r->today_iso, opts->today, 11);
  r->o.today = r->today_iso;
  r->out = out;
  r->email_col = r->name_col = r->date_col = SIZE_MAX;
  r->store_cols = opts->max_columns;
  r->fields = bd_malloc(opts->max_columns * sizeof *r->fields);
  bd_buf_reserve(&r->row, 256); /* row.data is never NULL: empty fields point into it */
  return r;
}

void bd_roster_free(bd_roster_t *r) {
  if (!r) return;
  bd_buf_free(&r->row);
  bd_buf_free(&r->names);
  bd_buf_free(&r->keys);
  free(r->fields);
  free(r->custom);
  free(r->name_at);
  free(r->key_at);
  free(r);
}

int bd_roster_feed(bd_roster_t *r, const char *p, size_t n) {
  static const char bom[3] = {'\xEF', '\xBB', '\xBF'};
  if (r->err || r->finished) return r->err;
  /* The BOM may arrive split over feeds: match it byte by byte, and if the
   * start turns out not to be a BOM, replay the matched prefix as data. */
  while (r->bom < 3 && n) {
    if (*p == bom[r->bom]) {
      r->bom++, p++, n--;
      continue;
    }
    unsigned had = r->bom;
    r->bom = 4;
    parse(r, bom, had);
    break;
  }
  if (r->bom == 3) r->bom = 4;
  parse(r, p, n);
  return r->err;
}

int bd_roster_finish(bd_roster_t *r) {
  if (r->finished || r->err) {
    r->finished = true;
    return r->err;
  }
  r->finished = true;
  if (r->bom > 0 && r->bom < 3) parse(r, "\xEF\xBB\xBF", r->bom); /* a lone BOM prefix is data */
  if (r->err) return r->err;
  switch (r->st) {
  case ST_QUOTED: {
    char w[32];
    fail(r, BD_ROSTER_EQUOTE, "The csv file has an unterminated quoted field in %s.", where(r, w, sizeof w));
    return r->err;
  }
  case ST_FIELD: /* "a," at the end: an empty last field */
    field_begin(r);
    __attribute__((fallthrough));
  case ST_UNQUOTED:
  case ST_QQ:
    field_end(r);
    record_end(r);
    break;
  default: break;
  }
  if (r->err) return r->err;
  if (!r->header_done) fail(r, BD_ROSTER_EEMPTY, "The csv file is empty.");
  else if (!r->rows) fail(r, BD_ROSTER_ENO_ROWS, "The csv file has no data rows.");
  return r->err;
}

const char *bd_roster_message(const bd_roster_t *r) { return r->err ? r->msg : ""; }
uint64_t bd_roster_rows(const bd_roster_t *r) { return r->rows; }
uint64_t bd_roster_failed(const bd_roster_t *r) { return r->failed; }
size_t bd_roster_pending(const bd_roster_t *r) { return r->out->len; }
bool bd_roster_has_issue_date(const bd_roster_t *r) { return r->date_col != SIZE_MAX; }
size_t bd_roster_custom_count(const bd_roster_t *r) { return r->header_done ? r->ncustom : 0; }

bd_str_t bd_roster_custom_name(const bd_roster_t *r, size_t i) {
  if (!r->header_done || i >= r->ncustom) return (bd_str_t){NULL, 0};
  return (bd_str_t){r->names.data + r->name_at[i].off, r->name_at[i].len};
}
