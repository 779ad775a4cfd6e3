/* gs1.h: GS1 identifiers for product passports: GTIN check digits and
 * normalisation, the values of AI 10 (batch/lot) and AI 21 (serial),
 * random serial generation, and GS1 Digital Link URIs (formatting for the
 * minted units, path parsing for the resolver).
 *
 * References: GS1 General Specifications (section 7.9 check digit,
 * figure 7.11-1 character set 82, section 7.12 dates) and the GS1 Digital
 * Link standard: URI syntax 1.2 (the ABNF's gtin-path, XCHAR, data
 * attributes).
 *
 * Thread-safety: any thread; the module has no shared state. Serial
 * generation draws from libsodium, which the caller must have initialised
 * with sodium_init().
 *
 * Ownership: every function writes into caller storage (fixed arrays or a
 * bd_buf_t the caller owns) and keeps no pointer to its arguments.
 *
 * Errors are small negative codes (bd_gs1_err_t); bd_gs1_strerror() gives a
 * fixed English message for each, suitable for the "details" of a 400.
 */
#ifndef BD_GS1_H
#define BD_GS1_H

#include "buf.h"

typedef enum {
  BD_GS1_OK = 0,
  /* GTIN */
  BD_GS1_E_GTIN_DIGITS = -1,      /* a character other than 0-9 */
  BD_GS1_E_GTIN_LENGTH = -2,      /* not 8, 12, 13 or 14 digits */
  BD_GS1_E_GTIN_CHECK = -3,       /* the last digit is not the mod-10 check digit */
  /* AI 10 / AI 21 values */
  BD_GS1_E_VALUE_EMPTY = -4,      /* zero characters (both AIs need 1..20) */
  BD_GS1_E_VALUE_LENGTH = -5,     /* more than 20 characters */
  BD_GS1_E_VALUE_CHARSET = -6,    /* a character outside GS1 character set 82 */
  /* Digital Link path and query */
  BD_GS1_E_DL_PRIMARY = -7,       /* the path does not start with "/01/" */
  BD_GS1_E_DL_SEGMENT = -8,       /* an empty path segment ("//" or a trailing '/') */
  BD_GS1_E_DL_AI = -9,            /* an AI other than 10 or 21 after the GTIN */
  BD_GS1_E_DL_ORDER = -10,        /* 10 after 21, or an AI repeated */
  BD_GS1_E_DL_NO_VALUE = -11,     /* an AI as the last segment, without a value */
  BD_GS1_E_DL_ESCAPE = -12,       /* a malformed percent escape ("%4", "%zz") */
  BD_GS1_E_DL_DATE = -13,         /* ?17= or ?11= not a valid YYMMDD date */
  /* Compressed Digital Link (bd_gs1_dl_decompress) */
  BD_GS1_E_DLC_SYNTAX = -14,      /* not a well-formed compressed Digital Link */
  BD_GS1_E_DLC_AI = -15,          /* an AI this decoder has no format for */
  BD_GS1_E_DLC_PRIMARY = -16,     /* decompressed, but its primary key is not AI 01 */
} bd_gs1_err_t;

/* A fixed message for a code ("GTIN check digit is wrong"); "unknown error"
 * for anything else. Never NULL. */
const char *bd_gs1_strerror(int err);

/* ---- GTIN ---------------------------------------------------------------- */

#define BD_GS1_GTIN14_LEN 14

/* The GS1 mod-10 check digit of `n` digits (the GTIN without its check
 * digit: 7, 11, 12 or 13 of them, or any other count; GS1 applies the same
 * rule to every key). Weights alternate 3, 1, 3, ... starting from the
 * rightmost digit given. Returns '0'..'9', or 0 when a character is not a
 * digit. */
char bd_gs1_check_digit(const char *digits, size_t n);

/* Validates a GTIN-8, -12, -13 or -14 and writes it as GTIN-14 (left-padded
 * with zeros) plus NUL into out. Checks, in order: digits only, length,
 * check digit; returns the first failure (out is then ""). */
int bd_gs1_gtin_normalise(const char *s, size_t n, char out[BD_GS1_GTIN14_LEN + 1]) BD_MUSTCHECK;

