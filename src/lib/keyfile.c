/* keyfile.c: 32-byte keys in files of their own (see keyfile.h). */
#include "keyfile.h"

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_PREFIX 64

typedef struct {
  const char *prefix; /* the line's first bytes */
  size_t plen;
  const char *what;   /* for messages */
} kf_t;

static int kerr(const kf_t *k, char *err, size_t errsz, const char *path, const char *why) {
  snprintf(err, errsz, "%s %s: %s", k->what, path, why);
  return -1;
}

static size_t line_len(const kf_t *k) { return k->plen + 64 + 1; } /* prefix, hex, "\n" */

static bool parse_key(const kf_t *k, const char *text, size_t n, unsigned char key[32]) {
  if (n != line_len(k) || memcmp(text, k->prefix, k->plen) != 0 || text[n - 1] != '\n') return false;
  const char *hex = text + k->plen;
  for (int i = 0; i < 64; i++)
    if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f'))) return false;
  size_t bin_len = 0;
  return sodium_hex2bin(key, 32, hex, 64, NULL, &bin_len, NULL) == 0 && bin_len == 32;
}

static int load(const kf_t *k, const char *path, unsigned char key[32], char *err, size_t errsz) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return kerr(k, err, errsz, path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return kerr(k, err, errsz, path, "not a regular file");
  }
  if (st.st_mode & 077) {
    close(fd);
    return kerr(k, err, errsz, path,
                "group or others have access to it (chmod 600 it, or remove it to create a new key)");
  }
  char text[MAX_PREFIX + 64 + 2];
  ssize_t n = read(fd, text, sizeof text);
  close(fd);
  bool ok = n >= 0 && parse_key(k, text, (size_t)n, key);
  sodium_memzero(text, sizeof text);
  if (!ok) {
    char why[160];
    snprintf(why, sizeof why, "malformed (expected one line \"%s<64 hex digits>\")", k->prefix);
    return kerr(k, err, errsz, path, why);
  }
  return 0;
}

/* Creates the file atomically: a private temporary file in the same
 * directory, fsynced, then link(2) to the final name (fails with EEXIST if
 * someone else won the race: their key is used). 1 when created, 0 when it
 * appeared meanwhile, -1 on error. */
static int create(const kf_t *k, const char *path, char *err, size_t errsz) {
  char *dup = bd_strdup(path);
  char *dir = dirname(dup);
  size_t tl = strlen(dir) + 32;
  char *tmp = bd_malloc(tl);
  snprintf(tmp, tl, "%s/.batchd-key-XXXXXX", dir);
  free(dup);
  int fd = mkstemp(tmp); /* mode 0600 */
  if (fd < 0) {
    int e = errno;
    free(tmp);
    return kerr(k, err, errsz, path, strerror(e));
  }
  unsigned char key[32];
  randombytes_buf(key, sizeof key);
  char text[MAX_PREFIX + 64 + 2];
  memcpy(text, k->prefix, k->plen);
  sodium_bin2hex(text + k->plen, 65, key, sizeof key);
  text[line_len(k) - 1] = '\n';
  sodium_memzero(key, sizeof key);
  bool ok = fchmod(fd, 0600) == 0 && write(fd, text, line_len(k)) == (ssize_t)line_len(k) && fsync(fd) == 0;
  int e = errno;
  sodium_memzero(text, sizeof text);
  close(fd);
  int rc = -1;
  if (!ok) {
    kerr(k, err, errsz, path, strerror(e));
  } else if (link(tmp, path) == 0) {
    rc = 1;
  } else if (errno == EEXIST) {
    rc = 0;
  } else {
    kerr(k, err, errsz, path, strerror(errno));
  }
  unlink(tmp);
  free(tmp);
  return rc;
}

int bd_keyfile_load_or_create(const char *path, const char *prefix, const char *what, unsigned char key[32],
                              char *err, size_t errsz) {
  kf_t k = {prefix, strlen(prefix), what};
  if (k.plen > MAX_PREFIX) abort(); /* prefixes are literals */
  if (!path || !*path) return kerr(&k, err, errsz, "(none)", "no path configured");
  if (access(path, F_OK) != 0) {
    if (errno != ENOENT) return kerr(&k, err, errsz, path, strerror(errno));
    if (create(&k, path, err, errsz) < 0) return -1;
  }
  return load(&k, path, key, err, errsz);
}
