/* qr.c: payloads for every target type, and designs (parse, validate,
 * normalise). Rendering is in qr_render.c, logo decoding in qr_logo.c.
 *
 * Everything here is reentrant: no static mutable data, no locale-dependent
 * calls (character classes are spelled out; the server may run under any
 * LC_CTYPE). The small encoders (percent-encoding, base64, RFC 3339) are
 * local on purpose, so this module only needs buf.c to be built and tested.
 */
#include "qr.h"

#include <math.h>
#include <qrencode.h>
#include <stdio.h>
#include <stdlib.h>

#include "qr_internal.h"

const char *bd_qr_type_name(bd_qr_type_t t) {
  static const char *const names[] = {"url",   "text", "email", "sms",
                                      "phone", "wifi", "event", "vcard"};
  return (unsigned)t < BD_ARRAY_LEN(names) ? names[t] : "text";
}

static int fail(char *err, size_t errsz, const char **param, const char *p, const char *fmt, ...)
    BD_PRINTF(5, 6);
static int fail(char *err, size_t errsz, const char **param, const char *p, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (err && errsz) vsnprintf(err, errsz, fmt, ap);
  va_end(ap);
  if (param) *param = p;
  return -1;
}

/* --- small encoders ------------------------------------------------------------ */

static bool is_digit(int c) { return c >= '0' && c <= '9'; }
static bool is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_unreserved(int c) {
  return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}
static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

static bool ieq(const char *a, const char *b) {
  for (; *a && *b; a++, b++)
    if (lower((unsigned char)*a) != lower((unsigned char)*b)) return false;
  return *a == *b;
}

static bool iprefix(const char *s, const char *prefix) {
  for (; *prefix; s++, prefix++)
    if (lower((unsigned char)*s) != lower((unsigned char)*prefix)) return false;
  return true;
}

static int hexval(int c) {
  if (is_digit(c)) return c - '0';
  c = lower(c);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* RFC 3986 percent-encoding of everything but unreserved characters, with
 * upper-case hex (the canonical form). When crlf is set, a bare LF or CR
 * becomes %0D%0A (RFC 6068 wants CRLF line breaks in mailto bodies). */
static void pct_encode(bd_buf_t *b, const char *s, size_t n, bool crlf) {
  static const char hex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (is_unreserved(c)) {
      bd_buf_putc(b, (char)c);
    } else if (crlf && (c == '\n' || c == '\r')) {
      if (c == '\r' && i + 1 < n && s[i + 1] == '\n') i++;
      bd_buf_puts(b, "%0D%0A");
    } else {
      char e[3] = {'%', hex[c >> 4], hex[c & 15]};
      bd_buf_append(b, e, 3);
    }
  }
}

/* Standard or URL-safe base64, padding optional, no whitespace. */
static bool b64_decode(bd_buf_t *out, const char *s, size_t n) {
  uint32_t acc = 0;
  int bits = 0;
  size_t i = 0;
  for (; i < n && s[i] != '='; i++) {
    int c = (unsigned char)s[i], v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (is_digit(c))
      v = c - '0' + 52;
    else if (c == '+' || c == '-')
      v = 62;
    else if (c == '/' || c == '_')
      v = 63;
    else
      return false;
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bd_buf_putc(out, (char)((acc >> bits) & 0xFF));
    }
  }
  if (bits >= 6) return false; /* a lone sextet cannot end a quantum */
  for (; i < n; i++)
    if (s[i] != '=') return false;
  return true;
}

static bool pct_decode(bd_buf_t *out, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (s[i] != '%') {
      bd_buf_putc(out, s[i]);
      continue;
    }
    int h = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1,
        l = h >= 0 ? hexval((unsigned char)s[i + 2]) : -1;
    if (l < 0) return false;
    bd_buf_putc(out, (char)(h * 16 + l));
    i += 2;
  }
  return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = (unsigned)(y - era * 400);
  unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  unsigned doe = (unsigned)(z - era * 146097);
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned mp = (5 * doy + 2) / 153;
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = (int)((int64_t)yoe + era * 400 + (*m <= 2));
}

static int ndigits(const char *s, int n) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (!is_digit((unsigned char)s[i])) return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

static bool valid_date(int y, int m, int d) {
  static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (y < 1 || m < 1 || m > 12 || d < 1) return false;
  int md = mdays[m - 1] + (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
  return d <= md;
}

/* An RFC 3339 date-time ("2025-03-14T13:04:03.5+01:00"; 't' or ' ' for
 * 'T', 'z' for 'Z') to seconds since the epoch (fraction dropped), or a
 * plain date ("2025-03-14", *date_only set) to its midnight UTC. */
static bool parse_time(const char *s, int64_t *out, bool *date_only) {
  size_t n = strlen(s);
  if (n < 10 || s[4] != '-' || s[7] != '-') return false;
  int y = ndigits(s, 4), mo = ndigits(s + 5, 2), d = ndigits(s + 8, 2);
  if (y < 0 || mo < 0 || d < 0 || !valid_date(y, mo, d)) return false;
  int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
  if (n == 10) {
    *date_only = true;
    *out = days * 86400;
    return true;
  }
  *date_only = false;
  if (n < 20 || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || s[13] != ':' || s[16] != ':')
    return false;
  int h = ndigits(s + 11, 2), mi = ndigits(s + 14, 2), se = ndigits(s + 17, 2);
  if (h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 || se > 60) return false; /* 60: leap second */
  const char *p = s + 19;
  if (*p == '.') {
    p++;
    if (!is_digit((unsigned char)*p)) return false;
    while (is_digit((unsigned char)*p)) p++;
  }
  int off = 0;
  if ((*p == 'Z' || *p == 'z') && !p[1]) {
    off = 0;
  } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
    int oh = ndigits(p + 1, 2), om = ndigits(p + 4, 2);
    if (oh < 0 || oh > 23 || om < 0 || om > 59) return false;
    off = (oh * 60 + om) * 60 * (*p == '-' ? -1 : 1);
  } else {
    return false;
  }
  *out = days * 86400 + h * 3600 + mi * 60 + se - off;
  return true;
}

/* iCalendar forms: "20250314T130403Z" (UTC date-time) or "20250314". */
static bool ical_time(int64_t t, bool date_only, char out[64]) {
  int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400), sec = t - days * 86400;
  int y, m, d;
  civil_from_days(days, &y, &m, &d);
  if (y < 1 || y > 9999) return false;
  if (date_only)
    snprintf(out, 64, "%04d%02d%02d", y, m, d);
  else
    snprintf(out, 64, "%04d%02d%02dT%02d%02d%02dZ", y, m, d, (int)(sec / 3600),
             (int)(sec / 60 % 60), (int)(sec % 60));
  return true;
}

/* --- field access ------------------------------------------------------------------ */

/* A string member: absent or null → *out NULL, true. Present: must be a
 * string of at most max bytes. */
static bool str_member(const json_t *o, const char *k, const char **out, size_t max) {
  json_t *v = json_object_get(o, k);
  *out = NULL;
  if (!v || json_is_null(v)) return true;
  if (!json_is_string(v) || json_string_length(v) > max) return false;
  *out = json_string_value(v);
  return true;
}

