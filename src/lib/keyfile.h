/* keyfile.h: 32-byte secret keys kept in a file of their own.
 *
 * FORMAT: one line of text, PREFIX + 64 lower-case hex digits + "\n", and
 * nothing else (PREFIX names the key's use and version, e.g.
 * "batchd-ed25519-seed-v1 "). When the file does not exist it is created
 * with 32 random bytes: written to a temporary file in the same directory
 * with mode 0600, fsynced, then linked into place with link(2), which fails
 * if another process created the file meanwhile (that process's key is then
 * loaded instead): several processes starting at once end up with one key.
 * An existing file that is not exactly this format, not a regular file, or
 * that group or others may read or write (mode & 077), is refused.
 *
 * Blocking file I/O: call at start-up (or on a worker). Any thread.
 */
#ifndef BD_KEYFILE_H
#define BD_KEYFILE_H

#include <stddef.h>

/* Loads the key of path into key, creating the file when missing. 0, or -1
 * with "WHAT PATH: why" in err (what: "signing key file", ...). */
int bd_keyfile_load_or_create(const char *path, const char *prefix, const char *what, unsigned char key[32],
                              char *err, size_t errsz);

#endif
