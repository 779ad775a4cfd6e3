/* http_grammar.h: the pieces of the HTTP/1.1 grammar that llhttp, even in
 * strict mode, does not check, as pure functions over byte ranges (no
 * allocation, no state; unit-tested and fuzzed on their own).
 *
 *   field names    RFC 9110 5.1: field-name = token (1*tchar)
 *   Host           RFC 9110 7.2: uri-host [ ":" port ] (RFC 3986 3.2.2/3.2.3)
 *   request target RFC 9112 3.2: origin-form or absolute-form (http/https)
 *   Transfer-Encoding RFC 9112 6.1, 7: a list of codings, chunked last, once
 */
#ifndef BD_HTTP_GRAMMAR_H
#define BD_HTTP_GRAMMAR_H

#include <stdbool.h>
#include <stddef.h>

/* tchar (RFC 9110 5.6.2): "!#$%&'*+-.^_`|~", DIGIT, ALPHA */
extern const unsigned char bd_http_tchar[256];

/* Every byte of p[0..n) is a tchar (true for n == 0: callers check emptiness). */
bool bd_http_is_token(const char *p, size_t n);

/* Host field value (already stripped of OWS): empty, or uri-host [":" port],
 * where uri-host is an IP-literal ("[" IPv6address / IPvFuture "]") or a
 * reg-name (unreserved / pct-encoded / sub-delims; an IPv4 address is one). */
bool bd_http_host_valid(const char *p, size_t n);

typedef enum {
  BD_TARGET_ORIGIN,   /* "/" path [ "?" query ] */
  BD_TARGET_ABSOLUTE, /* http(s)://authority path-abempty [ "?" query ] */
  BD_TARGET_BAD       /* anything else: asterisk, authority or relative form, a fragment */
} bd_target_form_t;

/* Classifies a request target. For an absolute-form target *path_off is the
 * offset of its path-abempty (which may be empty, i.e. start at '?' or the
 * end: the caller reads that as "/"); for origin-form it is 0. A fragment
 * ('#') is refused in either form. */
bd_target_form_t bd_http_target(const char *p, size_t n, size_t *path_off);

typedef enum {
  BD_TE_OK,          /* a well-formed list ending in chunked, chunked once */
  BD_TE_BAD,         /* malformed, chunked not last or twice: 400 */
  BD_TE_UNSUPPORTED  /* well-formed, chunked last, another coding before it: 501 */
} bd_te_t;

/* Checks the Transfer-Encoding values of one request, in order (several
 * field lines are one list, RFC 9110 5.3). */
bd_te_t bd_http_te_check(const char *const *vals, const size_t *lens, int n);

#endif