/* jansson strings may hold NUL (\u0000): a payload must not, it would be cut. */
static bool has_nul(const json_t *o, const char *k) {
  json_t *v = json_object_get(o, k);
  return json_is_string(v) && strlen(json_string_value(v)) != json_string_length(v);
}

static bool has_ctl(const char *s, bool allow_newline) {
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if ((c < 0x20 && !(allow_newline && (c == '\n' || c == '\r' || c == '\t'))) || c == 0x7f)
      return true;
  }
  return false;
}

/* --- url ------------------------------------------------------------------------ */

/* An absolute http(s) URL with a host, no whitespace, controls or
 * characters that are never valid unescaped in a URL. Non-ASCII (an IRI)
 * is allowed: readers open it as typed. */
static bool valid_url(const char *u) {
  const char *rest;
  if (iprefix(u, "https://"))
    rest = u + 8;
  else if (iprefix(u, "http://"))
    rest = u + 7;
  else
    return false;
  size_t hl = strcspn(rest, "/?#");
  const char *at = memchr(rest, '@', hl); /* userinfo: the host follows it */
  const char *host = at ? at + 1 : rest;
  size_t hostl = hl - (size_t)(host - rest);
  if (hostl == 0 || host[0] == ':' || host[0] == '.') return false;
  for (const unsigned char *p = (const unsigned char *)u; *p; p++)
    if (*p <= 0x20 || *p == 0x7f || *p == '"' || *p == '<' || *p == '>' || *p == '\\' ||
        *p == '^' || *p == '`' || *p == '{' || *p == '|' || *p == '}')
      return false;
  return true;
}

static const char *const k_utm[] = {"source", "medium", "campaign", "term", "content"};
static const char *const k_utm_param[] = {"target.utm.source", "target.utm.medium",
                                          "target.utm.campaign", "target.utm.term",
                                          "target.utm.content"};

int bd_qr_merge_utm(const char *url, const json_t *utm, bd_buf_t *out, char *err, size_t errsz,
                    const char **param) {
  if (utm && json_is_null(utm)) utm = NULL;
  const char *val[5] = {0};
  if (utm) {
    if (!json_is_object(utm))
      return fail(err, errsz, param, "target.utm", "target.utm must be an object");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)utm, k, v) {
      size_t i = 0;
      while (i < BD_ARRAY_LEN(k_utm) && strcmp(k, k_utm[i])) i++;
      if (i == BD_ARRAY_LEN(k_utm))
        return fail(err, errsz, param, "target.utm",
                    "target.utm.%.40s is not a UTM field (source, medium, campaign, term, content)",
                    k);
      if (json_is_null(v)) continue;
      if (!json_is_string(v) || json_string_length(v) > 200 || has_nul(utm, k))
        return fail(err, errsz, param, k_utm_param[i],
                    "target.utm.%s must be a string of at most 200 bytes", k);
      if (json_string_length(v) > 0) val[i] = json_string_value(v);
    }
  }
  const char *frag = strchr(url, '#');
  size_t base_len = frag ? (size_t)(frag - url) : strlen(url);
  const char *q = memchr(url, '?', base_len);
  size_t path_len = q ? (size_t)(q - url) : base_len;
  bd_buf_append(out, url, path_len);
  bool first = true;
  /* keep the existing parameters (in order, bytes untouched) except the
   * utm_* ones we are about to replace */
  if (q) {
    const char *p = q + 1, *end = url + base_len;
    while (p < end) {
      const char *amp = memchr(p, '&', (size_t)(end - p));
      const char *se = amp ? amp : end;
      size_t kl = strcspn(p, "=&#");
      if (p + kl > se) kl = (size_t)(se - p);
      bool replaced = false;
      for (size_t i = 0; i < BD_ARRAY_LEN(k_utm); i++)
        if (val[i] && kl == 4 + strlen(k_utm[i]) && !memcmp(p, "utm_", 4) &&
            !memcmp(p + 4, k_utm[i], kl - 4))
          replaced = true;
      if (!replaced && se > p) {
        bd_buf_putc(out, first ? '?' : '&');
        bd_buf_append(out, p, (size_t)(se - p));
        first = false;
      }
      p = amp ? amp + 1 : end;
    }
  }
  for (size_t i = 0; i < BD_ARRAY_LEN(k_utm); i++) {
    if (!val[i]) continue;
    bd_buf_putc(out, first ? '?' : '&');
    first = false;
    bd_buf_printf(out, "utm_%s=", k_utm[i]);
    pct_encode(out, val[i], strlen(val[i]), false);
  }
  if (frag) bd_buf_puts(out, frag);
  return 0;
}

/* --- text escaping ------------------------------------------------------------------ */

/* WIFI (ZXing convention): backslash before \ ; , : " */
static void wifi_escape(bd_buf_t *b, const char *s) {
  for (; *s; s++) {
    if (strchr("\\;,:\"", *s)) bd_buf_putc(b, '\\');
    bd_buf_putc(b, *s);
  }
}

/* RFC 5545 / vCard 3.0 TEXT: backslash before \ ; , and line breaks
 * (CRLF, CR or LF) as \n. */
static void text_escape(bd_buf_t *b, const char *s) {
  for (; *s; s++) {
    if (*s == '\r' || *s == '\n') {
      if (*s == '\r' && s[1] == '\n') s++;
      bd_buf_puts(b, "\\n");
      continue;
    }
    if (*s == '\\' || *s == ';' || *s == ',') bd_buf_putc(b, '\\');
    bd_buf_putc(b, *s);
  }
}

/* Appends one content line, folded at 75 octets (RFC 5545 3.1 / RFC 2425
 * 5.8.1: CRLF then one space), never inside a UTF-8 sequence, plus CRLF. */
static void put_line(bd_buf_t *out, const char *line, size_t n) {
  size_t col = 0;
  for (size_t i = 0; i < n;) {
    size_t cl = 1;
    unsigned char c = (unsigned char)line[i];
    if (c >= 0xC0) /* lead byte: the sequence's length */
      cl = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    if (i + cl > n) cl = n - i;
    if (col + cl > 75) {
      bd_buf_puts(out, "\r\n ");
      col = 1;
    }
    bd_buf_append(out, line + i, cl);
    col += cl;
    i += cl;
  }
  bd_buf_puts(out, "\r\n");
}

/* A property "NAME:" followed by escaped text values joined by sep. */
static void put_prop(bd_buf_t *out, bd_buf_t *tmp, const char *name, const char *value) {
  bd_buf_reset(tmp);
  bd_buf_puts(tmp, name);
  bd_buf_putc(tmp, ':');
  text_escape(tmp, value);
  put_line(out, tmp->data, tmp->len);
}

/* --- validators ------------------------------------------------------------------------ */

/* A practical addr-spec: dot-atom local part of RFC 5322 atext, a domain of
 * LDH labels (UTF-8 allowed for IDNs) with a dot. Quoted local parts are
 * refused: nobody scans those, and they would need escaping everywhere. */