/* ---- AI 10 (batch/lot) and AI 21 (serial) values ------------------------- */

#define BD_GS1_VALUE_MAX 20 /* both AIs: X..20 (and AI 22) */
#define BD_GS1_TPX_MAX 28   /* AI 235 (third-party controlled serial): X..28 */

/* Whether c belongs to GS1 AI encodable character set 82:
 * ! " % & ' ( ) * + , - . / 0-9 : ; < = > ? A-Z _ a-z */
bool bd_gs1_cset82(unsigned char c);

/* Validates an AI 10 or AI 21 value: 1..20 characters of set 82. Returns
 * BD_GS1_OK, BD_GS1_E_VALUE_EMPTY, _LENGTH or _CHARSET. */
int bd_gs1_value_check(const char *s, size_t n) BD_MUSTCHECK;

/* ---- Serial generation --------------------------------------------------- */

/* The alphabet of generated serials: Crockford's base 32 (digits and upper
 * case letters without I, L, O, U). It is a subset of set 82 made only of
 * URI-unreserved characters, so a serial needs no percent-encoding in a
 * Digital Link and reads back unambiguously from a printed label (no 0/O,
 * 1/I/L confusion). 32 symbols = exactly 5 random bits per character: no
 * modulo bias and no rejection loop. */
#define BD_GS1_SERIAL_ALPHABET "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

/* 12 characters = 60 random bits. Birthday bound for n serials of one GTIN:
 * P(any collision) ~ n^2 / 2^61: 4.3e-7 for one 1,000,000-unit job, 4.3e-3
 * after 10^8 units of the same GTIN. The server still enforces uniqueness
 * (a unique index on gtin + serial) and redraws on conflict; this length
 * only makes a redraw rare. */
#define BD_GS1_SERIAL_LEN_DEFAULT 12

/* Fills `count` serials of `len` characters (1..20; other values are
 * clamped into that range) into out, each followed by a NUL: serial i
 * starts at out + i * (len + 1), and out must hold count * (len + 1) bytes.
 * Draws from a ChaCha20 stream keyed with 32 bytes of randombytes_buf
 * (a single getrandom per call rather than one per 256 bytes), so
 * 1,000,000 serials of 12 characters take ~17 ms (-O2, one core). */
void bd_gs1_serials_generate(char *out, size_t count, size_t len);

/* ---- GS1 Digital Link ---------------------------------------------------- */

/* A parsed Digital Link: the path "/01/{gtin}[/22/{cpv}][/10/{lot}][/21/{serial}
 * | /235/{tpx}]" and the data attributes of its query that this server
 * checks.
 *
 * Path policy:
 *   - it must start with "/01/"; the GTIN may have 8, 12, 13 or 14 digits
 *     (GS1 DL allows all four) and is normalised to 14, check digit verified;
 *   - the key qualifiers of a GTIN, in GS1 order: 22 (consumer product
 *     variant), 10 (lot), then 21 (serial) or 235 (third-party serial), each
 *     optional and at most once. Any other AI in the path is a 400 naming
 *     it (the resolver serves GTINs only). The resolver stores lots and
 *     serials only; 22 and 235 are parsed and validated so that a valid URI
 *     carrying them is answered from the nearest known level up the tree;
 *   - no empty segments ("//"); one trailing '/' after the last value is
 *     tolerated (GS1 Digital Link: resolvers SHOULD ignore it);
 *   - values are percent-decoded (upper or lower case hex) and then must be
 *     1..20 (235: 1..28) characters of set 82. Raw characters of set 82 are
 *     accepted as they come (a scanner does not re-encode "(" or "!"); a
 *     GTIN given as "%30..." decodes to digits like any other value.
 *
 * Query policy: only 17 (expiry) and 11 (production date) are checked;
 * they must be YYMMDD with a real month and day (DD = 00 means "end of
 * month", allowed by the General Specifications; Feb 29 when YY % 4 == 0,
 * exact for 2000-2099). Their values are kept as given. All other
 * parameters (linkType, context, other AIs, a client's own) are not looked
 * at here: the resolver passes the query on as it came. When a key repeats,
 * the first occurrence wins, as in bd_query_get(). */
