/* http_grammar.c: see http_grammar.h. */
#include "http_grammar.h"

#include <arpa/inet.h>
#include <string.h>

#define T(c) [(unsigned char)(c)] = 1
const unsigned char bd_http_tchar[256] = {
    T('!'), T('#'), T('$'), T('%'), T('&'), T('\''), T('*'), T('+'), T('-'), T('.'), T('^'), T('_'),
    T('`'), T('|'), T('~'), T('0'), T('1'), T('2'), T('3'), T('4'), T('5'), T('6'), T('7'), T('8'),
    T('9'), T('A'), T('B'), T('C'), T('D'), T('E'), T('F'), T('G'), T('H'), T('I'), T('J'), T('K'),
    T('L'), T('M'), T('N'), T('O'), T('P'), T('Q'), T('R'), T('S'), T('T'), T('U'), T('V'), T('W'),
    T('X'), T('Y'), T('Z'), T('a'), T('b'), T('c'), T('d'), T('e'), T('f'), T('g'), T('h'), T('i'),
    T('j'), T('k'), T('l'), T('m'), T('n'), T('o'), T('p'), T('q'), T('r'), T('s'), T('t'), T('u'),
    T('v'), T('w'), T('x'), T('y'), T('z')};
#undef T

bool bd_http_is_token(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!bd_http_tchar[(unsigned char)p[i]]) return false;
  return true;
}

static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
static bool is_unreserved(char c) { return is_alpha(c) || is_digit(c) || strchr("-._~", c) != NULL; }
static bool is_sub_delim(char c) { return c != '\0' && strchr("!$&'()*+,;=", c) != NULL; }

/* RFC 3986 3.2.2: reg-name = *( unreserved / pct-encoded / sub-delims ) */
static bool reg_name(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char c = p[i];
    if (c == '%') {
      if (i + 2 >= n || !is_hex(p[i + 1]) || !is_hex(p[i + 2])) return false;
      i += 2;
    } else if (!is_unreserved(c) && !is_sub_delim(c)) {
      return false;
    }
  }
  return true;
}

/* RFC 3986 3.2.2: IP-literal = "[" ( IPv6address / IPvFuture ) "]", given
 * without its brackets. */
static bool ip_literal(const char *p, size_t n) {
  if (n >= 2 && (p[0] == 'v' || p[0] == 'V')) {
    /* IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ) */
    size_t i = 1;
    while (i < n && is_hex(p[i])) i++;
    if (i == 1 || i >= n || p[i] != '.') return false;
    if (++i >= n) return false;
    for (; i < n; i++)
      if (!is_unreserved(p[i]) && !is_sub_delim(p[i]) && p[i] != ':') return false;
    return true;
  }
  char tmp[INET6_ADDRSTRLEN + 1];
  if (n == 0 || n >= sizeof tmp) return false;
  memcpy(tmp, p, n);
  tmp[n] = '\0';
  unsigned char addr[16];
  return inet_pton(AF_INET6, tmp, addr) == 1;
}

/* uri-host [ ":" port ], port = *DIGIT (RFC 3986 3.2.3) */
static bool authority_host(const char *p, size_t n, bool allow_empty) {
  size_t host_end;
  if (n > 0 && p[0] == '[') {
    const char *close = memchr(p, ']', n);
    if (!close || !ip_literal(p + 1, (size_t)(close - p - 1))) return false;
    host_end = (size_t)(close - p) + 1;
  } else {
    const char *colon = memchr(p, ':', n);
    host_end = colon ? (size_t)(colon - p) : n;
    if (!reg_name(p, host_end)) return false;
    if (host_end == 0 && !allow_empty) return false;
  }
  if (host_end == n) return true;
  if (p[host_end] != ':') return false;
  for (size_t i = host_end + 1; i < n; i++)
    if (!is_digit(p[i])) return false;
  return true;
}

bool bd_http_host_valid(const char *p, size_t n) {
  if (n == 0) return true; /* RFC 9110 7.2: empty when the target has no authority */
  return authority_host(p, n, false);
}

static bool ieq_prefix(const char *p, size_t n, const char *lit) {
  size_t l = strlen(lit);
  if (n < l) return false;
  for (size_t i = 0; i < l; i++) {
    char c = p[i];
    if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
    if (c != lit[i]) return false;
  }
  return true;
}