static bool valid_email(const char *e) {
  const char *at = strrchr(e, '@');
  size_t n = strlen(e);
  if (!at || at == e || n > 254 || (size_t)(at - e) > 64) return false;
  for (const char *p = e; p < at; p++) {
    unsigned char c = (unsigned char)*p;
    if (c == '.') {
      if (p == e || p + 1 == at || p[1] == '.') return false;
    } else if (!(is_alpha(c) || is_digit(c) || c >= 0x80 || strchr("!#$%&'*+/=?^_`{|}~-", c))) {
      return false;
    }
  }
  const char *d = at + 1;
  if (!strchr(d, '.')) return false;
  size_t label = 0;
  for (const char *p = d;; p++) {
    unsigned char c = (unsigned char)*p;
    if (c == '.' || !c) {
      if (label == 0 || label > 63 || p[-1] == '-') return false;
      if (!c) break;
      label = 0;
    } else if (is_alpha(c) || is_digit(c) || c >= 0x80 || (c == '-' && label > 0)) {
      label++;
    } else {
      return false;
    }
  }
  return true;
}

/* Normalises a phone number to [+]digits (see qr.h). */
static bool norm_phone(const char *p, char out[32]) {
  size_t n = 0;
  int digits = 0;
  const char *s = p;
  while (*s == ' ') s++;
  if (*s == '+') out[n++] = *s++;
  for (; *s; s++) {
    if (is_digit((unsigned char)*s)) {
      if (++digits > 20) return false;
      out[n++] = *s;
    } else if (!strchr(" -.()/", *s)) {
      return false;
    }
  }
  out[n] = '\0';
  return digits >= 3;
}

static bool all_hex(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (hexval((unsigned char)s[i]) < 0) return false;
  return true;
}

/* --- payloads ------------------------------------------------------------------------------ */

enum {
  F_URL = 1,
  F_TEXT = 2,
  F_EMAIL = 4,
  F_SMS = 8,
  F_PHONE = 16,
  F_WIFI = 32,
  F_EVENT = 64,
  F_VCARD = 128
};

/* Target fields: which types may use each, and the longest value. */
static const struct {
  const char *name;  /* member of target */
  const char *param; /* its param name */
  unsigned types;    /* F_* of the types it belongs to */
  size_t max;        /* longest string in bytes (0: not a string) */
} k_fields[] = {
    {"destination", "target.destination", F_URL, 2048}, /* first: see bd_qr_payload */
    {"utm", "target.utm", F_URL, 0},
    {"text", "target.text", F_TEXT, BD_QR_MAX_PAYLOAD},
    {"email", "target.email", F_EMAIL, 254},
    {"subject", "target.subject", F_EMAIL, 500},
    {"message", "target.message", F_EMAIL | F_SMS, 2000},
    {"phone", "target.phone", F_SMS | F_PHONE, 40},
    {"ssid", "target.ssid", F_WIFI, 32},
    {"password", "target.password", F_WIFI, 64},
    {"encryption", "target.encryption", F_WIFI, 0},
    {"hidden", "target.hidden", F_WIFI, 0},
    {"title", "target.title", F_EVENT, 500},
    {"location", "target.location", F_EVENT, 500},
    {"start", "target.start", F_EVENT, 40},
    {"end", "target.end", F_EVENT, 40},
    {"vcard", "target.vcard", F_VCARD, 0},
};

static int url_payload(const json_t *t, const char *dest, bd_buf_t *out, char *err, size_t errsz,
                       const char **param) {
  if (!valid_url(dest))
    return fail(err, errsz, param, "target.destination",
                "target.destination must be an absolute http(s) URL");
  return bd_qr_merge_utm(dest, json_object_get(t, "utm"), out, err, errsz, param);
}

static int email_payload(const char *email, const char *subject, const char *message, bd_buf_t *out,
                         char *err, size_t errsz, const char **param) {
  if (!valid_email(email))
    return fail(err, errsz, param, "target.email", "target.email is not a valid e-mail address");
  bd_buf_puts(out, "mailto:");
  /* RFC 6068: the address keeps '@'; anything else outside unreserved in
   * the local part ('%', '?', '#', '&', ...) would change the URI's meaning */
  const char *at = strrchr(email, '@');
  pct_encode(out, email, (size_t)(at - email), false);
  bd_buf_putc(out, '@');
  pct_encode(out, at + 1, strlen(at + 1), false);
  char sep = '?';
  if (subject && *subject) {
    bd_buf_putc(out, sep);
    bd_buf_puts(out, "subject=");
    pct_encode(out, subject, strlen(subject), true);
    sep = '&';
  }
  if (message && *message) {
    bd_buf_putc(out, sep);
    bd_buf_puts(out, "body=");
    pct_encode(out, message, strlen(message), true);
  }
  return 0;
}

static int wifi_payload(const json_t *t, const char *ssid, const char *password, bd_buf_t *out,
                        char *err, size_t errsz, const char **param) {
  if (!*ssid) return fail(err, errsz, param, "target.ssid", "target.ssid must not be empty");
  json_t *ej = json_object_get(t, "encryption");
  const char *enc = NULL;
  if (ej && !json_is_null(ej)) {
    const char *e = json_string_value(ej);
    if (e && ieq(e, "WPA"))
      enc = "WPA";
    else if (e && ieq(e, "WEP"))
      enc = "WEP";
    else if (e && ieq(e, "nopass"))
      enc = "nopass";
    else
      return fail(err, errsz, param, "target.encryption",
                  "target.encryption must be WPA, WEP or nopass");
  } else {
    enc = password && *password ? "WPA" : "nopass";
  }
  size_t pl = password ? strlen(password) : 0;
  if (!strcmp(enc, "nopass") && pl)
    return fail(err, errsz, param, "target.password",
                "target.password must be absent with encryption nopass");
  if (!strcmp(enc, "WPA") && !((pl >= 8 && pl <= 63) || (pl == 64 && all_hex(password, 64))))
    return fail(err, errsz, param, "target.password",
                "target.password must have 8-63 characters (or 64 hex digits) for WPA");
  if (!strcmp(enc, "WEP") &&
      !(pl == 5 || pl == 13 || ((pl == 10 || pl == 26) && all_hex(password, pl))))
    return fail(err, errsz, param, "target.password",
                "target.password must have 5 or 13 characters (or 10 or 26 hex digits) for WEP");
  json_t *hj = json_object_get(t, "hidden");
  if (hj && !json_is_null(hj) && !json_is_boolean(hj))
    return fail(err, errsz, param, "target.hidden", "target.hidden must be a boolean");
  bd_buf_printf(out, "WIFI:T:%s;S:", enc);
  wifi_escape(out, ssid);
  bd_buf_putc(out, ';');
  if (pl) {
    bd_buf_puts(out, "P:");
    wifi_escape(out, password);
    bd_buf_putc(out, ';');
  }
  if (json_is_true(hj)) bd_buf_puts(out, "H:true;");
  bd_buf_putc(out, ';');
  return 0;
}

