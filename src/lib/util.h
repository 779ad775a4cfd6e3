/* util.h: identifiers, time formatting, encodings and query strings.
 * Any thread; no shared state (randomness comes from libsodium, which must
 * have been initialised with sodium_init()). */
#ifndef BD_UTIL_H
#define BD_UTIL_H

#include "buf.h"

/* n random base62 characters [0-9A-Za-z] into out, NUL-terminated (out has n+1). */
void bd_rand_base62(char *out, size_t n);
/* Random UUID v4 and time-ordered UUID v7, lower-case canonical form (37 bytes with NUL). */
void bd_uuid_v4(char out[37]);
void bd_uuid_v7(char out[37]);
bool bd_uuid_valid(bd_str_t s); /* canonical 8-4-4-4-12 hex, any case */

/* UTC timestamps. micro=true: "2025-03-14T13:04:03.000000Z"; false: "2025-03-14T13:04:03Z".
 * out is "" for an instant gmtime_r cannot represent. */
void bd_time_fmt(char out[32], int64_t unix_us, bool micro);
/* Parses PostgreSQL timestamptz text output in UTC ("2025-03-14 13:04:03.123456+00",
 * fractional part optional) and RFC 3339 ("2025-03-14T13:04:03Z", "+02:00" offsets).
 * Returns false on anything else. */
bool bd_time_parse(const char *s, int64_t *unix_us);
/* Re-formats a PostgreSQL timestamptz text value; NULL input gives NULL output. */
const char *bd_time_pg_to_iso(const char *pg, char out[32], bool micro);

/* Strict integer parsing: optional '-', digits only, no overflow. */
bool bd_parse_i64(bd_str_t s, int64_t *out);

/* Percent-decoding. form=true also maps '+' to space (query strings).
 * Returns false on a malformed escape, leaving out unchanged. Output is
 * appended and NUL-terminated. */
bool bd_url_decode(bd_buf_t *out, const char *s, size_t n, bool form);
/* Percent-encodes everything but unreserved characters (RFC 3986). */
void bd_url_encode(bd_buf_t *out, const char *s, size_t n);

/* Escapes s for HTML text and quoted attribute values: & < > " and ' become
 * entities (&amp; &lt; &gt; &quot; &#39;), every other byte is copied as
 * it is (UTF-8 passes through). Appended to out; NULL s appends nothing. */
void bd_html_escape(bd_buf_t *out, const char *s);

/* Finds parameter `name` in a raw query string ("a=1&b=x%20y", without '?')
 * and appends its decoded value to out ('+' is a space). Returns true when
 * present (even if empty, as in "a" or "a="); out->data is then a valid
 * NUL-terminated string. The first occurrence wins; names match whole.
 * As in WHATWG form decoding, a malformed escape ("%zz") is kept as text
 * rather than hiding the parameter, so the caller's validation rejects it. */
bool bd_query_get(bd_str_t query, const char *name, bd_buf_t *out);

/* Base64 (standard, padded) and base64url (unpadded), and hex. Decoders
 * return false on invalid input. */
void bd_b64_encode(bd_buf_t *out, const void *p, size_t n);
bool bd_b64_decode(bd_buf_t *out, const char *s, size_t n);
void bd_b64url_encode(bd_buf_t *out, const void *p, size_t n);
bool bd_b64url_decode(bd_buf_t *out, const char *s, size_t n);
void bd_hex_encode(char *out, const void *p, size_t n); /* out has 2n+1 */

/* SHA-256 of p as 64 lower-case hex chars + NUL. */
void bd_sha256_hex(char out[65], const void *p, size_t n);

#endif
