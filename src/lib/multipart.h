/* multipart.h: push parser for multipart/form-data bodies (RFC 7578 over
 * RFC 2046), written for streaming uploads with backpressure.
 *
 * The caller pushes body bytes as they arrive, split anywhere (a boundary or
 * a CRLF may straddle chunks); part bodies come out through on_part_data as
 * slices of the caller's input, never copied, so memory is one fixed header
 * buffer (max_header_bytes) whatever the body size.
 *
 * Backpressure: any callback may return BD_MP_CB_PAUSE. bd_mp_feed then
 * returns at once with *status = BD_MP_PAUSED and the number of bytes it
 * consumed; everything up to that point, including the bytes handed to the
 * pausing callback, is consumed. The caller stops reading the socket, keeps
 * the unconsumed tail (p + consumed .. p + n) and re-feeds it later, e.g.
 *
 *   size_t used = bd_mp_feed(mp, p, n, &st);
 *   if (st == BD_MP_PAUSED) { keep p+used..n; uv_read_stop(); }
 *
 * and on_part_data typically does
 *
 *   if (bd_roster_feed(roster, p, n)) return BD_MP_CB_ABORT;
 *   return bd_roster_pending(roster) > HIGH_WATER ? BD_MP_CB_PAUSE : BD_MP_CB_OK;
 *
 * Decisions:
 * - The delimiter inside the body must be CRLF "--" boundary (RFC 2046); the
 *   first boundary may also start the body. A complete delimiter always
 *   ends the part (as busboy and RFC 2046 read it); what follows must be
 *   "--" (the close), transport padding (spaces, tabs) and a line end, else
 *   the body is refused (BD_MP_ESYNTAX) rather than read as data, so two
 *   parsers in front of each other never split a body differently.
 * - Part header lines may end in LF alone (tolerated, some scripts send
 *   it); folded (obs-fold) header lines are rejected. The boundary line may
 *   carry trailing spaces/tabs (transport padding) and end in CRLF or LF.
 * - Each part needs `Content-Disposition: form-data; name=...`; the name
 *   and filename parameters may be tokens or quoted-strings with backslash
 *   escapes (\" and \\). `filename*` (RFC 8187 ext-value, UTF-8 or
 *   ISO-8859-1, percent-decoded) makes the part a file too and wins over
 *   `filename`, as in busboy; a value that is not an ext-value is kept as
 *   sent. Content-Transfer-Encoding and other headers are ignored.
 * - The preamble and the epilogue are ignored.
 *
 * Thread: any thread; one parser per upload, not shared.
 */
#ifndef BD_MULTIPART_H
#define BD_MULTIPART_H

#include "common.h"

/* Status (bd_mp_feed's *status, bd_mp_finish's result). Errors are
 * negative and sticky. */
enum {
  BD_MP_OK = 0,                /* consumed everything, want more */
  BD_MP_PAUSED = 1,            /* a callback paused; re-feed the tail */
  BD_MP_DONE = 2,              /* closing boundary seen; the rest is epilogue */
  BD_MP_ENOT_MULTIPART = -1,   /* Content-Type is not multipart/form-data */
  BD_MP_ENO_BOUNDARY = -2,     /* no boundary parameter */
  BD_MP_EBAD_BOUNDARY = -3,    /* empty, over 70 bytes, or control characters */
  BD_MP_EHEADER_TOO_BIG = -4,  /* a part's header block over max_header_bytes */
  BD_MP_ETOO_MANY_PARTS = -5,  /* more than max_parts parts */
  BD_MP_EBAD_HEADER = -6,      /* malformed part header / no form-data name */
  BD_MP_ESYNTAX = -7,          /* garbage after a boundary */
  BD_MP_ETRUNCATED = -8,       /* body ended before the closing boundary */
  BD_MP_ECALLBACK = -9,        /* a callback returned BD_MP_CB_ABORT */
};
/* Mapping hint for the server: ENOT_MULTIPART/ENO_BOUNDARY/EBAD_BOUNDARY
 * are 415/400-class request errors; the rest of the parse errors mean a
 * malformed upload: 422 with e.g. "The csv file upload is incomplete or
 * malformed." (not "The csv file field is required.", which is for a
 * well-formed body without a csv_file part). ECALLBACK is whatever the
 * callback recorded. */