static int event_payload(const char *title, const char *location, const char *start,
                         const char *end, bd_buf_t *out, char *err, size_t errsz,
                         const char **param) {
  if (!title || !*title)
    return fail(err, errsz, param, "target.title", "target.title is required for an event");
  int64_t ts, te = 0;
  bool sdate, edate = false;
  char s1[64], s2[64];
  if (!start)
    return fail(err, errsz, param, "target.start", "target.start is required for an event");
  if (!parse_time(start, &ts, &sdate) || !ical_time(ts, sdate, s1))
    return fail(err, errsz, param, "target.start",
                "target.start must be an RFC 3339 timestamp or a date");
  if (end) {
    if (!parse_time(end, &te, &edate))
      return fail(err, errsz, param, "target.end",
                  "target.end must be an RFC 3339 timestamp or a date");
    if (edate != sdate)
      return fail(err, errsz, param, "target.end",
                  "target.end must be a date when target.start is one (and vice versa)");
    if (te < ts) return fail(err, errsz, param, "target.end", "target.end is before target.start");
    if (edate) te += 86400; /* the last day, inclusive → DTEND, exclusive */
    if (!ical_time(te, edate, s2))
      return fail(err, errsz, param, "target.end",
                  "target.end must be an RFC 3339 timestamp or a date");
  }
  bd_buf_t tmp = BD_BUF_INIT;
  bd_buf_puts(out, "BEGIN:VEVENT\r\n");
  put_prop(out, &tmp, "SUMMARY", title);
  if (location && *location) put_prop(out, &tmp, "LOCATION", location);
  bd_buf_printf(out, "DTSTART%s:%s\r\n", sdate ? ";VALUE=DATE" : "", s1);
  if (end) bd_buf_printf(out, "DTEND%s:%s\r\n", edate ? ";VALUE=DATE" : "", s2);
  bd_buf_puts(out, "END:VEVENT");
  bd_buf_free(&tmp);
  return 0;
}

static const char *const k_vcard[] = {"first_name", "last_name", "organization", "title",   "phone",
                                      "mobile",     "email",     "url",          "address", "note"};
static const char *const k_vcard_param[] = {"target.vcard.first_name",   "target.vcard.last_name",
                                            "target.vcard.organization", "target.vcard.title",
                                            "target.vcard.phone",        "target.vcard.mobile",
                                            "target.vcard.email",        "target.vcard.url",
                                            "target.vcard.address",      "target.vcard.note"};
enum {
  VC_FIRST,
  VC_LAST,
  VC_ORG,
  VC_TITLE,
  VC_PHONE,
  VC_MOBILE,
  VC_EMAIL,
  VC_URL,
  VC_ADDR,
  VC_NOTE
};
static const char *const k_addr[] = {"street", "city", "region", "postal_code", "country"};

static int vcard_payload(const json_t *vc, bd_buf_t *out, char *err, size_t errsz,
                         const char **param) {
  if (!json_is_object(vc))
    return fail(err, errsz, param, "target.vcard", "target.vcard must be an object");
  const char *k;
  json_t *jv;
  json_object_foreach((json_t *)vc, k, jv) {
    size_t i = 0;
    while (i < BD_ARRAY_LEN(k_vcard) && strcmp(k, k_vcard[i])) i++;
    if (i == BD_ARRAY_LEN(k_vcard))
      return fail(err, errsz, param, "target.vcard",
                  "target.vcard.%.40s is not a vCard field (first_name, last_name, organization, "
                  "title, phone, "
                  "mobile, email, url, address, note)",
                  k);
  }
  const char *v[BD_ARRAY_LEN(k_vcard)];
  const char *addr[BD_ARRAY_LEN(k_addr)] = {0};
  for (size_t i = 0; i < BD_ARRAY_LEN(k_vcard); i++) {
    json_t *a = json_object_get(vc, k_vcard[i]);
    if (i == VC_ADDR && json_is_object(a)) { /* structured address */
      v[i] = NULL;
      json_object_foreach(a, k, jv) {
        size_t j = 0;
        while (j < BD_ARRAY_LEN(k_addr) && strcmp(k, k_addr[j])) j++;
        if (j == BD_ARRAY_LEN(k_addr) || !str_member(a, k, &addr[j], 200) || has_nul(a, k) ||
            (addr[j] && has_ctl(addr[j], false)))
          return fail(err, errsz, param, "target.vcard.address",
                      "target.vcard.address must be a string or an object of street, city, region, "
                      "postal_code and "
                      "country strings (at most 200 bytes each)");
      }
      continue;
    }
    if (!str_member(vc, k_vcard[i], &v[i], 500) || has_nul(vc, k_vcard[i]) ||
        (v[i] && has_ctl(v[i], i == VC_NOTE || i == VC_ADDR)))
      return fail(err, errsz, param, k_vcard_param[i], "%s must be a string of at most 500 bytes",
                  k_vcard_param[i]);
    if (v[i] && !*v[i]) v[i] = NULL;
  }
  if (!v[VC_FIRST] && !v[VC_LAST] && !v[VC_ORG])
    return fail(err, errsz, param, "target.vcard",
                "target.vcard needs first_name, last_name or organization");
  char ph[32];
  if (v[VC_PHONE] && !norm_phone(v[VC_PHONE], ph))
    return fail(err, errsz, param, "target.vcard.phone",
                "target.vcard.phone is not a valid phone number");
  if (v[VC_MOBILE] && !norm_phone(v[VC_MOBILE], ph))
    return fail(err, errsz, param, "target.vcard.mobile",
                "target.vcard.mobile is not a valid phone number");
  if (v[VC_EMAIL] && !valid_email(v[VC_EMAIL]))
    return fail(err, errsz, param, "target.vcard.email",
                "target.vcard.email is not a valid e-mail address");
  if (v[VC_URL] && !valid_url(v[VC_URL]))
    return fail(err, errsz, param, "target.vcard.url",
                "target.vcard.url must be an absolute http(s) URL");

  bd_buf_t tmp = BD_BUF_INIT;
  bd_buf_puts(out, "BEGIN:VCARD\r\nVERSION:3.0\r\n");
  /* N:family;given;additional;prefix;suffix */
  bd_buf_puts(&tmp, "N:");
  text_escape(&tmp, v[VC_LAST] ? v[VC_LAST] : "");
  bd_buf_putc(&tmp, ';');
  text_escape(&tmp, v[VC_FIRST] ? v[VC_FIRST] : "");
  bd_buf_puts(&tmp, ";;;");
  put_line(out, tmp.data, tmp.len);
  bd_buf_reset(&tmp);
  bd_buf_puts(&tmp, "FN:");
  if (v[VC_FIRST] || v[VC_LAST]) {
    text_escape(&tmp, v[VC_FIRST] ? v[VC_FIRST] : "");
    if (v[VC_FIRST] && v[VC_LAST]) bd_buf_putc(&tmp, ' ');
    text_escape(&tmp, v[VC_LAST] ? v[VC_LAST] : "");
  } else {
    text_escape(&tmp, v[VC_ORG]);
  }
  put_line(out, tmp.data, tmp.len);
  if (v[VC_ORG]) put_prop(out, &tmp, "ORG", v[VC_ORG]);
  if (v[VC_TITLE]) put_prop(out, &tmp, "TITLE", v[VC_TITLE]);
  /* TEL keeps the number as typed: in a vCard it is text for people to
   * read, and phones parse the separators */
  if (v[VC_PHONE]) put_prop(out, &tmp, "TEL", v[VC_PHONE]);
  if (v[VC_MOBILE]) put_prop(out, &tmp, "TEL;TYPE=CELL", v[VC_MOBILE]);
  if (v[VC_EMAIL]) put_prop(out, &tmp, "EMAIL", v[VC_EMAIL]);
  if (v[VC_URL]) put_prop(out, &tmp, "URL", v[VC_URL]);
  bool any_addr = false;
  for (size_t j = 0; j < BD_ARRAY_LEN(k_addr); j++) any_addr |= addr[j] && *addr[j];
  if (v[VC_ADDR] || any_addr) {
    /* ADR:pobox;extended;street;locality;region;postal code;country */
    bd_buf_reset(&tmp);
    bd_buf_puts(&tmp, "ADR:;;");
    if (v[VC_ADDR]) {
      text_escape(&tmp, v[VC_ADDR]);
      bd_buf_puts(&tmp, ";;;;");
    } else {
      for (size_t j = 0; j < BD_ARRAY_LEN(k_addr); j++) {
        if (j) bd_buf_putc(&tmp, ';');
        if (addr[j]) text_escape(&tmp, addr[j]);
      }
    }
    put_line(out, tmp.data, tmp.len);
  }
  if (v[VC_NOTE]) put_prop(out, &tmp, "NOTE", v[VC_NOTE]);
  bd_buf_puts(out, "END:VCARD");
  bd_buf_free(&tmp);
  return 0;
}

