/* jcs.h: the JSON Canonicalization Scheme (JCS, RFC 8785), the canonical
 * bytes that eddsa-jcs-2022 proofs sign.
 *
 * The canonical form of a JSON value is its ECMAScript JSON.stringify()
 * with object members sorted:
 *   - no whitespace; literals true, false, null;
 *   - object members sorted by their names as arrays of UTF-16 code units
 *     (not UTF-8 bytes: a name with a character above U+FFFF, a surrogate
 *     pair, sorts before one with U+E000..U+FFFF), recursively; array
 *     order is kept;
 *   - strings escape only '"', '\\', \b \f \n \r \t and, as \u00xx with
 *     lowercase hex, the other characters below U+0020; everything else
 *     (U+007F, '/', all non-ASCII) is written as literal UTF-8;
 *   - numbers are IEEE-754 doubles written as ECMAScript's
 *     Number.prototype.toString() writes them: the shortest digits that
 *     read back as the same double (the closest to it when several are as
 *     short), without an exponent from 1e-6 up to 1e21 ("0.000001",
 *     "295147905179352830000"), otherwise as "1e+21", "1e-7",
 *     "1.7976931348623157e+308"; -0 is written "0".
 *
 * Numbers. JCS has only doubles, so:
 *   - a jansson real is written as above; jansson cannot hold NaN or an
 *     infinity, but one would be refused ("not finite");
 *   - a jansson integer is converted to a double and must convert exactly:
 *     |i| <= 2^53 always does, a larger one only when it is a double (2^60
 *     does, 2^53 + 1 does not). An inexact one is refused rather than
 *     silently rounded, so the canonical bytes never sign a value other
 *     than the one the caller built. An exact large one is written the
 *     ECMAScript way: 2^60 = 1152921504606846976 becomes
 *     "1152921504606847000", which every double reader reads back as 2^60;
 *   - bd_jcs_canonicalize_text reads numbers the way ECMAScript's
 *     JSON.parse does (jansson with JSON_DECODE_INT_AS_REAL: every number,
 *     integer or not, becomes the nearest double), so there
 *     "9007199254740993" canonicalises as 9007199254740992, as a
 *     JavaScript verifier would compute it. A magnitude beyond the double
 *     range ("1e400") is a parse error (jansson: real number overflow); an
 *     underflow reads as 0, as in ECMAScript.
 *
 * Strings and names must be well-formed UTF-8 (RFC 3629: no overlong
 * forms, no surrogate code points, nothing above U+10FFFF); jansson checks
 * this for parsed text and json_string(), but json_stringn_nocheck() and
 * the *_nocheck object setters can hold anything, and JCS cannot represent
 * a lone surrogate: such a value is refused. U+0000 inside a string (a
 * json_stringn with an embedded NUL, or "\u0000" in text) is valid and
 * written "\u0000".
 *
 * Errors: -1 with a one-line English message in err (NUL-terminated,
 * truncated to errsz; err may be NULL when errsz is 0), and out left as it
 * was before the call. More than BD_JCS_MAX_DEPTH nested arrays and
 * objects are refused (which also stops a json_t that contains itself).
 *
 * Thread-safety: any thread; the module has no state. The number
 * formatting relies on snprintf and strtod, with strings built so that
 * the locale's decimal point is never involved.
 */
#ifndef BD_JCS_H
#define BD_JCS_H

#include "buf.h"

#include <jansson.h>

#define BD_JCS_MAX_DEPTH 1024

/* Appends the canonical UTF-8 bytes of v to out. 0, or -1 and err. */
int bd_jcs_canonicalize(const json_t *v, bd_buf_t *out, char *err, size_t errsz) BD_MUSTCHECK;

/* Parses len bytes of JSON text (any value at the top, not only an object
 * or array; duplicate member names are an error, as JCS requires unique
 * names; "\u0000" in strings is allowed) and appends its canonical form. */
int bd_jcs_canonicalize_text(const char *json, size_t len, bd_buf_t *out, char *err,
                             size_t errsz) BD_MUSTCHECK;

/* Appends d as ECMAScript's Number.prototype.toString(d) writes it (the
 * JCS number form). 0, or -1 (appending nothing) for NaN and infinities. */
int bd_jcs_number(double d, bd_buf_t *out) BD_MUSTCHECK;

#endif
