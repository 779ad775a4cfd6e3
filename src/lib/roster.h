/* roster.h: streaming validator for certificate rosters (CSV, RFC 4180 as
 * Python's csv module reads it).
 *
 * A roster is pushed in as it arrives (bd_roster_feed with chunks split
 * anywhere: inside a UTF-8 sequence, inside CRLF, inside a quoted field) and
 * comes out as PostgreSQL COPY text, one line per data row, appended to a
 * bd_buf_t the caller owns and drains into COPY. Memory stays flat: the
 * roster holds one row (bounded by max_row_bytes; a cell past the header is
 * held only until its emptiness is known, bounded by max_field) and the
 * header names.
 *
 * COPY target (BD_ROSTER_COPY_COLUMNS), text format, tab-delimited:
 *
 *   row_no      bigint  1-based data-row ordinal: the first row after the
 *                       header is 1; blank rows are skipped and not counted.
 *                       Spreadsheet row = row_no + 1 when the file has no
 *                       blank lines or multi-line cells.
 *   email       text    RecipientsEmail, ASCII whitespace trimmed (the one
 *                       value trimmed: it is validated and mailed); may be ''
 *   name        text    RecipientsName exactly as written; may be ''
 *   issue_date  date    YYYY-MM-DD: the IssueDate cell, or `today` when the
 *                       column is absent or the cell is blank; \N when the
 *                       cell is not a valid DD-MM-YYYY date (spaces around
 *                       the date are not part of it)
 *   custom_data json    {"Column":"value",...}: every non-reserved column
 *                       exactly as written, in
 *                       header order (a short row gives ""); {} if none
 *   status      text    'pending' or 'failed'
 *   error       text    \N, or the row's reasons joined by "; ":
 *                       "Row has more columns than the header",
 *                       "Invalid email address", "Recipient name is required",
 *                       "Invalid IssueDate, expected DD-MM-YYYY"
 *
 * Decisions (see also bd_roster_code_t):
 * - Headers: surrounding ASCII whitespace is trimmed; RecipientsEmail,
 *   RecipientsName and IssueDate match ASCII case-insensitively; custom
 *   column names are kept as written (trimmed) and compared exactly for
 *   duplicates. An empty header name is structural.
 * - Fields are read as Python's csv module reads them (excel dialect,
 *   strict off; see roster.c): every byte is data, spaces around a field
 *   included; a quote inside an unquoted field is data; after a closing
 *   quote, text up to the next delimiter continues the field ("a"b is ab).
 *   The one structural quoting error is end of input inside quotes
 *   (BD_ROSTER_EQUOTE): Python would keep the rest of the file as one cell.
 * - A row whose every field is blank (a blank line, ",,,", ASCII white
 *   space only) is skipped, before and after the header: it names nobody.
 * - More fields than the header: a row-level failure if any extra field is
 *   not blank; blank trailing fields (a trailing comma) are ignored. Fewer
 *   fields than the header: the missing cells are empty.
 * - Limits apply to header cells too. The verdict (code and message) and
 *   the output never depend on how the input was chunked.
 * - Text must be UTF-8 without NUL bytes (PostgreSQL text and jsonb cannot
 *   hold NUL): anything else is structural.
 * - E-mail check is pragmatic: one '@', local part 1-64 bytes of
 *   atext/dots (no leading, trailing or double dot), a domain of >= 2
 *   labels of letters/digits/hyphens/non-ASCII, a non-numeric TLD of >= 2
 *   characters, at most 254 bytes in all.
 * - IssueDate: D-M-YYYY with 1-2 digit day and month, year 1000-9999, a real
 *   calendar date (leap years included).
 *
 * Ownership: the roster borrows `out` for its whole life and only appends
 * to it; the caller drains it (bd_buf_consume / bd_buf_reset) whenever it
 * likes, typically after each feed, and stops feeding (backpressure) while
 * out->len is above its own high-water mark. One feed of n bytes appends
 * at most about 7 * n + (rows in it) * (escaped custom header names) bytes,
 * so feed chunks of at most 64 KiB.
 *
 * Thread: any thread; one roster per upload, not shared.
 */
#ifndef BD_ROSTER_H
#define BD_ROSTER_H