/* A pre-encoded destination: its type told by its scheme or header (what
 * readers look at), its bytes kept exactly; no NUL, at least one byte,
 * within a symbol's capacity. */
static int preencoded_payload(const json_t *t, const char *s, bd_qr_type_t *type, bd_buf_t *out,
                              char *err, size_t errsz, const char **param) {
  size_t n = json_string_length(json_object_get(t, "destination"));
  if (n == 0 || strlen(s) != n)
    return fail(err, errsz, param, "target.destination",
                "target.destination must be a non-empty string without NUL characters");
  if (n > BD_QR_MAX_PAYLOAD)
    return fail(err, errsz, param, "target.destination",
                "target.destination is %zu bytes: more than a QR code can hold (at most %d bytes)", n,
                BD_QR_MAX_PAYLOAD);
  *type = iprefix(s, "mailto:")                                 ? BD_QR_TYPE_EMAIL
          : iprefix(s, "smsto:") || iprefix(s, "sms:")           ? BD_QR_TYPE_SMS
          : iprefix(s, "tel:")                                  ? BD_QR_TYPE_PHONE
          : iprefix(s, "WIFI:")                                 ? BD_QR_TYPE_WIFI
          : iprefix(s, "BEGIN:VEVENT") || iprefix(s, "BEGIN:VCALENDAR") ? BD_QR_TYPE_EVENT
          : iprefix(s, "BEGIN:VCARD")                           ? BD_QR_TYPE_VCARD
                                                                : BD_QR_TYPE_TEXT;
  bd_buf_append(out, s, n);
  return 0;
}

int bd_qr_payload(const json_t *t, bd_qr_type_t *type, bd_buf_t *out, char *err, size_t errsz,
                  const char **param) {
  if (param) *param = "target";
  if (!json_is_object(t)) return fail(err, errsz, param, "target", "target must be an object");
  /* which types could the members mean? */
  unsigned present = 0;
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)t, k, v) {
    size_t i = 0;
    while (i < BD_ARRAY_LEN(k_fields) && strcmp(k, k_fields[i].name)) i++;
    if (i == BD_ARRAY_LEN(k_fields))
      return fail(err, errsz, param, "target", "target.%.40s is not a target field", k);
    if (json_is_null(v)) continue;
    present |= 1u << i;
  }
#define HAS(name) (json_object_get(t, name) && !json_is_null(json_object_get(t, name)))
  /* a destination that is not an http(s) URL is a pre-encoded payload of
   * any type (QRKit): encoded as given, alone */
  const char *pre = json_string_value(json_object_get(t, "destination"));
  if (pre && !iprefix(pre, "http://") && !iprefix(pre, "https://")) {
    if (present != 1u) /* k_fields[0] is destination */
      return fail(err, errsz, param, "target",
                  "a pre-encoded target.destination (not an http(s) URL) must be the only target field");
    return preencoded_payload(t, pre, type, out, err, errsz, param);
  }
  unsigned ty;
  bd_qr_type_t tt;
  if (HAS("destination"))
    ty = F_URL, tt = BD_QR_TYPE_URL;
  else if (HAS("vcard"))
    ty = F_VCARD, tt = BD_QR_TYPE_VCARD;
  else if (HAS("ssid"))
    ty = F_WIFI, tt = BD_QR_TYPE_WIFI;
  else if (HAS("email"))
    ty = F_EMAIL, tt = BD_QR_TYPE_EMAIL;
  else if (HAS("phone"))
    ty = HAS("message") ? F_SMS : F_PHONE, tt = HAS("message") ? BD_QR_TYPE_SMS : BD_QR_TYPE_PHONE;
  else if (HAS("title") || HAS("start") || HAS("end") || HAS("location"))
    ty = F_EVENT, tt = BD_QR_TYPE_EVENT;
  else if (HAS("text"))
    ty = F_TEXT, tt = BD_QR_TYPE_TEXT;
  else
    return fail(err, errsz, param, "target",
                "target needs one of destination, text, email, phone, ssid, title/start or vcard");
#undef HAS
  /* every present member must belong to that type */
  for (size_t i = 0; i < BD_ARRAY_LEN(k_fields); i++)
    if ((present & (1u << i)) && !(k_fields[i].types & ty))
      return fail(err, errsz, param, k_fields[i].param,
                  "%s does not belong in a target of type %s: give the fields of exactly one type",
                  k_fields[i].param, bd_qr_type_name(tt));
  *type = tt;
  /* strings: type, length, no NUL; no control characters where a line
   * break would corrupt the format (free text may have them) */
  const char *s[BD_ARRAY_LEN(k_fields)] = {0};
  for (size_t i = 0; i < BD_ARRAY_LEN(k_fields); i++) {
    if (!k_fields[i].max || !(present & (1u << i))) continue;
    bool multiline = !strcmp(k_fields[i].name, "text") || !strcmp(k_fields[i].name, "message") ||
                     !strcmp(k_fields[i].name, "location") || !strcmp(k_fields[i].name, "title");
    if (!str_member(t, k_fields[i].name, &s[i], k_fields[i].max) || has_nul(t, k_fields[i].name))
      return fail(err, errsz, param, k_fields[i].param, "%s must be a string of at most %zu bytes",
                  k_fields[i].param, k_fields[i].max);
    if (has_ctl(s[i], multiline))
      return fail(err, errsz, param, k_fields[i].param, "%s must not contain control characters",
                  k_fields[i].param);
  }
  enum { DEST, UTM, TEXT, EMAIL, SUBJ, MSG, PHONE, SSID, PASS, ENC, HID, TITLE, LOC, START, END };
  int rc = -1;
  char ph[32];
  switch (tt) {
    case BD_QR_TYPE_URL: rc = url_payload(t, s[DEST], out, err, errsz, param); break;
    case BD_QR_TYPE_VCARD:
      rc = vcard_payload(json_object_get(t, "vcard"), out, err, errsz, param);
      break;
    case BD_QR_TYPE_WIFI: rc = wifi_payload(t, s[SSID], s[PASS], out, err, errsz, param); break;
    case BD_QR_TYPE_EMAIL:
      rc = email_payload(s[EMAIL], s[SUBJ], s[MSG], out, err, errsz, param);
      break;
    case BD_QR_TYPE_SMS:
    case BD_QR_TYPE_PHONE:
      if (!norm_phone(s[PHONE], ph))
        return fail(err, errsz, param, "target.phone",
                    "target.phone is not a valid phone number (3-20 digits, optional leading +)");
      if (tt == BD_QR_TYPE_SMS) {
        /* SMSTO:number:text; the text runs to the end, colons and all */
        bd_buf_printf(out, "SMSTO:%s:", ph);
        bd_buf_puts(out, s[MSG]);
      } else {
        bd_buf_printf(out, "tel:%s", ph);
      }
      rc = 0;
      break;
    case BD_QR_TYPE_EVENT:
      rc = event_payload(s[TITLE], s[LOC], s[START], s[END], out, err, errsz, param);
      break;
    case BD_QR_TYPE_TEXT:
      if (!*s[TEXT]) return fail(err, errsz, param, "target.text", "target.text must not be empty");
      bd_buf_puts(out, s[TEXT]);
      rc = 0;
      break;
  }
  if (rc == 0 && out->len > BD_QR_MAX_PAYLOAD)
    return fail(err, errsz, param, "target",
                "the content is %zu bytes: more than a QR code can hold (at most %d bytes)",
                out->len, BD_QR_MAX_PAYLOAD);
  return rc;
}

