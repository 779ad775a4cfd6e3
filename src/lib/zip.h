/* zip.h: a streaming ZIP writer for very many small entries (one SVG per
 * minted unit, up to 1,000,000 of them).
 *
 * Bytes go to a caller sink as soon as they exist: bd_zip_add() writes the
 * entry's local header and data at once, bd_zip_finish_some() writes the
 * central directory a slice at a time. Nothing is buffered in here but the
 * one entry being added (and, with DEFLATE, its compressed copy), so a
 * server can stream an archive of any size through a socket: its sink
 * appends to an output buffer, and it adds the next entry (or the next
 * directory slice) only when that buffer has drained.
 *
 * Format (PKWARE APPNOTE 6.3.x):
 *   - each entry's bytes are given whole, so CRC-32 (libdeflate's crc32) and
 *     sizes are known before its local header is written: no data
 *     descriptors, no bit 3;
 *   - method STORED, or DEFLATE (raw, level 1: SVG text shrinks ~4x even
 *     at the fastest level) with BD_ZIP_DEFLATE; an entry that does not
 *     shrink is stored;
 *   - general purpose bit 11 (names are UTF-8) on every entry; names are
 *     checked to be valid UTF-8;
 *   - one DOS timestamp for the whole archive, given by the caller, and no
 *     other varying field: the same entries give byte-identical archives;
 *   - ZIP64 as needed: a ZIP64 extra field on a central directory header
 *     whose local header starts at or beyond 0xFFFFFFFF, and the ZIP64 end
 *     of central directory record + locator when the archive has 0xFFFF or
 *     more entries or its directory starts or ends beyond 32 bits (then the
 *     classic end record holds 0xFFFF / 0xFFFFFFFF, as Go's archive/zip
 *     does). A single entry must be smaller than 4 GiB - 1 (so local
 *     headers never need ZIP64 fields); the archive may be any size.
 *
 * Memory: the central directory cannot be written before the end, but full
 * 46-byte headers plus names for 1,000,000 entries would be ~80 MB. The
 * writer keeps a compact index instead, appended in 256 KiB blocks:
 *   per entry: 1 flag byte, CRC-32 (4), compressed size (varint, 2-3 bytes
 *   for a few KB), uncompressed size only when deflated (varint), and the
 *   name front-coded against the previous one (varint shared-prefix length,
 *   varint suffix length, suffix bytes).
 * Offsets are not stored: local header i starts where entry i-1 ended
 * (30 + name + data bytes later), so they are recomputed in order while the
 * directory is written. For "{gtin14}_{serial12}.svg" names that is ~25
 * bytes per entry (the shared GTIN prefix costs nothing): ~25 MB for
 * 1,000,000 entries, against ~60 MB for a fixed record plus a name arena.
 * Blocks are freed as the directory is written. bd_zip_index_bytes()
 * reports the current size. (Recomputing names through a caller callback
 * would save the suffix bytes too, but would force the server to walk its
 * units a second time, in the same order, from the database; ~25 MB for
 * the largest job does not justify that.)
 *
 * Thread-safety: any thread; a bd_zip_t is used by one thread at a time and
 * the module has no shared state.
 *
 * Ownership: the writer copies what it keeps (the index); name and data
 * are only borrowed for the duration of bd_zip_add(). The sink's ud stays
 * the caller's.
 */
#ifndef BD_ZIP_H
#define BD_ZIP_H

#include "buf.h"

/* The sink takes every byte of the archive, in order. It must consume all
 * n bytes (copy them) before returning 0; any other return value is an
 * error that makes the writer fail for good (BD_ZIP_E_SINK). It is called
 * synchronously from bd_zip_add() and bd_zip_finish_some(). */
typedef int (*bd_zip_sink_fn)(void *ud, const void *p, size_t n);

/* A ready-made sink: appends to the bd_buf_t passed as ud. Never fails. */
int bd_zip_sink_buf(void *ud, const void *p, size_t n);

typedef struct bd_zip bd_zip_t;

enum {
  BD_ZIP_OK = 0,
  BD_ZIP_MORE = 1,          /* bd_zip_finish_some(): call again */
  BD_ZIP_E_SINK = -1,       /* the sink failed; the archive is broken (sticky) */
  BD_ZIP_E_NAME = -2,       /* the name is not acceptable; nothing was written */
  BD_ZIP_E_SIZE = -3,       /* the entry is 4 GiB - 1 or larger; nothing was written */
  BD_ZIP_E_STATE = -4,      /* add after finish started, or an internal inconsistency */
  BD_ZIP_E_DEFLATE = -5,    /* the compressor could not be set up (sticky) */
};

/* Flags for bd_zip_new(). */
#define BD_ZIP_DEFLATE 1u /* deflate entries (level 1) that shrink, store the rest */

/* A DOS date and time (local time, 2-second resolution, years 1980-2107)
 * packed as date << 16 | time, the form bd_zip_new() takes. Values out of
 * range are clamped; earlier years give 1980-01-01 00:00:00. */
uint32_t bd_zip_dos_datetime(int year, int month, int day, int hour, int min, int sec);

/* A writer that sends the archive to sink(ud, ...). dos_datetime is
 * stamped on every entry. flags: 0 or BD_ZIP_DEFLATE. Never NULL (OOM
 * aborts). Nothing is written yet: an archive starts with its first local
 * header, or with its end record when it is empty. */
bd_zip_t *bd_zip_new(bd_zip_sink_fn sink, void *ud, uint32_t dos_datetime, unsigned flags);

/* Adds one file: name (NUL-terminated UTF-8, 1..65535 bytes, a relative
 * path: no leading '/', no '\\', no empty, "." or ".." component, no
 * control characters, no trailing '/'; duplicates are not detected) with
 * len bytes of data. Writes its local header and data to the sink before
 * returning. BD_ZIP_E_NAME and BD_ZIP_E_SIZE leave the writer usable;
 * BD_ZIP_E_SINK and BD_ZIP_E_DEFLATE do not (every later call returns
 * the same error). */
int bd_zip_add(bd_zip_t *z, const char *name, const void *data, size_t len) BD_MUSTCHECK;

/* Writes the central directory and end records in slices of ~64 KiB (one
 * sink call each), until at least `budget` bytes have gone (0: one slice),
 * then returns BD_ZIP_MORE; the call that writes the end records returns
 * BD_ZIP_OK, and so does any call after that. The first call ends adding.
 * The index is freed as it is consumed. An error is sticky. */
int bd_zip_finish_some(bd_zip_t *z, size_t budget) BD_MUSTCHECK;

/* bd_zip_finish_some() until done, in one go. */
int bd_zip_finish(bd_zip_t *z) BD_MUSTCHECK;

/* Frees the writer at any point (an unfinished archive is simply
 * truncated: nothing more is sent). NULL is a no-op. */
void bd_zip_free(bd_zip_t *z);

uint64_t bd_zip_entries(const bd_zip_t *z);     /* entries added so far */
uint64_t bd_zip_written(const bd_zip_t *z);     /* bytes sent to the sink so far */
size_t bd_zip_index_bytes(const bd_zip_t *z);   /* memory held by the directory index */
const char *bd_zip_strerror(int err);           /* fixed message, never NULL */

#endif