typedef struct {
  char gtin[BD_GS1_GTIN14_LEN + 1];   /* GTIN-14, NUL-terminated */
  char lot[BD_GS1_VALUE_MAX + 1];     /* AI 10, decoded; "" when absent */
  char serial[BD_GS1_VALUE_MAX + 1];  /* AI 21, decoded; "" when absent */
  char cpv[BD_GS1_VALUE_MAX + 1];     /* AI 22, decoded; "" when absent */
  char tpx[BD_GS1_TPX_MAX + 1];       /* AI 235, decoded; "" when absent */
  char expiry[7];                     /* ?17= YYMMDD; "" when absent */
  char prod_date[7];                  /* ?11= YYMMDD; "" when absent */
  bool has_lot;                       /* the path had /10/ */
  bool has_serial;                    /* the path had /21/ */
  bool has_cpv;                       /* the path had /22/ */
  bool has_tpx;                       /* the path had /235/ */
  int err_ai;                         /* on failure, the AI whose part was bad (1, 10, 21, 22, 235, 17, 11); 0 if none */
  char errmsg[128];                   /* on failure, a message naming the part, e.g.
                                         "AI 21 (serial): character not in GS1 character set 82" */
} bd_gs1_dl_t;

/* Parses a resolver request: path is the raw (still percent-encoded) path,
 * query the raw query string without '?' (may be empty). Returns BD_GS1_OK
 * and fills *out, or a negative code with out->err_ai and out->errmsg set
 * (the other fields are then unspecified). */
int bd_gs1_dl_parse(bd_str_t path, bd_str_t query, bd_gs1_dl_t *out) BD_MUSTCHECK;

/* Whether c is percent-encoded in a Digital Link value. Of set 82 these are
 * the characters that are not RFC 3986 unreserved: ! " % & ' ( ) * + , / : ;
 * < = > ? (17 of them; '-', '.', '_', digits and letters stay as they are),
 * as in the GS1 DL ABNF (which writes them as percent-encodings). Anything
 * outside set 82 is encoded too, though valid values never contain it. */
bool bd_gs1_dl_needs_escape(unsigned char c);

/* Appends base + "/01/" + GTIN-14 [+ "/10/" + lot] [+ "/21/" + serial] to
 * out, percent-encoding lot and serial as above (upper case hex). base is
 * the resolver's origin, e.g. "https://id.example.com"; one trailing '/' on
 * it is dropped. gtin may have 8, 12, 13 or 14 digits; lot and serial may
 * be NULL or "" for "absent". All three are validated first: on an error
 * nothing is appended. */
int bd_gs1_dl_format(bd_buf_t *out, const char *base, const char *gtin, const char *lot,
                     const char *serial) BD_MUSTCHECK;

/* Decompresses a compressed GS1 Digital Link path segment (GS1 Digital
 * Link standard, compression: the URI-safe base 64 string of a bit string
 * of AI elements, optimisation codes for common AI sequences and non-GS1
 * key=value pairs). seg is the segment without '/', n its length. On
 * success appends the uncompressed path ("/01/{gtin}[/22/..][/10/..]
 * [/21/..|/235/..]", values percent-encoded as bd_gs1_dl_format does) to
 * path and the data attributes and other pairs ("17=261231&foo=bar", in
 * their order in the bit string, percent-encoded) to query, and returns
 * BD_GS1_OK. Errors: BD_GS1_E_DLC_SYNTAX (not base 64, truncated, bad
 * digits, a value longer than its AI allows), BD_GS1_E_DLC_AI (an AI whose
 * format this decoder does not know), BD_GS1_E_DLC_PRIMARY (valid, but not
 * a GTIN). Nothing is appended on error. Bounded: a segment longer than
 * BD_GS1_DLC_MAX characters is BD_GS1_E_DLC_SYNTAX. */
#define BD_GS1_DLC_MAX 512
int bd_gs1_dl_decompress(const char *seg, size_t n, bd_buf_t *path, bd_buf_t *query) BD_MUSTCHECK;

#endif
