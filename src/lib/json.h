/* json.h: a streaming JSON writer into a bd_buf_t.
 *
 * Parsing uses jansson; writing responses uses this writer because most
 * bodies are assembled from database rows and would otherwise be built as a
 * jansson tree only to be serialised at once.
 *
 * The writer inserts commas and colons itself: callers emit a key then a
 * value inside objects, values alone inside arrays. Strings are escaped
 * (quotes, backslash, control characters, U+2028/U+2029, and "</" as "<\/"
 * so JSON is safe inside HTML); invalid UTF-8 is replaced with U+FFFD.
 * Any thread; a writer is not shared.
 */
#ifndef BD_JSON_H
#define BD_JSON_H

#include "buf.h"

#define BD_JW_MAX_DEPTH 64

typedef struct {
  bd_buf_t *out;                   /* destination (not owned) */
  uint32_t depth;                  /* current nesting */
  uint8_t count[BD_JW_MAX_DEPTH];  /* values written at each level (saturating at 1) */
  bool after_key;                  /* a key was written and awaits its value */
} bd_jw_t;

void bd_jw_init(bd_jw_t *w, bd_buf_t *out);
void bd_jw_obj(bd_jw_t *w);
void bd_jw_obj_end(bd_jw_t *w);
void bd_jw_arr(bd_jw_t *w);
void bd_jw_arr_end(bd_jw_t *w);
void bd_jw_key(bd_jw_t *w, const char *k);
void bd_jw_keyn(bd_jw_t *w, const char *k, size_t n);
void bd_jw_str(bd_jw_t *w, const char *s);            /* NULL writes null */
void bd_jw_strn(bd_jw_t *w, const char *s, size_t n);
void bd_jw_int(bd_jw_t *w, int64_t v);
void bd_jw_uint(bd_jw_t *w, uint64_t v);
void bd_jw_double(bd_jw_t *w, double v);  /* shortest text that round-trips; NaN/Inf → null */
void bd_jw_bool(bd_jw_t *w, bool v);
void bd_jw_null(bd_jw_t *w);
/* A value that is already JSON text (e.g. a jsonb column); NULL writes null. */
void bd_jw_raw(bd_jw_t *w, const char *json);
void bd_jw_rawn(bd_jw_t *w, const char *json, size_t n);

/* key + value shorthands */
void bd_jw_kstr(bd_jw_t *w, const char *k, const char *v);
void bd_jw_kint(bd_jw_t *w, const char *k, int64_t v);
void bd_jw_kdouble(bd_jw_t *w, const char *k, double v);
void bd_jw_kbool(bd_jw_t *w, const char *k, bool v);
void bd_jw_knull(bd_jw_t *w, const char *k);
void bd_jw_kraw(bd_jw_t *w, const char *k, const char *json);

/* Appends s as a quoted, escaped JSON string. */
void bd_json_escape(bd_buf_t *out, const char *s, size_t n);

/* Maximum nesting depth of a JSON text, computed without building a tree
 * (strings are skipped correctly). Used to reject over-deep bodies before
 * jansson parses them. Returns -1 if brackets are unbalanced in a way that
 * makes the depth meaningless (the parser will report the real error). */
int bd_json_depth(const char *s, size_t n);

#endif
