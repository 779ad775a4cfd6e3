/* Ed25519 keys, canonical encoding and record signatures. */
#include "sign.h"
#include "unit.h"
#include "util.h"

#include <sodium.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static json_t *js(const char *text) {
  json_error_t e;
  json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
  if (!j) fprintf(stderr, "bad test JSON: %s: %s\n", e.text, text);
  return j;
}

static void expect_canon(const char *in, const char *want) {
  json_t *j = js(in);
  bd_buf_t out = BD_BUF_INIT;
  char err[128] = "";
  CHECK_INT(bd_sign_canonical(j, &out, err, sizeof err), 0);
  CHECK_STR(out.data ? out.data : "", want);
  bd_buf_free(&out);
  json_decref(j);
}

static void test_canonical_vectors(void) {
  expect_canon("{\"b\": [1, -2, true, null, false], \"a\": 0}",
               "{\"a\":0,\"b\":[1,-2,true,null,false]}");
  /* what Python's json.dumps(sort_keys=True, separators=(",",":"), ensure_ascii=False) gives */
  expect_canon(
      "{\"b\":[1,-2,true,null],\"a\":\"x\\\"\\\\/\\u00e9\\b\\f\\n\\r\\t\\u0001\\u001f\\u007f\","
      "\"\\u00e9\":{},\"Z\":\"\"}",
      "{\"Z\":\"\",\"a\":\"x\\\"\\\\/"
      "\xc3\xa9\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\",\"b\":[1,-2,true,null],\"\xc3\xa9\":{}}");
  /* keys by UTF-8 bytes: "a" < "ab" < "b" < "é" < "中"; nested objects sorted too */
  expect_canon(
      "{\"\\u4e2d\":1,\"b\":{\"y\":1,\"x\":[{\"d\":1,\"c\":2}]},\"ab\":2,\"a\":3,\"\\u00e9\":4}",
      "{\"a\":3,\"ab\":2,\"b\":{\"x\":[{\"c\":2,\"d\":1}],\"y\":1},\"\xc3\xa9\":4,\"\xe4\xb8\xad\":"
      "1}");
  expect_canon("[]", "[]");
  expect_canon("{}", "{}");
  expect_canon("\"\xf0\x9f\x98\x80\"", "\"\xf0\x9f\x98\x80\""); /* non-BMP as UTF-8 */
  expect_canon("-0", "0");
  expect_canon("9223372036854775807", "9223372036854775807");
  /* reals are refused */
  json_t *j = js("{\"a\":1.5}");
  bd_buf_t out = BD_BUF_INIT;
  char err[128] = "";
  CHECK_INT(bd_sign_canonical(j, &out, err, sizeof err), -1);
  CHECK_STR(err, "a record may not hold real numbers");
  CHECK_INT(out.len, 0);
  bd_buf_free(&out);
  json_decref(j);
}

static void from_hex(unsigned char *out, const char *hex, size_t n) {
  size_t bl;
  CHECK(sodium_hex2bin(out, n, hex, strlen(hex), NULL, &bl, NULL) == 0 && bl == n);
}

static void test_rfc8032_vector(void) {
  /* RFC 8032 7.1, TEST 1 (empty message) */
  unsigned char seed[32], pk[32], sig[64];
  from_hex(seed, "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", 32);
  from_hex(pk, "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", 32);
  from_hex(sig,
           "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39"
           "701cf9b46bd25bf5f0595bbe24655141438e7a100b",
           64);
  bd_sign_key_t k;
  bd_sign_key_from_seed(seed, &k);
  CHECK(memcmp(k.pk, pk, 32) == 0);
  unsigned char got[64];
  crypto_sign_detached(got, NULL, (const unsigned char *)"", 0, k.sk);
  CHECK(memcmp(got, sig, 64) == 0);
  /* key id: "ed25519:" + 16 hex digits of SHA-256(pk) */
  char h[65];
  bd_sha256_hex(h, pk, 32);
  CHECK(strncmp(k.key_id, "ed25519:", 8) == 0);
  CHECK(strncmp(k.key_id + 8, h, 16) == 0);
  CHECK_INT(strlen(k.key_id), BD_SIGN_KEY_ID_LEN);
}

static void test_sign_verify(void) {
  unsigned char seed[32] = {1, 2, 3};
  bd_sign_key_t k;
  bd_sign_key_from_seed(seed, &k);
  json_t *rec = js("{\"reference_id\":\"CERT-1\",\"recipient\":{\"name\":\"Zoë\"},\"pdf_sha256\":"
                   "\"ab\",\"signatories\":[{\"name\":\"A\",\"designation\":\"B\"}]}");
  bd_buf_t sig = BD_BUF_INIT;
  char err[128];
  CHECK_INT(bd_sign_record(&k, rec, &sig, err, sizeof err), 0);
  CHECK_INT(sig.len, 88); /* 64 bytes in padded base64 */
  CHECK(bd_sign_verify_record(k.pk, rec, sig.data));
  /* the same record with members in another order verifies (canonical bytes) */
  json_t *reordered = js("{\"signatories\":[{\"designation\":\"B\",\"name\":\"A\"}],\"pdf_sha256\":"
                         "\"ab\",\"recipient\":{\"name\":\"Zoë\"},\"reference_id\":\"CERT-1\"}");
  CHECK(bd_sign_verify_record(k.pk, reordered, sig.data));
  /* tampered: a changed value, an added member, another key, a broken signature */
  json_object_set_new(json_object_get(rec, "recipient"), "name", json_string("Zoe"));
  CHECK(!bd_sign_verify_record(k.pk, rec, sig.data));
  json_object_set_new(reordered, "extra", json_true());
  CHECK(!bd_sign_verify_record(k.pk, reordered, sig.data));
  json_object_del(reordered, "extra");
  CHECK(bd_sign_verify_record(k.pk, reordered, sig.data));
  unsigned char seed2[32] = {9};
  bd_sign_key_t k2;
  bd_sign_key_from_seed(seed2, &k2);
  CHECK(!bd_sign_verify_record(k2.pk, reordered, sig.data));
  CHECK(strcmp(k.key_id, k2.key_id) != 0);
  sig.data[10] = sig.data[10] == 'A' ? 'B' : 'A';
  CHECK(!bd_sign_verify_record(k.pk, reordered, sig.data));
  CHECK(!bd_sign_verify_record(k.pk, reordered, "not base64"));
  CHECK(!bd_sign_verify_record(k.pk, reordered, NULL));
  bd_buf_free(&sig);
  json_decref(rec);
  json_decref(reordered);
}