/* --- designs ------------------------------------------------------------------------------ */

static const char *const k_gradients[] = {"linear-top-to-bottom", "linear-left-to-right",
                                          "diagonal", "radial"};
static const char *const k_body[] = {"square", "rounded", "dots"};
static const char *const k_eye[] = {"square", "rounded", "circle"};

/* Largest logo side, as a fraction of the symbol side, per level (qr.h). */
static double logo_max(char ec) {
  return ec == 'M' ? 0.15 : ec == 'Q' ? 0.22 : ec == 'H' ? 0.30 : 0;
}

static bool parse_color(const char *s, uint32_t *rgb) {
  if (!s || s[0] != '#') return false;
  size_t n = strlen(s + 1);
  if (n != 3 && n != 6) return false;
  uint32_t v = 0;
  for (size_t i = 1; i <= n; i++) {
    int d = hexval((unsigned char)s[i]);
    if (d < 0) return false;
    v = v * 16 + (uint32_t)d;
  }
  *rgb = n == 6 ? v : ((v >> 8) & 0xF) * 0x110000 + ((v >> 4) & 0xF) * 0x1100 + (v & 0xF) * 0x11;
  return true;
}

/* WCAG 2 relative luminance (sRGB). */
static double lin(double c) { return c <= 0.03928 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4); }

static double luminance(uint32_t rgb) {
  return 0.2126 * lin(((rgb >> 16) & 255) / 255.0) + 0.7152 * lin(((rgb >> 8) & 255) / 255.0) +
         0.0722 * lin((rgb & 255) / 255.0);
}

static const char *color_str(uint32_t rgb, char buf[8]) {
  snprintf(buf, 8, "#%06x", (unsigned)(rgb & 0xFFFFFF));
  return buf;
}

static bd_qr_design_t *dfail(bd_qr_design_t *d) {
  bd_qr_design_free(d);
  return NULL;
}

/* Rejects members of o not in names (param: the object's own name). */
static bool known_members(const json_t *o, const char *const *names, size_t n, const char *objname,
                          char *err, size_t errsz, const char **param) {
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)o, k, v) {
    size_t i = 0;
    while (i < n && strcmp(k, names[i])) i++;
    if (i == n) {
      fail(err, errsz, param, objname, "%s.%.40s is not a design field", objname, k);
      return false;
    }
  }
  return true;
}

/* An optional object member: absent/null → *out NULL; not an object → error. */
static bool obj_member(const json_t *o, const char *k, const json_t **out, const char *p, char *err,
                       size_t errsz, const char **param) {
  json_t *v = json_object_get(o, k);
  *out = v && !json_is_null(v) ? v : NULL;
  if (*out && !json_is_object(v)) {
    fail(err, errsz, param, p, "%s must be an object", p);
    return false;
  }
  return true;
}

/* A colour member: absent/null leaves *rgb and *set alone. */
static bool color_member(const json_t *o, const char *k, uint32_t *rgb, bool *set, const char *p,
                         char *err, size_t errsz, const char **param) {
  json_t *v = o ? json_object_get(o, k) : NULL;
  if (!v || json_is_null(v)) return true;
  if (!json_is_string(v) || !parse_color(json_string_value(v), rgb)) {
    fail(err, errsz, param, p, "%s must be a colour as #rrggbb or #rgb", p);
    return false;
  }
  if (set) *set = true;
  return true;
}

static bool enum_member(const json_t *o, const char *k, const char *const *names, size_t n,
                        int *out, const char *p, char *err, size_t errsz, const char **param) {
  json_t *v = o ? json_object_get(o, k) : NULL;
  if (!v || json_is_null(v)) return true;
  const char *s = json_string_value(v);
  for (size_t i = 0; s && i < n; i++)
    if (!strcmp(s, names[i])) {
      *out = (int)i;
      return true;
    }
  char list[160] = "";
  for (size_t i = 0; i < n; i++)
    snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
             i == 0       ? ""
             : i + 1 == n ? " or "
                          : ", ",
             names[i]);
  fail(err, errsz, param, p, "%s must be %s", p, list);
  return false;
}

static bool bool_member(const json_t *o, const char *k, bool *out, const char *p, char *err,
                        size_t errsz, const char **param) {
  json_t *v = o ? json_object_get(o, k) : NULL;
  if (!v || json_is_null(v)) return true;
  if (!json_is_boolean(v)) {
    fail(err, errsz, param, p, "%s must be true or false", p);
    return false;
  }
  *out = json_is_true(v);
  return true;
}