bd_target_form_t bd_http_target(const char *p, size_t n, size_t *path_off) {
  *path_off = 0;
  if (n == 0 || memchr(p, '#', n)) return BD_TARGET_BAD;
  if (p[0] == '/') return BD_TARGET_ORIGIN;
  size_t scheme;
  if (ieq_prefix(p, n, "http://")) scheme = 7;
  else if (ieq_prefix(p, n, "https://")) scheme = 8;
  else return BD_TARGET_BAD;
  /* authority ends at the path, the query or the end (RFC 3986 3.2) */
  size_t end = scheme;
  while (end < n && p[end] != '/' && p[end] != '?') end++;
  const char *auth = p + scheme;
  size_t alen = end - scheme;
  if (memchr(auth, '@', alen)) return BD_TARGET_BAD; /* RFC 9110 4.2.4: no userinfo */
  if (!authority_host(auth, alen, false)) return BD_TARGET_BAD;
  *path_off = end;
  return BD_TARGET_ABSOLUTE;
}

static size_t skip_ows(const char *p, size_t i, size_t n) {
  while (i < n && (p[i] == ' ' || p[i] == '\t')) i++;
  return i;
}

static size_t skip_token(const char *p, size_t i, size_t n) {
  while (i < n && bd_http_tchar[(unsigned char)p[i]]) i++;
  return i;
}

/* quoted-string from p[i] == '"'; returns the index after it, or 0 if unterminated/invalid */
static size_t skip_quoted(const char *p, size_t i, size_t n) {
  for (i++; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c == '"') return i + 1;
    if (c == '\\') {
      if (++i >= n) return 0;
      c = (unsigned char)p[i];
      if (c < 0x20 && c != '\t') return 0;
      if (c == 0x7f) return 0;
    } else if ((c < 0x20 && c != '\t') || c == 0x7f) {
      return 0;
    }
  }
  return 0;
}

/* One list element: transfer-coding = token *( OWS ";" OWS token BWS "=" BWS
 * ( token / quoted-string ) ). Sets *chunked if it is "chunked"; returns
 * the index after it (at ',' or the end), or 0 when malformed. */
static size_t te_element(const char *p, size_t i, size_t n, bool *chunked, bool *params) {
  size_t s = i;
  i = skip_token(p, i, n);
  if (i == s) return 0;
  *chunked = (i - s == 7) && ieq_prefix(p + s, 7, "chunked");
  *params = false;
  for (;;) {
    i = skip_ows(p, i, n);
    if (i >= n || p[i] == ',') return i;
    if (p[i] != ';') return 0;
    *params = true;
    i = skip_ows(p, i + 1, n);
    size_t ns = i;
    i = skip_token(p, i, n);
    if (i == ns) return 0;
    i = skip_ows(p, i, n);
    if (i >= n || p[i] != '=') return 0;
    i = skip_ows(p, i + 1, n);
    if (i < n && p[i] == '"') {
      i = skip_quoted(p, i, n);
      if (i == 0) return 0;
    } else {
      size_t vs = i;
      i = skip_token(p, i, n);
      if (i == vs) return 0;
    }
  }
}

bd_te_t bd_http_te_check(const char *const *vals, const size_t *lens, int n) {
  int codings = 0;
  bool last_chunked = false, chunked_seen = false;
  for (int v = 0; v < n; v++) {
    const char *p = vals[v];
    size_t len = lens[v], i = 0;
    for (;;) {
      i = skip_ows(p, i, len);
      if (i >= len) break;
      if (p[i] == ',') { /* an empty element (RFC 9110 5.6.1) */
        i++;
        continue;
      }
      bool chunked = false, params = false;
      i = te_element(p, i, len, &chunked, &params);
      if (i == 0) return BD_TE_BAD;
      if (chunked && (chunked_seen || params)) return BD_TE_BAD; /* RFC 9112 7: once, no parameters */
      if (chunked_seen) return BD_TE_BAD;                        /* a coding after chunked */
      chunked_seen = chunked_seen || chunked;
      last_chunked = chunked;
      codings++;
    }
  }
  if (codings == 0 || !last_chunked) return BD_TE_BAD; /* RFC 9112 6.3 (4) */
  return codings > 1 ? BD_TE_UNSUPPORTED : BD_TE_OK;
}