static char g_dir[256];

static char *path_in_dir(const char *name) {
  char *p = bd_malloc(strlen(g_dir) + strlen(name) + 2);
  sprintf(p, "%s/%s", g_dir, name);
  return p;
}

static void write_file(const char *path, const char *text, mode_t mode) {
  unlink(path);
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  if (!f) return;
  fputs(text, f);
  fclose(f);
  CHECK(chmod(path, mode) == 0);
}

static void test_key_file(void) {
  char *p = path_in_dir("signing.key");
  bd_sign_key_t a, b;
  char err[256] = "";
  CHECK_INT(bd_sign_key_load_or_create(p, &a, err, sizeof err), 0);
  CHECK_STR(err, "");
  struct stat st;
  CHECK(stat(p, &st) == 0);
  CHECK_INT(st.st_mode & 0777, 0600);
  CHECK_INT(st.st_size, 23 + 64 + 1);
  /* round trip: the same key again */
  CHECK_INT(bd_sign_key_load_or_create(p, &b, err, sizeof err), 0);
  CHECK(memcmp(a.pk, b.pk, 32) == 0 && memcmp(a.sk, b.sk, 64) == 0);
  CHECK_STR(a.key_id, b.key_id);
  /* the file is the documented format */
  FILE *f = fopen(p, "r");
  char line[200] = "";
  CHECK(f && fgets(line, sizeof line, f));
  if (f) fclose(f);
  CHECK(strncmp(line, "batchd-ed25519-seed-v1 ", 23) == 0);
  unsigned char seed[32];
  line[23 + 64] = '\0';
  from_hex(seed, line + 23, 32);
  bd_sign_key_t c;
  bd_sign_key_from_seed(seed, &c);
  CHECK(memcmp(c.pk, a.pk, 32) == 0);
  /* no temporary file left behind */
  char cmd[400];
  snprintf(cmd, sizeof cmd, "ls -A %s | grep -c batchd-key", g_dir);
  FILE *ls = popen(cmd, "r");
  char cnt[16] = "";
  CHECK(ls && fgets(cnt, sizeof cnt, ls));
  if (ls) pclose(ls);
  CHECK_STR(cnt, "0\n");
  /* readable by others: refused */
  CHECK(chmod(p, 0644) == 0);
  CHECK_INT(bd_sign_key_load_or_create(p, &b, err, sizeof err), -1);
  CHECK(strstr(err, "group or others have access to it") != NULL);
  /* malformed files are refused, never replaced */
  const char *bad[] = {
      "",
      "batchd-ed25519-seed-v1 abc\n",
      "batchd-ed25519-seed-v1 "
      "9D61B19DEFFD5A60BA844AF492EC2CC44449C5697B326919703BAC031CAE7F60\n",
      "batchd-ed25519-seed-v1 "
      "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
      "batchd-ed25519-seed-v1 "
      "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60\n\n",
      "ed25519 9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60\n"};
  for (size_t i = 0; i < BD_ARRAY_LEN(bad); i++) {
    write_file(p, bad[i], 0600);
    CHECK_INT(bd_sign_key_load_or_create(p, &b, err, sizeof err), -1);
    CHECK(strstr(err, "malformed") != NULL);
    CHECK(stat(p, &st) == 0 && (size_t)st.st_size == strlen(bad[i]));
  }
  write_file(p,
             "batchd-ed25519-seed-v1 "
             "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60\n",
             0600);
  CHECK_INT(bd_sign_key_load_or_create(p, &b, err, sizeof err), 0);
  unsigned char pk[32];
  from_hex(pk, "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", 32);
  CHECK(memcmp(b.pk, pk, 32) == 0);
  /* a directory that does not exist */
  char *q = path_in_dir("missing/dir/key");
  CHECK_INT(bd_sign_key_load_or_create(q, &b, err, sizeof err), -1);
  CHECK(strstr(err, "signing key file") != NULL);
  unlink(p);
  free(p);
  free(q);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  const char *t = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(g_dir, sizeof g_dir, "%s/bdsignXXXXXX", t);
  if (!mkdtemp(g_dir)) return 1;
  RUN(test_canonical_vectors);
  RUN(test_rfc8032_vector);
  RUN(test_sign_verify);
  RUN(test_key_file);
  rmdir(g_dir);
  UNIT_DONE();
}