/* Parses design.logo into d (d->ec already known). */
static bool parse_logo(const json_t *logo, bd_qr_design_t *d, char *err, size_t errsz,
                       const char **param) {
  static const char *const names[] = {"url", "clear_background", "size", "source_url"};
  if (!known_members(logo, names, BD_ARRAY_LEN(names), "design.logo", err, errsz, param))
    return false;
  const char *url = json_string_value(json_object_get(logo, "url"));
  if (!url || !*url)
    return !fail(err, errsz, param, "design.logo.url", "design.logo.url is required");
  if (iprefix(url, "http://") || iprefix(url, "https://"))
    return !fail(err, errsz, param, "design.logo.url",
                 "design.logo.url: remote logos must come from an allowlisted host and be fetched "
                 "by the server");
  if (!iprefix(url, "data:"))
    return !fail(err, errsz, param, "design.logo.url",
                 "design.logo.url must be a data: URL or an http(s) URL");
  /* data:[<mediatype>][;base64],<data>; parameters such as charset=utf-8
   * may sit between the type and ;base64 */
  const char *comma = strchr(url, ',');
  if (!comma || comma - url > 200)
    return !fail(err, errsz, param, "design.logo.url", "design.logo.url is not a valid data: URL");
  char mt[201];
  size_t ml = (size_t)(comma - url) - 5;
  memcpy(mt, url + 5, ml);
  mt[ml] = '\0';
  bool base64 = ml >= 7 && ieq(mt + ml - 7, ";base64");
  if (base64) mt[ml -= 7] = '\0';
  mt[strcspn(mt, ";")] = '\0';
  int kind = ieq(mt, "image/png")                            ? BD_QR_LOGO_PNG
             : ieq(mt, "image/jpeg") || ieq(mt, "image/jpg") ? BD_QR_LOGO_JPEG
             : ieq(mt, "image/svg+xml")                      ? BD_QR_LOGO_SVG
                                                             : 0;
  if (!kind)
    return !fail(err, errsz, param, "design.logo.url",
                 "design.logo.url must be an image/png, image/jpeg or image/svg+xml data: URL");
  bd_buf_t img = BD_BUF_INIT;
  size_t dl = strlen(comma + 1);
  bool ok = dl <= 2 * 1024 * 1024 &&
            (base64 ? b64_decode(&img, comma + 1, dl) : pct_decode(&img, comma + 1, dl));
  if (!ok || img.len == 0 || img.len > 1024 * 1024) {
    bd_buf_free(&img);
    return !fail(err, errsz, param, "design.logo.url",
                 "design.logo.url must hold at most 1 MiB of correctly %s data",
                 base64 ? "base64-encoded" : "URL-encoded");
  }
  if (!bd_qr_logo_probe(kind, (unsigned char *)img.data, img.len)) {
    bd_buf_free(&img);
    return !fail(err, errsz, param, "design.logo.url",
                 "design.logo.url is not a readable %s image of at most 2048x2048 px",
                 kind == BD_QR_LOGO_PNG    ? "PNG"
                 : kind == BD_QR_LOGO_JPEG ? "JPEG"
                                           : "SVG");
  }
  d->logo_kind = kind;
  d->logo = (unsigned char *)bd_buf_detach(&img, &d->logo_len);
  d->logo_url = bd_strdup(url);
  if (!bool_member(logo, "clear_background", &d->clear_background, "design.logo.clear_background",
                   err, errsz, param))
    return false;
  double max = logo_max(d->ec);
  if (max == 0)
    return !fail(
        err, errsz, param, "design.logo",
        "a logo needs error correction M, Q or H: level L cannot absorb the modules it covers");
  d->logo_size = max < 0.22 ? max : 0.22;
  json_t *sz = json_object_get(logo, "size");
  if (sz && !json_is_null(sz)) {
    if (!json_is_number(sz) || json_number_value(sz) < 0.05 || json_number_value(sz) > 0.4)
      return !fail(err, errsz, param, "design.logo.size",
                   "design.logo.size must be a fraction between 0.05 and 0.4");
    d->logo_size = json_number_value(sz);
  }
  if (d->logo_size > max + 1e-9)
    return !fail(err, errsz, param, "design.logo",
                 "the logo is too large for error correction %c: its side may cover at most %.0f%% "
                 "of the code's "
                 "(%.0f%% asked)%s",
                 d->ec, max * 100, d->logo_size * 100,
                 d->ec == 'H' ? "" : "; a higher level allows more");
  return true;
}

/* design.error_correction: L, M, Q or H, either case; absent/null keeps M. */
static bool parse_ec(const json_t *j, bd_qr_design_t *d, char *err, size_t errsz,
                     const char **param) {
  json_t *ec = json_object_get(j, "error_correction");
  if (!ec || json_is_null(ec)) return true;
  const char *e = json_string_value(ec);
  if (!e || strlen(e) != 1 || !strchr("LMQHlmqh", e[0]))
    return !fail(err, errsz, param, "design.error_correction",
                 "design.error_correction must be L, M, Q or H");
  d->ec = (char)(e[0] & ~0x20);
  return true;
}

/* design.colors: foreground and background. */
static bool parse_colors(const json_t *colors, bd_qr_design_t *d, char *err, size_t errsz,
                         const char **param) {
  static const char *const k_colors[] = {"foreground", "background"};
  return known_members(colors, k_colors, 2, "design.colors", err, errsz, param) &&
         color_member(colors, "foreground", &d->fg, NULL, "design.colors.foreground", err, errsz,
                      param) &&
         color_member(colors, "background", &d->bg, NULL, "design.colors.background", err, errsz,
                      param);
}

/* design.gradient: start and end (both required) and a type (k_gradients). */
static bool parse_gradient(const json_t *g, bd_qr_design_t *d, char *err, size_t errsz,
                           const char **param) {
  static const char *const k_grad[] = {"start", "end", "type"};
  bool s1 = false, s2 = false;
  int gi = 0;
  if (!known_members(g, k_grad, 3, "design.gradient", err, errsz, param) ||
      !color_member(g, "start", &d->grad_start, &s1, "design.gradient.start", err, errsz, param) ||
      !color_member(g, "end", &d->grad_end, &s2, "design.gradient.end", err, errsz, param) ||
      !enum_member(g, "type", k_gradients, 4, &gi, "design.gradient.type", err, errsz, param))
    return false;
  if (!s1)
    return !fail(err, errsz, param, "design.gradient.start", "design.gradient.start is required");
  if (!s2)
    return !fail(err, errsz, param, "design.gradient.end", "design.gradient.end is required");
  d->gradient = gi + 1;
  return true;
}

/* design.shapes: body (k_body), eye_frame and eye_ball (k_eye). */
static bool parse_shapes(const json_t *sh, bd_qr_design_t *d, char *err, size_t errsz,
                         const char **param) {
  static const char *const k_shapes[] = {"body", "eye_frame", "eye_ball"};
  return known_members(sh, k_shapes, 3, "design.shapes", err, errsz, param) &&
         enum_member(sh, "body", k_body, 3, &d->body, "design.shapes.body", err, errsz, param) &&
         enum_member(sh, "eye_frame", k_eye, 3, &d->eye_frame, "design.shapes.eye_frame", err,
                     errsz, param) &&
         enum_member(sh, "eye_ball", k_eye, 3, &d->eye_ball, "design.shapes.eye_ball", err, errsz,
                     param);
}

/* design.eye_colors: frame and ball, each drawn only when given. */
static bool parse_eye_colors(const json_t *eyes, bd_qr_design_t *d, char *err, size_t errsz,
                             const char **param) {
  static const char *const k_eyes[] = {"frame", "ball"};
  return known_members(eyes, k_eyes, 2, "design.eye_colors", err, errsz, param) &&
         color_member(eyes, "frame", &d->eye_frame_color, &d->has_eye_frame_color,
                      "design.eye_colors.frame", err, errsz, param) &&
         color_member(eyes, "ball", &d->eye_ball_color, &d->has_eye_ball_color,
                      "design.eye_colors.ball", err, errsz, param);
}

/* Scannability: every colour that draws dark modules, against the
 * background (qr.h explains the thresholds). */