#include "buf.h"
#include "common.h"

/* Column list for: COPY t (BD_ROSTER_COPY_COLUMNS) FROM STDIN */
#define BD_ROSTER_COPY_COLUMNS "row_no, email, name, issue_date, custom_data, status, error"

typedef enum {
  BD_ROSTER_OK = 0,
  BD_ROSTER_EEMPTY,            /* no header row at all */
  BD_ROSTER_EMISSING_HEADER,   /* RecipientsEmail and/or RecipientsName absent */
  BD_ROSTER_EDUP_HEADER,       /* a header name appears twice */
  BD_ROSTER_EEMPTY_HEADER,     /* a header cell is empty */
  BD_ROSTER_ETOO_MANY_COLUMNS, /* header wider than max_columns */
  BD_ROSTER_EQUOTE,            /* a quoted field still open at end of input */
  BD_ROSTER_EUTF8,             /* not UTF-8, or a NUL byte */
  BD_ROSTER_EFIELD_TOO_BIG,    /* one field over max_field bytes */
  BD_ROSTER_EROW_TOO_BIG,      /* one row over max_row_bytes */
  BD_ROSTER_ETOO_MANY_ROWS,    /* more than max_rows data rows */
  BD_ROSTER_ENO_ROWS,          /* a header but no data rows */
} bd_roster_code_t;
/* Every non-OK code is structural: reject the upload with 422, field
 * "csv_file", message bd_roster_message(); persist nothing. */

typedef struct {
  uint64_t max_rows;    /* data rows allowed (default 1,000,000; contract) */
  size_t max_field;     /* bytes in one field (default 65,536; contract) */
  size_t max_columns;   /* header columns (default 256) */
  size_t max_row_bytes; /* bytes of one row's fields together (default 1 MiB) */
  const char *today;    /* "YYYY-MM-DD": IssueDate default; the caller's
                           clock, so tests are deterministic. Required. */
} bd_roster_opts_t;

typedef struct bd_roster bd_roster_t;

/* Fills the defaults above; today stays NULL. */
void bd_roster_opts_default(bd_roster_opts_t *o);

/* Returns NULL only when opts is invalid (today missing or not a valid
 * YYYY-MM-DD date, a zero limit). `out` is borrowed until bd_roster_free. */
bd_roster_t *bd_roster_new(const bd_roster_opts_t *opts, bd_buf_t *out) BD_MUSTCHECK;

/* Consumes all n bytes and returns BD_ROSTER_OK or the first structural
 * error. Errors are sticky: later feeds and finish return the same code and
 * append nothing. Rows complete before the error may already be in `out`;
 * the caller aborts the COPY, so they never commit. */
int bd_roster_feed(bd_roster_t *r, const char *p, size_t n) BD_MUSTCHECK;

/* End of input: flushes the last row (no trailing newline needed) and
 * reports what only the end can tell: unterminated quote (EQUOTE), empty
 * file (EEMPTY), header only (ENO_ROWS). Call once. */
int bd_roster_finish(bd_roster_t *r) BD_MUSTCHECK;

/* Human message for the current error ("" when OK), valid until free. It is
 * UTF-8 and meant for the 422 body, e.g. "The csv file is missing the
 * required header RecipientsEmail." */
const char *bd_roster_message(const bd_roster_t *r);
/* Stable snake_case name of a code, for logs and metrics. */
const char *bd_roster_code_name(int code);

uint64_t bd_roster_rows(const bd_roster_t *r);   /* data rows emitted */
uint64_t bd_roster_failed(const bd_roster_t *r); /* of which status failed */
/* Bytes waiting in `out`: the caller's backpressure signal. */
size_t bd_roster_pending(const bd_roster_t *r);

/* Header facts, valid once the header row was parsed (rows > 0 or finish
 * returned OK): whether IssueDate is present, and the custom columns in
 * header order (borrowed, trimmed, not NUL-terminated). */
bool bd_roster_has_issue_date(const bd_roster_t *r);
size_t bd_roster_custom_count(const bd_roster_t *r);
bd_str_t bd_roster_custom_name(const bd_roster_t *r, size_t i);

/* Frees the roster (not `out`). NULL is fine. */
void bd_roster_free(bd_roster_t *r);

#endif