/* Callback results. */
enum {
  BD_MP_CB_OK = 0,    /* continue */
  BD_MP_CB_PAUSE = 1, /* stop bd_mp_feed after this callback, resumable */
  BD_MP_CB_ABORT = -1 /* stop for good: status BD_MP_ECALLBACK */
};

/* One part's headers. All strings borrow the parser's header buffer and
 * are valid only during on_part_begin: copy what you keep. */
typedef struct {
  bd_str_t name;         /* form field name (unescaped), may be empty */
  bd_str_t filename;     /* filename (unescaped); p == NULL when absent */
  bd_str_t content_type; /* Content-Type value as sent; p == NULL when absent */
} bd_mp_part_t;

typedef struct {
  /* Headers of a new part are complete. */
  int (*on_part_begin)(void *ud, const bd_mp_part_t *part);
  /* n > 0 body bytes of the current part; p borrows the fed buffer (or the
   * parser's own copy of the boundary prefix) for the call only. One part's
   * data may arrive in any number of calls. */
  int (*on_part_data)(void *ud, const char *p, size_t n);
  /* The current part's body is complete (its delimiter was seen). */
  int (*on_part_end)(void *ud);
  /* The closing delimiter was seen; later input is epilogue. */
  int (*on_done)(void *ud);
} bd_mp_callbacks_t; /* any member may be NULL: treated as returning OK */

typedef struct {
  size_t max_header_bytes; /* one part's header block (default 16 KiB) */
  size_t max_parts;        /* parts per body (default 1,000) */
} bd_mp_limits_t;

typedef struct bd_mp bd_mp_t;

void bd_mp_limits_default(bd_mp_limits_t *l);

/* Creates a parser from the request's Content-Type value, e.g.
 * `multipart/form-data; boundary="abc"`. limits NULL = defaults. Returns
 * BD_MP_OK and *out, or a negative status (then *out is NULL). The
 * callbacks struct is copied; ud is passed to every callback. */
int bd_mp_new(bd_str_t content_type, const bd_mp_limits_t *limits, const bd_mp_callbacks_t *cb, void *ud,
              bd_mp_t **out) BD_MUSTCHECK;

/* Parses up to n bytes and returns how many were consumed. *status is
 * BD_MP_OK (all consumed), BD_MP_PAUSED (a callback paused: consumed may be
 * < n, re-feed the rest), BD_MP_DONE (closing boundary seen, all consumed)
 * or a negative error (sticky; later feeds consume nothing). Callbacks run
 * inside this call; they must not call bd_mp_feed or bd_mp_free. */
size_t bd_mp_feed(bd_mp_t *mp, const char *p, size_t n, int *status);

/* End of body: BD_MP_OK when the closing boundary was seen, else
 * BD_MP_ETRUNCATED (or the sticky error). Calls no callbacks. */
int bd_mp_finish(bd_mp_t *mp) BD_MUSTCHECK;

/* Parts begun so far. */
size_t bd_mp_parts(const bd_mp_t *mp);

/* Short English description of a status, for logs. */
const char *bd_mp_strerror(int status);

void bd_mp_free(bd_mp_t *mp); /* NULL is fine */

/* Laravel-style field names: "name" -> base "name"; "signatories[0]" ->
 * index 0; "signatories[1][user_uuid]" -> base, index 1, key "user_uuid";
 * "meta[key]" -> key without index. Indexes are decimal, no sign, no
 * leading zero, at most 9 digits; a non-numeric first bracket ("a[-1]",
 * "a[x]") is a key, for the caller to reject where it wants an index.
 * Returns false for anything else ("a[]", "a[0][b][c]", "a[0", "[0]",
 * "a[01]", "a[x][y]"). Strings borrow `name`. */
typedef struct {
  bd_str_t base;  /* text before the first '[' */
  bool has_index; /* a numeric first bracket was present */
  uint32_t index; /* its value */
  bd_str_t key;   /* the non-numeric bracket's content; len 0 when absent */
} bd_mp_field_name_t;

bool bd_mp_parse_field_name(bd_str_t name, bd_mp_field_name_t *out) BD_MUSTCHECK;

#endif