static bool check_contrast(const bd_qr_design_t *d, char *err, size_t errsz, const char **param) {
  const struct {
    uint32_t c;    /* the colour */
    bool on;       /* whether it is drawn */
    const char *p; /* its param */
  } darks[] = {{d->fg, !d->gradient, "design.colors.foreground"},
               {d->grad_start, d->gradient != 0, "design.gradient.start"},
               {d->grad_end, d->gradient != 0, "design.gradient.end"},
               {d->eye_frame_color, d->has_eye_frame_color, "design.eye_colors.frame"},
               {d->eye_ball_color, d->has_eye_ball_color, "design.eye_colors.ball"}};
  for (size_t i = 0; i < BD_ARRAY_LEN(darks); i++) {
    if (!darks[i].on) continue;
    char a[8], b[8];
    if (luminance(darks[i].c) >= luminance(d->bg))
      return !fail(err, errsz, param, darks[i].p,
                   "%s (%s) must be darker than the background (%s): light-on-dark codes fail on "
                   "many readers",
                   darks[i].p, color_str(darks[i].c, a), color_str(d->bg, b));
    double sc = luminance(d->bg) - luminance(darks[i].c);
    if (sc < BD_QR_MIN_SYMBOL_CONTRAST - 1e-9)
      return !fail(err, errsz, param, darks[i].p,
                   "%s (%s) has too little contrast with the background (%s): a symbol contrast "
                   "of %.0f%% (ISO/IEC 15415), at least %.0f%% is needed to scan",
                   darks[i].p, color_str(darks[i].c, a), color_str(d->bg, b), sc * 100,
                   BD_QR_MIN_SYMBOL_CONTRAST * 100);
  }
  return true;
}

bd_qr_design_t *bd_qr_design_parse(const json_t *j, char *err, size_t errsz, const char **param) {
  bd_qr_design_t *d = bd_calloc(1, sizeof *d);
  d->ec = 'M';
  d->fg = 0x000000;
  d->bg = 0xFFFFFF;
  if (param) *param = NULL;
  if (!j || json_is_null(j)) return d;
  if (!json_is_object(j))
    return fail(err, errsz, param, "design", "design must be an object"), dfail(d);
  static const char *const top[] = {
      "error_correction",       "colors",  "gradient", "shapes", "eye_colors", "logo",
      "transparent_background", "has_logo"};
  if (!known_members(j, top, BD_ARRAY_LEN(top), "design", err, errsz, param)) return dfail(d);
  /* has_logo is read-only (the code object shows it): accepted, ignored */
  bool has_logo_ignored = false;
  if (!bool_member(j, "has_logo", &has_logo_ignored, "design.has_logo", err, errsz, param))
    return dfail(d);
  /* the level first: the logo's size limit depends on it */
  const json_t *colors, *g, *sh, *eyes, *logo;
  if (!parse_ec(j, d, err, errsz, param) ||
      !obj_member(j, "colors", &colors, "design.colors", err, errsz, param) ||
      !obj_member(j, "gradient", &g, "design.gradient", err, errsz, param) ||
      !obj_member(j, "shapes", &sh, "design.shapes", err, errsz, param) ||
      !obj_member(j, "eye_colors", &eyes, "design.eye_colors", err, errsz, param) ||
      !obj_member(j, "logo", &logo, "design.logo", err, errsz, param))
    return dfail(d);
  if ((colors && !parse_colors(colors, d, err, errsz, param)) ||
      (g && !parse_gradient(g, d, err, errsz, param)) ||
      (sh && !parse_shapes(sh, d, err, errsz, param)) ||
      (eyes && !parse_eye_colors(eyes, d, err, errsz, param)) ||
      !bool_member(j, "transparent_background", &d->transparent, "design.transparent_background",
                   err, errsz, param) ||
      (logo && !parse_logo(logo, d, err, errsz, param)) || !check_contrast(d, err, errsz, param))
    return dfail(d);
  return d;
}

bd_qr_design_t *bd_qr_design_copy(const bd_qr_design_t *s) {
  bd_qr_design_t *d = bd_malloc(sizeof *d);
  *d = *s;
  if (s->logo) {
    d->logo = bd_malloc(s->logo_len);
    memcpy(d->logo, s->logo, s->logo_len);
  }
  if (s->logo_url) d->logo_url = bd_strdup(s->logo_url);
  return d;
}

void bd_qr_design_free(bd_qr_design_t *d) {
  if (!d) return;
  free(d->logo);
  free(d->logo_url);
  free(d);
}

char bd_qr_design_ec(const bd_qr_design_t *d) { return d->ec; }

bool bd_qr_design_is_plain(const bd_qr_design_t *d) {
  return d->body == 0 && d->eye_frame == 0 && d->eye_ball == 0 && !d->gradient && !d->logo &&
         (!d->has_eye_frame_color || d->eye_frame_color == d->fg) &&
         (!d->has_eye_ball_color || d->eye_ball_color == d->fg);
}

bool bd_qr_design_needs_scan(const bd_qr_design_t *d) { return !bd_qr_design_is_plain(d); }

bool bd_qr_design_remote_logo(const json_t *design, const char **url) {
  json_t *logo = json_is_object(design) ? json_object_get(design, "logo") : NULL;
  const char *u = json_is_object(logo) ? json_string_value(json_object_get(logo, "url")) : NULL;
  if (!u || !(iprefix(u, "http://") || iprefix(u, "https://"))) return false;
  if (url) *url = u;
  return true;
}

json_t *bd_qr_design_to_json(const bd_qr_design_t *d) {
  char a[8], b[8];
  json_t *j = json_object();
  char ec[2] = {d->ec, 0};
  json_object_set_new(j, "error_correction", json_string(ec));
  json_object_set_new(j, "colors",
                      json_pack("{s:s, s:s}", "foreground", color_str(d->fg, a), "background",
                                color_str(d->bg, b)));
  if (d->gradient)
    json_object_set_new(j, "gradient",
                        json_pack("{s:s, s:s, s:s}", "start", color_str(d->grad_start, a), "end",
                                  color_str(d->grad_end, b), "type", k_gradients[d->gradient - 1]));
  json_object_set_new(j, "shapes",
                      json_pack("{s:s, s:s, s:s}", "body", k_body[d->body], "eye_frame",
                                k_eye[d->eye_frame], "eye_ball", k_eye[d->eye_ball]));
  if (d->has_eye_frame_color || d->has_eye_ball_color) {
    json_t *e = json_object();
    if (d->has_eye_frame_color)
      json_object_set_new(e, "frame", json_string(color_str(d->eye_frame_color, a)));
    if (d->has_eye_ball_color)
      json_object_set_new(e, "ball", json_string(color_str(d->eye_ball_color, a)));
    json_object_set_new(j, "eye_colors", e);
  }
  if (d->logo)
    json_object_set_new(j, "logo",
                        json_pack("{s:s, s:b, s:f}", "url", d->logo_url, "clear_background",
                                  d->clear_background, "size", d->logo_size));
  json_object_set_new(j, "transparent_background", json_boolean(d->transparent));
  return j;
}

QRecLevel bd_qr_level(char ec) {
  return ec == 'L'   ? QR_ECLEVEL_L
         : ec == 'Q' ? QR_ECLEVEL_Q
         : ec == 'H' ? QR_ECLEVEL_H
                     : QR_ECLEVEL_M;
}

bool bd_qr_fits(const char *payload, const bd_qr_design_t *d) {
  /* byte-mode capacity of version 40; the render falls back to pure 8-bit
   * mode, so anything within it always renders */
  size_t n = 0;
  bool ascii = true;
  for (const unsigned char *p = (const unsigned char *)payload; *p; p++, n++) ascii &= *p < 0x80;
  size_t cap = d->ec == 'L' ? 2953 : d->ec == 'M' ? 2331 : d->ec == 'Q' ? 1663 : 1273;
  if (!ascii) cap -= 2; /* the ECI designator (qr_render.c) takes 12 bits */
  return n > 0 && n <= cap;
}
