/* test_zip.c: the streaming ZIP writer, checked by independent readers.
 *
 * Archives are written to a temporary directory together with a manifest
 * (names and expected contents), then read back by Python's zipfile
 * (testzip, names, contents, flags, timestamps) and by `unzip -t` when it
 * is installed. Cases: 3 entries stored and deflated, 0 entries, 70,000
 * entries (ZIP64 by count, directory written in slices, byte-identical
 * across runs, index memory per entry), the 65,534 / 65,535 boundary,
 * offsets beyond 4 GiB (a sparse file), and errors.
 *
 * BATCHD_PYTHON overrides the interpreter (default /usr/bin/python3, the
 * system one, which has zipfile); without one the reader checks are
 * skipped with a message, the writer's own checks still run. */
#include "zip.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[256];        /* temporary directory for this run */
static const char *g_python;   /* interpreter, NULL when unavailable */
static bool g_unzip;           /* `unzip` is on PATH */

/* The reader: argv[1] archive, argv[2] manifest, argv[3] expected contents,
 * argv[4] "stored", "deflated" or "mixed". The manifest has one line per
 * entry: name TAB length TAB method (0/8) TAB skip (1 = do not read). */
static const char k_reader_py[] =
    "import sys, zipfile\n"
    "arc, man, exp, _mode = sys.argv[1:5]\n"
    "rows = [l.rstrip('\\n').split('\\t') for l in open(man, encoding='utf-8') if l.strip()]\n"
    "with open(exp, 'rb') as f: blob = f.read()\n"
    "zf = zipfile.ZipFile(arc)\n"
    "infos = zf.infolist()\n"
    "assert [i.filename for i in infos] == [r[0] for r in rows], 'names differ'\n"
    "if not any(r[3] == '1' for r in rows):\n"
    "    bad = zf.testzip()\n"
    "    assert bad is None, 'testzip: %s' % bad\n"
    "pos = 0\n"
    "for info, (name, length, method, skip) in zip(infos, rows):\n"
    "    length = int(length)\n"
    "    assert info.file_size == length, (name, info.file_size, length)\n"
    "    assert info.compress_type == int(method), (name, info.compress_type, method)\n"
    "    assert info.flag_bits & 0x800, name\n"
    "    assert info.date_time == (2025, 3, 14, 13, 4, 2), info.date_time\n"
    "    assert info.external_attr >> 16 == 0o100644, oct(info.external_attr)\n"
    "    if skip != '1':\n"
    "        assert zf.read(info) == blob[pos:pos + length], 'content of ' + name\n"
    "        pos += length\n"
    "assert pos == len(blob)\n"
    "print('    python zipfile: %d entries OK' % len(infos))\n";

typedef struct {
  FILE *arc;      /* the archive */
  FILE *man;      /* manifest lines */
  FILE *exp;      /* expected contents, concatenated */
  int fail_after; /* sink fails once this many more bytes would be written; -1 never */
  uint64_t bytes; /* written through the sink */
} out_t;

static int file_sink(void *ud, const void *p, size_t n) {
  out_t *o = ud;
  if (o->fail_after >= 0 && (uint64_t)o->fail_after < o->bytes + n) return -1;
  o->bytes += n;
  return fwrite(p, 1, n, o->arc) == n ? 0 : -1;
}

static void path_of(char *out, size_t cap, const char *base, const char *ext) {
  snprintf(out, cap, "%s/%s.%s", g_dir, base, ext);
}

static void out_open(out_t *o, const char *base) {
  char p[512];
  memset(o, 0, sizeof *o);
  o->fail_after = -1;
  path_of(p, sizeof p, base, "zip");
  o->arc = fopen(p, "wb");
  path_of(p, sizeof p, base, "man");
  o->man = fopen(p, "wb");
  path_of(p, sizeof p, base, "exp");
  o->exp = fopen(p, "wb");
  if (!o->arc || !o->man || !o->exp) {
    perror("fopen");
    exit(2);
  }
}

static void out_close(out_t *o) {
  fclose(o->arc);
  fclose(o->man);
  fclose(o->exp);
}

/* Adds an entry and records what the reader must find. */
static int add(bd_zip_t *z, out_t *o, const char *name, const void *data, size_t len, int method) {
  int rc = bd_zip_add(z, name, data, len);
  if (rc == BD_ZIP_OK) {
    fprintf(o->man, "%s\t%zu\t%d\t0\n", name, len, method);
    fwrite(data, 1, len, o->exp);
  }
  return rc;
}

static int run(const char *cmd) {
  int rc = system(cmd);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* Python's zipfile and `unzip -t` (quiet) on base.zip. */
static void verify(const char *base, bool with_unzip) {
  char cmd[4096], arc[512], man[512], exp[512], py[512];
  path_of(arc, sizeof arc, base, "zip");
  path_of(man, sizeof man, base, "man");
  path_of(exp, sizeof exp, base, "exp");
  path_of(py, sizeof py, "reader", "py");
  if (g_python) {
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s' '%s' '%s' x", g_python, py, arc, man, exp);
    CHECK_INT(run(cmd), 0);
  }
  if (g_unzip && with_unzip) {
    snprintf(cmd, sizeof cmd, "unzip -tqq '%s'", arc);
    int rc = run(cmd);
    CHECK_INT(rc, 0);
    if (rc == 0) printf("    unzip -t: OK\n");
  }
}

static uint64_t file_size(const char *base) {
  char p[512];
  struct stat st;
  path_of(p, sizeof p, base, "zip");
  return stat(p, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Whether the archive ends with a ZIP64 locator + classic end record (no
 * comment), as the writer produces exactly when ZIP64 is needed. */
static int has_zip64_end(const char *base) {
  char p[512];
  unsigned char sig[4];
  path_of(p, sizeof p, base, "zip");
  FILE *f = fopen(p, "rb");
  if (!f || fseeko(f, -(22 + 20), SEEK_END) != 0 || fread(sig, 1, 4, f) != 4) {
    if (f) fclose(f);
    return -1;
  }
  fclose(f);
  return sig[0] == 0x50 && sig[1] == 0x4b && sig[2] == 0x06 && sig[3] == 0x07;
}

static uint32_t when(void) { return bd_zip_dos_datetime(2025, 3, 14, 13, 4, 3); /* :03 -> :02 */ }

/* A deterministic SVG-ish body for entry i (varies in length and bytes). */
static size_t svg_for(uint64_t i, char *buf, size_t cap) {
  int n = snprintf(buf, cap, "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 29 29\"><path d=\"");
  for (uint64_t k = 0; k < 3 + i % 11 && (size_t)n + 40 < cap; k++)
    n += snprintf(buf + n, cap - (size_t)n, "M%llu %lluh1v1h-1z", (unsigned long long)((i + k) % 29),
                  (unsigned long long)((i * 7 + k) % 29));
  n += snprintf(buf + n, cap - (size_t)n, "\"/></svg>\n");
  return (size_t)n;
}

/* "{gtin14}_{12 base-32 characters}.svg", unique per i (splitmix64 is a
 * bijection; 60 of its bits are kept). */
static void name_for(uint64_t i, char out[40]) {
  static const char a[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  uint64_t x = i + 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  x ^= x >> 31;
  memcpy(out, "09506000134352_", 15);
  for (int k = 0; k < 12; k++) out[15 + k] = a[(x >> (5 * k)) & 31];
  memcpy(out + 27, ".svg", 5);
}

static void test_three(void) {
  out_t o;
  out_open(&o, "three");
  bd_zip_t *z = bd_zip_new(file_sink, &o, when(), 0);
  char svg[1024];
  size_t n = svg_for(1, svg, sizeof svg);
  CHECK_INT(add(z, &o, "09506000134352_ABC.svg", svg, n, 0), BD_ZIP_OK);
  CHECK_INT(add(z, &o, "empty.txt", "", 0, 0), BD_ZIP_OK);
  CHECK_INT(add(z, &o, "passports/caf\xc3\xa9-\xe2\x82\xac-\xf0\x9f\x93\xa6.svg", "x", 1, 0), BD_ZIP_OK);
  CHECK_INT(bd_zip_entries(z), 3);
  CHECK_INT(bd_zip_finish(z), BD_ZIP_OK);
  CHECK_INT(bd_zip_finish(z), BD_ZIP_OK); /* idempotent once done */
  CHECK_INT(bd_zip_index_bytes(z), 0);    /* released at the end */
  uint64_t written = bd_zip_written(z);
  bd_zip_free(z);
  out_close(&o);
  /* Exact size: 3 local headers + names + data, 3 central headers + names, end. */
  size_t names = strlen("09506000134352_ABC.svg") + strlen("empty.txt") +
                 strlen("passports/caf\xc3\xa9-\xe2\x82\xac-\xf0\x9f\x93\xa6.svg");
  CHECK_INT(written, 3 * 30 + names + n + 1 + 3 * 46 + names + 22);
  CHECK_INT(file_size("three"), written);
  CHECK_INT(has_zip64_end("three"), 0);
  verify("three", true);
}

static void test_three_deflate(void) {
  out_t o;
  out_open(&o, "deflate");
  bd_zip_t *z = bd_zip_new(file_sink, &o, when(), BD_ZIP_DEFLATE);
  char svg[4096];
  size_t n = 0; /* ~3 KB: eleven bodies, about the size of a rendered QR SVG */
  for (int i = 10; i <= 20; i++) n += svg_for((uint64_t)i, svg + n, sizeof svg - n);
  unsigned char rnd[3000]; /* incompressible: stored instead */
  uint64_t x = 88172645463325252ull;
  for (size_t i = 0; i < sizeof rnd; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    rnd[i] = (unsigned char)x;
  }
  CHECK_INT(add(z, &o, "a.svg", svg, n, 8), BD_ZIP_OK);
  CHECK_INT(add(z, &o, "random.bin", rnd, sizeof rnd, 0), BD_ZIP_OK);
  CHECK_INT(add(z, &o, "empty", "", 0, 0), BD_ZIP_OK);
  CHECK_INT(add(z, &o, "b.svg", svg, n, 8), BD_ZIP_OK); /* the reset stream works again */
  CHECK_INT(bd_zip_finish(z), BD_ZIP_OK);
  printf("    svg of %zu bytes deflated: archive of %llu bytes\n", n, (unsigned long long)bd_zip_written(z));
  /* Headers: 4 local (30) + 4 central (46) + names twice + end (22). */
  size_t overhead = 4 * 30 + 4 * 46 + 2 * strlen("a.svgrandom.binemptyb.svg") + 22;
  CHECK(bd_zip_written(z) - overhead - sizeof rnd < n); /* two SVGs in less than one */
  bd_zip_free(z);
  out_close(&o);
  verify("deflate", true);
}

static void test_empty(void) {
  out_t o;
  out_open(&o, "empty");
  bd_zip_t *z = bd_zip_new(file_sink, &o, when(), 0);
  CHECK_INT(bd_zip_written(z), 0); /* nothing before the first entry */
  CHECK_INT(bd_zip_finish_some(z, 0), BD_ZIP_OK);
  CHECK_INT(bd_zip_written(z), 22);
  CHECK_INT(bd_zip_add(z, "late", "x", 1), BD_ZIP_E_STATE);
  bd_zip_free(z);
  out_close(&o);
  CHECK_INT(file_size("empty"), 22);
  verify("empty", false); /* unzip -t exits 1 on an empty archive ("zipfile is empty") */
}

static long maxrss_kb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

/* n entries with svg_for/name_for bodies; the directory in budget-sized
 * slices (SIZE_MAX: one go). Returns the writer's index size before finish. */
static size_t write_many(const char *base, uint64_t n, size_t budget, bd_buf_t *copy, int *slices) {
  out_t o;
  out_open(&o, base);
  bd_zip_t *z = copy ? bd_zip_new(bd_zip_sink_buf, copy, when(), 0) : bd_zip_new(file_sink, &o, when(), 0);
  char svg[1024], name[40];
  int bad = 0;
  for (uint64_t i = 0; i < n; i++) {
    size_t len = svg_for(i, svg, sizeof svg);
    name_for(i, name);
    bad += copy ? bd_zip_add(z, name, svg, len) != BD_ZIP_OK : add(z, &o, name, svg, len, 0) != BD_ZIP_OK;
  }
  CHECK_INT(bad, 0);
  size_t index = bd_zip_index_bytes(z);
  int rc, k = 0;
  size_t peak_index = index;
  while ((rc = bd_zip_finish_some(z, budget)) == BD_ZIP_MORE) {
    k++;
    peak_index = BD_MAX(peak_index, bd_zip_index_bytes(z));
  }
  CHECK_INT(rc, BD_ZIP_OK);
  CHECK(peak_index == index); /* finishing never grows the index */
  if (slices) *slices = k + 1;
  bd_zip_free(z);
  out_close(&o);
  return index;
}

static void test_70k(void) {
  enum { N = 70000 };
  long rss0 = maxrss_kb();
  int slices = 0;
  size_t index = write_many("many", N, 0, NULL, &slices);
  printf("    %d entries: index %zu bytes (%.1f per entry), directory in %d slices, max RSS %ld -> %ld KiB\n", N,
         index, (double)index / N, slices, rss0, maxrss_kb());
  /* Records are 1 flag + 4 CRC + 2 size + 1 shared + 1 length + ~16 suffix
   * bytes (the 15-byte GTIN prefix is shared); blocks are 256 KiB. */
  CHECK(index <= (size_t)N * 26 + 256 * 1024 + 64);
  CHECK(index >= (size_t)N * 24);
  CHECK(slices > 10); /* ~3.5 MB of directory in 64 KiB slices */
  CHECK_INT(has_zip64_end("many"), 1);
  verify("many", true);
  /* Deterministic: the same entries, the directory in one go, into memory:
   * identical bytes. */
  bd_buf_t b = BD_BUF_INIT;
  write_many("many-again", N, SIZE_MAX, &b, NULL);
  char p[512];
  path_of(p, sizeof p, "many", "zip");
  FILE *f = fopen(p, "rb");
  char *disk = malloc(b.len + 1);
  size_t got = f ? fread(disk, 1, b.len + 1, f) : 0;
  if (f) fclose(f);
  CHECK_INT(got, b.len);
  CHECK(got == b.len && memcmp(disk, b.data, b.len) == 0);
  free(disk);
  bd_buf_free(&b);
}

/* ZIP64 starts at 0xFFFF entries (the classic count field's 0xFFFF means
 * "see ZIP64"); one fewer needs none. */
static void test_count_boundary(void) {
  out_t o;
  for (int n = 0xFFFE; n <= 0xFFFF; n++) {
    const char *base = n == 0xFFFE ? "b65534" : "b65535";
    out_open(&o, base);
    bd_zip_t *z = bd_zip_new(file_sink, &o, when(), 0);
    char name[32];
    int bad = 0;
    for (int i = 0; i < n; i++) {
      snprintf(name, sizeof name, "u/%05d", i);
      bad += add(z, &o, name, name + 2, 5, 0) != BD_ZIP_OK;
    }
    CHECK_INT(bad, 0);
    CHECK_INT(bd_zip_finish(z), BD_ZIP_OK);
    bd_zip_free(z);
    out_close(&o);
    CHECK_INT(has_zip64_end(base), n == 0xFFFF);
    verify(base, false);
  }
}

/* Local headers beyond 4 GiB: a first entry of 4 GiB - 2 zero bytes (the
 * largest allowed) and one of 1 GiB, then small ones. The sink turns the
 * big data into holes of a sparse file, so this costs CRC time (~2 s),
 * not disk. The reader checks names, sizes and offsets, and reads the
 * small entries (those past 4 GiB go through the ZIP64 extra field). */
typedef struct {
  int fd;
  uint64_t pos;
} sparse_t;

static int sparse_sink(void *ud, const void *p, size_t n) {
  sparse_t *s = ud;
  if (n >= (1u << 20)) { /* only the big entries' data: all zeros */
    s->pos += n;
    return lseek(s->fd, (off_t)s->pos, SEEK_SET) == (off_t)s->pos ? 0 : -1;
  }
  for (size_t done = 0; done < n;) {
    ssize_t w = write(s->fd, (const char *)p + done, n - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    done += (size_t)w;
  }
  s->pos += n;
  return 0;
}

static const char k_big_py[] =
    "import sys, zipfile\n"
    "zf = zipfile.ZipFile(sys.argv[1])\n"
    "i = zf.infolist()\n"
    "assert [x.filename for x in i] == ['s0', 'big4g', 'big1g', 's1', 's2'], [x.filename for x in i]\n"
    "assert i[1].file_size == 0xFFFFFFFE and i[2].file_size == 1 << 30\n"
    "assert i[3].header_offset > 1 << 32 and i[4].header_offset > i[3].header_offset\n"
    "assert [zf.read(n) for n in ('s0', 's1', 's2')] == [b'zero', b'one', b'two']\n"
    "print('    python zipfile: entries past 4 GiB OK (s1 at %d)' % i[3].header_offset)\n";

static void test_beyond_4gib(void) {
  const size_t big = 0xFFFFFFFEu;
  char arc[512], py[512], cmd[4096];
  path_of(arc, sizeof arc, "big", "zip");
  path_of(py, sizeof py, "big", "py");
  sparse_t s = {open(arc, O_WRONLY | O_CREAT | O_TRUNC, 0644), 0};
  /* Untouched anonymous pages read as zeros without taking memory. */
  void *zeros = mmap(NULL, big, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (s.fd < 0 || zeros == MAP_FAILED) {
    printf("    skipped: cannot create the sparse file or map zeros\n");
    if (s.fd >= 0) close(s.fd);
    return;
  }
  bd_zip_t *z = bd_zip_new(sparse_sink, &s, when(), 0);
  uint64_t t0 = bd_now_ns();
  CHECK_INT(bd_zip_add(z, "s0", "zero", 4), BD_ZIP_OK);
  CHECK_INT(bd_zip_add(z, "toolarge", zeros, big + 1), BD_ZIP_E_SIZE);
  CHECK_INT(bd_zip_add(z, "big4g", zeros, big), BD_ZIP_OK);
  CHECK_INT(bd_zip_add(z, "big1g", zeros, (size_t)1 << 30), BD_ZIP_OK);
  CHECK_INT(bd_zip_add(z, "s1", "one", 3), BD_ZIP_OK);
  CHECK_INT(bd_zip_add(z, "s2", "two", 3), BD_ZIP_OK);
  CHECK_INT(bd_zip_finish(z), BD_ZIP_OK);
  printf("    %.2f GiB archive written in %.1f s\n", (double)bd_zip_written(z) / (1 << 30),
         (double)(bd_now_ns() - t0) / 1e9);
  CHECK(bd_zip_written(z) > ((uint64_t)5 << 30));
  bd_zip_free(z);
  munmap(zeros, big);
  close(s.fd);
  CHECK_INT(has_zip64_end("big"), 1); /* the directory starts beyond 32 bits */
  if (g_python) {
    FILE *f = fopen(py, "w");
    fputs(k_big_py, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s'", g_python, py, arc);
    CHECK_INT(run(cmd), 0);
  }
  if (g_unzip) { /* the small entries only: testing all would read 5 GiB */
    snprintf(cmd, sizeof cmd, "unzip -tqq '%s' s0 s1 s2", arc);
    CHECK_INT(run(cmd), 0);
  }
  unlink(arc);
  unlink(py);
}

static void test_errors(void) {
  out_t o;
  out_open(&o, "errors");
  bd_zip_t *z = bd_zip_new(file_sink, &o, when(), 0);
  const char *bad[] = {"", "/abs", "a//b", "dir/", ".", "..", "a/../b", "./a", "a/.", "back\\slash",
                       "tab\there", "nl\n", "del\x7f", "\xc3", "\xc3\x28", "\xe0\x80\x80" /* overlong */,
                       "\xed\xa0\x80" /* surrogate */, "\xf4\x90\x80\x80" /* > U+10FFFF */, "\xff"};
  for (size_t i = 0; i < BD_ARRAY_LEN(bad); i++) {
    int rc = bd_zip_add(z, bad[i], "x", 1);
    if (rc != BD_ZIP_E_NAME) fprintf(stderr, "  name #%zu accepted\n", i);
    CHECK_INT(rc, BD_ZIP_E_NAME);
  }
  CHECK_INT(bd_zip_add(z, NULL, "x", 1), BD_ZIP_E_NAME);
  char *longname = malloc(70000);
  memset(longname, 'a', 69999);
  longname[69999] = 0;
  CHECK_INT(bd_zip_add(z, longname, "x", 1), BD_ZIP_E_NAME);
  longname[65535] = 0; /* the maximum */
  CHECK_INT(add(z, &o, longname, "x", 1, 0), BD_ZIP_OK);
  free(longname);
  CHECK_INT(add(z, &o, "a/.b/..c/ok", "y", 1, 0), BD_ZIP_OK); /* dots inside names are fine */
  CHECK_INT(bd_zip_written(z), 2 * 30 + 65535 + 11 + 2); /* rejected adds wrote nothing */
  CHECK_INT(bd_zip_finish(z), BD_ZIP_OK);
  CHECK_INT(bd_zip_add(z, "after", "x", 1), BD_ZIP_E_STATE);
  bd_zip_free(z);
  out_close(&o);
  /* unzip truncates (and warns about) names over its PATH_MAX. */
  verify("errors", false);

  /* A sink failing at every byte position of a complete archive (so in
   * each add and in the directory): the error is sticky, freeing is fine,
   * and with one byte more everything succeeds. */
  int64_t total = -1;
  for (int64_t fail_at = -1; fail_at <= total; fail_at++) {
    out_open(&o, "sinkfail");
    o.fail_after = fail_at == total ? -1 : (int)fail_at;
    z = bd_zip_new(file_sink, &o, when(), BD_ZIP_DEFLATE);
    int rc = BD_ZIP_OK;
    for (int i = 0; i < 4 && rc == BD_ZIP_OK; i++) rc = bd_zip_add(z, "entry.svg", "<svg/><svg/><svg/><svg/>", 24);
    if (rc == BD_ZIP_OK) rc = bd_zip_finish(z);
    if (fail_at == -1) { /* the reference run: learn the size */
      CHECK_INT(rc, BD_ZIP_OK);
      total = (int64_t)bd_zip_written(z);
      fail_at = -1;
    } else if (fail_at == total) {
      CHECK_INT(rc, BD_ZIP_OK);
    } else {
      CHECK_INT(rc, BD_ZIP_E_SINK);
      CHECK_INT(bd_zip_add(z, "more", "x", 1), BD_ZIP_E_SINK);
      CHECK_INT(bd_zip_finish_some(z, 0), BD_ZIP_E_SINK);
    }
    bd_zip_free(z);
    out_close(&o);
  }
  CHECK(total > 300);
  bd_zip_free(NULL);
  CHECK(strlen(bd_zip_strerror(BD_ZIP_E_NAME)) > 0);
  CHECK_STR(bd_zip_strerror(-99), "unknown error");
  /* DOS date/time packing and clamping. */
  CHECK_INT(bd_zip_dos_datetime(1980, 1, 1, 0, 0, 0), 0x00210000);
  CHECK_INT(bd_zip_dos_datetime(1970, 6, 6, 6, 6, 6), 0x00210000);
  CHECK_INT(bd_zip_dos_datetime(2025, 3, 14, 13, 4, 3), ((45u << 9 | 3 << 5 | 14) << 16) | (13 << 11 | 4 << 5 | 1));
  CHECK_INT(bd_zip_dos_datetime(2200, 13, 40, 30, 70, 70), ((127u << 9 | 12 << 5 | 31) << 16) | (23 << 11 | 59 << 5 | 29));
}

static void cleanup(void) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  if (!getenv("ZIP_TEST_KEEP")) (void)!system(cmd);
}

int main(void) {
  const char *tmp = getenv("TMPDIR");
  snprintf(g_dir, sizeof g_dir, "%s/test_zip.XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(g_dir)) {
    perror("mkdtemp");
    return 2;
  }
  const char *py = getenv("BATCHD_PYTHON");
  g_python = py && *py ? py : "/usr/bin/python3";
  if (access(g_python, X_OK) != 0) {
    printf("  %s not found: Python reader checks skipped\n", g_python);
    g_python = NULL;
  }
  g_unzip = run("command -v unzip > /dev/null 2>&1") == 0;
  if (!g_unzip) printf("  unzip not installed: unzip -t checks skipped\n");
  char p[512];
  path_of(p, sizeof p, "reader", "py");
  FILE *f = fopen(p, "w");
  fputs(k_reader_py, f);
  fclose(f);

  RUN(test_three);
  RUN(test_three_deflate);
  RUN(test_empty);
  RUN(test_70k);
  RUN(test_count_boundary);
  RUN(test_beyond_4gib);
  RUN(test_errors);
  cleanup();
  UNIT_DONE();
}
