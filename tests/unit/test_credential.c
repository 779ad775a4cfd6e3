/* Verifiable credentials (credential.h): identifiers, eddsa-jcs-2022 proofs,
 * status lists, PNG baking and PDF attachments. The suite's integration test
 * (test_credentials.py) verifies the same documents with independent npm
 * verifiers; these check the pieces one by one. */
#include "cert_render.h"
#include "credential.h"
#include "jcs.h"
#include "unit.h"
#include "util.h"

#include <sodium.h>
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

static void test_base58(void) {
  /* the draft-msporny-base58 examples */
  struct {
    const char *in, *out;
  } v[] = {{"Hello World!", "2NEpo7TZRRrLZSi2U"},
           {"The quick brown fox jumps over the lazy dog.", "USm3fpXnKG5EUBx2ndxBDMPVciP5hGey2Jh4NDv6gmeo1LkMeiKrLJUUBk6Z"},
           {"", ""}};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    bd_buf_t b = BD_BUF_INIT;
    bd_vc_base58(&b, (const unsigned char *)v[i].in, strlen(v[i].in));
    CHECK_STR(b.data ? b.data : "", v[i].out);
    bd_buf_free(&b);
  }
  const unsigned char lead[] = {0, 0, 0x28, 0x7f, 0xb4, 0xcd}; /* leading zero bytes are '1's */
  bd_buf_t b = BD_BUF_INIT;
  bd_vc_base58(&b, lead, sizeof lead);
  CHECK_STR(b.data, "11233QC4");
  bd_buf_free(&b);
}

static void test_multikey_and_did(void) {
  /* did:key test vector (W3C did:key spec, Ed25519 2020 suite examples): the
   * public key of the all-zero-indices example is checked by its prefix and
   * length; a z6Mk key decodes back to 0xed01 || pk */
  unsigned char pk[32];
  for (int i = 0; i < 32; i++) pk[i] = (unsigned char)i;
  char mk[64];
  bd_vc_multikey(pk, mk);
  CHECK(!strncmp(mk, "z6Mk", 4));
  CHECK_INT(strlen(mk), 48);
  char did[256];
  CHECK_INT(bd_vc_did("http://127.0.0.1:8080", 7, did, sizeof did), 0);
  CHECK_STR(did, "did:web:127.0.0.1%3A8080:institutions:7");
  CHECK_INT(bd_vc_did("https://certs.example.org/batchd/", 12, did, sizeof did), 0);
  CHECK_STR(did, "did:web:certs.example.org:batchd:institutions:12");
  CHECK_INT(bd_vc_did("https://example.org/a%20b/c", 1, did, sizeof did), 0);
  CHECK_STR(did, "did:web:example.org:a%2520b:c:institutions:1");
  CHECK_INT(bd_vc_did("ftp://example.org", 1, did, sizeof did), -1);
  CHECK_INT(bd_vc_did("https://", 1, did, sizeof did), -1);
  CHECK_INT(bd_vc_did("https://exa mple.org", 1, did, sizeof did), -1);
  char vm[300];
  bd_vc_method("did:web:x:institutions:1", "ed25519:3f1c9a0b7d2e4f61", vm, sizeof vm);
  CHECK_STR(vm, "did:web:x:institutions:1#key-3f1c9a0b7d2e4f61");
}

static bd_sign_key_t test_key(void) {
  unsigned char seed[32];
  for (int i = 0; i < 32; i++) seed[i] = (unsigned char)(i * 7 + 1);
  bd_sign_key_t k;
  bd_sign_key_from_seed(seed, &k);
  return k;
}

static bd_vc_input_t sample(void) {
  return (bd_vc_input_t){
      .credential_id = "https://certs.example.org/credentials/ABC123",
      .issuer_did = "did:web:certs.example.org:institutions:1",
      .issuer_name = "Example Institute",
      .achievement_id = "https://certs.example.org/business/certificate-templates/t1#achievement",
      .achievement_name = "Diploma",
      .achievement_description = "Diploma, awarded by Example Institute.",
      .criteria = "Spring cohort",
      .credential_name = "Spring cohort",
      .recipient_name = "Zo\xc3\xab \xe6\x9d\x8e",
      .recipient_email = "Zoe@Example.COM",
      .salt = "0123456789abcdef",
      .valid_from = "2025-02-15T00:00:00Z",
      .status_list_url = "https://certs.example.org/credentials/status/1/0",
      .status_index = 40503,
      .verification_method = "did:web:certs.example.org:institutions:1#key-0011223344556677",
      .created = "2025-02-14T09:30:00Z",
  };
}

static void test_credential_proof(void) {
  bd_sign_key_t k = test_key();
  bd_vc_input_t in = sample();
  char err[256] = "";
  json_t *vc = bd_vc_certificate(&in, &k, err, sizeof err);
  CHECK(vc != NULL);
  if (!vc) return;
  CHECK(bd_vc_verify(vc, k.pk));
  json_t *proof = json_array_get(json_object_get(vc, "proof"), 0);
  CHECK_STR(json_string_value(json_object_get(proof, "cryptosuite")), "eddsa-jcs-2022");
  CHECK_STR(json_string_value(json_object_get(proof, "proofPurpose")), "assertionMethod");
  CHECK_STR(json_string_value(json_object_get(proof, "verificationMethod")), in.verification_method);
  CHECK(json_string_value(json_object_get(proof, "proofValue"))[0] == 'z');
  /* the e-mail is never in it, only its salted hash (lower-cased first) */
  char *text = json_dumps(vc, JSON_COMPACT);
  CHECK(strstr(text, "Zoe@Example.COM") == NULL && strstr(text, "zoe@example.com") == NULL);
  unsigned char h[32];
  const char *m = "zoe@example.com0123456789abcdef";
  crypto_hash_sha256(h, (const unsigned char *)m, strlen(m));
  char hex[65], want[128];
  bd_hex_encode(hex, h, 32);
  snprintf(want, sizeof want, "\"identityHash\":\"sha256$%s\"", hex);
  CHECK(strstr(text, want) != NULL);
  CHECK(strstr(text, "\"statusListIndex\":\"40503\"") != NULL);
  /* deterministic: the same input signs the same bytes */
  json_t *again = bd_vc_certificate(&in, &k, err, sizeof err);
  char *text2 = json_dumps(again, JSON_COMPACT);
  CHECK_STR(text2, text);
  /* tampering: a changed name, a changed proof, another key */
  json_object_set_new(json_object_get(vc, "issuer"), "name", json_string("Evil Institute"));
  CHECK(!bd_vc_verify(vc, k.pk));
  json_t *vc2 = json_loads(text, 0, NULL);
  CHECK(bd_vc_verify(vc2, k.pk));
  char *pv = bd_strdup(json_string_value(json_object_get(json_array_get(json_object_get(vc2, "proof"), 0), "proofValue")));
  pv[10] = pv[10] == 'A' ? 'B' : 'A';
  json_object_set_new(json_array_get(json_object_get(vc2, "proof"), 0), "proofValue", json_string(pv));
  CHECK(!bd_vc_verify(vc2, k.pk));
  free(pv);
  unsigned char other[32];
  memcpy(other, k.pk, 32);
  other[0] ^= 1;
  json_t *vc3 = json_loads(text, 0, NULL);
  CHECK(!bd_vc_verify(vc3, other));
  /* the signed bytes are SHA-256(JCS(config)) || SHA-256(JCS(document)) */
  json_t *cfg = json_deep_copy(json_array_get(json_object_get(vc3, "proof"), 0));
  json_object_del(cfg, "proofValue");
  CHECK(json_object_get(cfg, "@context") != NULL);
  json_t *doc = json_deep_copy(vc3);
  json_object_del(doc, "proof");
  bd_buf_t a = BD_BUF_INIT, b = BD_BUF_INIT;
  CHECK_INT(bd_jcs_canonicalize(cfg, &a, err, sizeof err), 0);
  CHECK_INT(bd_jcs_canonicalize(doc, &b, err, sizeof err), 0);
  unsigned char hd[64], sig[64];
  crypto_hash_sha256(hd, (const unsigned char *)a.data, a.len);
  crypto_hash_sha256(hd + 32, (const unsigned char *)b.data, b.len);
  crypto_sign_detached(sig, NULL, hd, 64, k.sk);
  bd_buf_t z = BD_BUF_INIT;
  bd_buf_putc(&z, 'z');
  bd_vc_base58(&z, sig, 64);
  CHECK_STR(z.data, json_string_value(json_object_get(json_array_get(json_object_get(vc3, "proof"), 0), "proofValue")));
  bd_buf_free(&a);
  bd_buf_free(&b);
  bd_buf_free(&z);
  json_decref(cfg);
  json_decref(doc);
  free(text);
  free(text2);
  json_decref(vc);
  json_decref(vc2);
  json_decref(vc3);
  json_decref(again);
}

static void test_status_list(void) {
  bd_sign_key_t k = test_key();
  long revoked[] = {0, 7, 8, 131071, 40503};
  char err[256] = "";
  json_t *sl = bd_vc_status_list("https://x/credentials/status/1/0", "did:web:x:institutions:1", revoked, 5,
                                 "2025-01-01T00:00:00Z", &k, "did:web:x:institutions:1#key-00", "2025-01-01T00:00:00Z",
                                 err, sizeof err);
  CHECK(sl != NULL);
  CHECK(bd_vc_verify(sl, k.pk));
  json_t *subj = json_object_get(sl, "credentialSubject");
  CHECK_STR(json_string_value(json_object_get(subj, "type")), "BitstringStatusList");
  CHECK_STR(json_string_value(json_object_get(subj, "statusPurpose")), "revocation");
  const char *enc = json_string_value(json_object_get(subj, "encodedList"));
  CHECK(enc && enc[0] == 'u');
  /* decode: base64url, gunzip, then the bits, left-most first */
  bd_buf_t gz = BD_BUF_INIT;
  CHECK(bd_b64url_decode(&gz, enc + 1, strlen(enc + 1)));
  unsigned char *bits = malloc(BD_VC_STATUS_LIST_SIZE / 8);
  z_stream z;
  memset(&z, 0, sizeof z);
  CHECK_INT(inflateInit2(&z, 15 + 16), Z_OK);
  z.next_in = (unsigned char *)gz.data;
  z.avail_in = (uInt)gz.len;
  z.next_out = bits;
  z.avail_out = BD_VC_STATUS_LIST_SIZE / 8;
  CHECK_INT(inflate(&z, Z_FINISH), Z_STREAM_END);
  CHECK_INT(z.total_out, BD_VC_STATUS_LIST_SIZE / 8);
  inflateEnd(&z);
  int set = 0;
  for (long i = 0; i < BD_VC_STATUS_LIST_SIZE; i++) set += (bits[i / 8] >> (7 - i % 8)) & 1;
  CHECK_INT(set, 5);
  CHECK_INT(bits[0], 0x81);            /* 0 and 7 */
  CHECK_INT(bits[1], 0x80);            /* 8 */
  CHECK_INT(bits[16383], 0x01);        /* 131071 */
  CHECK_INT(bits[40503 / 8], 0x80 >> (40503 % 8));
  free(bits);
  bd_buf_free(&gz);
  json_decref(sl);
}

static void test_did_document(void) {
  bd_sign_key_t k = test_key();
  unsigned char pks[2][32];
  memcpy(pks[0], k.pk, 32);
  memset(pks[1], 9, 32);
  const char *ids[] = {"ed25519:0011223344556677", "ed25519:8899aabbccddeeff"};
  json_t *d = bd_vc_did_document("did:web:x:institutions:1", (const unsigned char(*)[32])pks, ids, 2);
  json_t *vms = json_object_get(d, "verificationMethod");
  CHECK_INT(json_array_size(vms), 2);
  CHECK_STR(json_string_value(json_object_get(json_array_get(vms, 1), "id")),
            "did:web:x:institutions:1#key-8899aabbccddeeff");
  CHECK_STR(json_string_value(json_object_get(json_array_get(vms, 0), "type")), "Multikey");
  char mk[64];
  bd_vc_multikey(k.pk, mk);
  CHECK_STR(json_string_value(json_object_get(json_array_get(vms, 0), "publicKeyMultibase")), mk);
  CHECK_INT(json_array_size(json_object_get(d, "assertionMethod")), 2);
  json_decref(d);
}

/* A small real certificate, rendered (PDF and PNG as cairo writes them). */
static int render(bd_cert_output_t *out) {
  const char *layout = "{\"page\":{\"width\":300,\"height\":200},\"elements\":[{\"type\":\"text\",\"x\":20,"
                       "\"y\":40,\"text\":\"For {{RecipientsName}}\",\"size\":14}]}";
  char err[256];
  json_t *j = json_loads(layout, 0, NULL);
  bd_cert_layout_t *l = bd_cert_layout_parse(j, err, sizeof err);
  json_decref(j);
  bd_cert_input_t in = {.recipient_name = "Ada", .issue_date = "2025-02-15", .reference_id = "R1",
                        .verification_url = "https://x/verify/R1", .institution_name = "X"};
  int rc = l ? bd_cert_render(l, &in, out, err, sizeof err) : -1;
  if (rc) fprintf(stderr, "render: %s\n", err);
  bd_cert_layout_free(l);
  return rc;
}

static void test_png_baking(void) {
  bd_cert_output_t out;
  CHECK_INT(render(&out), 0);
  const char *text = "{\"type\":[\"VerifiableCredential\"],\"name\":\"Zo\xc3\xab\"}";
  bd_buf_t baked = BD_BUF_INIT;
  char err[128];
  CHECK_INT(bd_vc_bake_png(out.png.data, out.png.len, text, strlen(text), &baked, err, sizeof err), 0);
  CHECK_INT(baked.len, out.png.len + 12 + strlen("openbadgecredential") + 5 + strlen(text));
  size_t tl = 0;
  char *got = bd_vc_unbake_png(baked.data, baked.len, &tl);
  CHECK_STR(got, text);
  CHECK_INT(tl, strlen(text));
  free(got);
  CHECK(bd_vc_unbake_png(out.png.data, out.png.len, NULL) == NULL);
  /* still a PNG any decoder reads: the renderer's own decoder */
  bd_cert_image_t *img = bd_cert_image_decode(baked.data, baked.len, err, sizeof err);
  CHECK(img != NULL);
  bd_cert_image_free(img);
  bd_buf_t bad = BD_BUF_INIT;
  CHECK_INT(bd_vc_bake_png("GIF89a", 6, text, strlen(text), &bad, err, sizeof err), -1);
  bd_buf_free(&bad);
  bd_buf_free(&baked);
  bd_cert_output_free(&out);
}

static int sh(const char *cmd) { return system(cmd); }

static void test_pdf_attachment(void) {
  bd_cert_output_t out;
  CHECK_INT(render(&out), 0);
  const char *text = "{\"credential\":\"(with parens) and \\\\ backslash\"}";
  bd_buf_t pdf = BD_BUF_INIT;
  char err[256] = "";
  CHECK_INT(bd_pdf_attach(out.pdf.data, out.pdf.len, "credential.json", "application/vc+ld+json", text,
                          strlen(text), "The (credential)", &pdf, err, sizeof err),
            0);
  if (err[0]) fprintf(stderr, "attach: %s\n", err);
  CHECK(pdf.len > out.pdf.len);
  CHECK(memcmp(pdf.data, out.pdf.data, out.pdf.len) == 0); /* an incremental update: the original is kept */
  /* poppler reads it: the text is still there, and the attachment is listed and saved byte for byte */
  char dir[] = "/tmp/bd-credential-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char path[128], cmd[512];
  snprintf(path, sizeof path, "%s/c.pdf", dir);
  FILE *f = fopen(path, "wb");
  fwrite(pdf.data, 1, pdf.len, f);
  fclose(f);
  if (sh("command -v pdfdetach >/dev/null 2>&1") == 0) {
    snprintf(cmd, sizeof cmd, "pdfdetach -list %s | grep -q 'credential.json'", path);
    CHECK_INT(sh(cmd), 0);
    snprintf(cmd, sizeof cmd, "cd %s && pdfdetach -save 1 -o got.json c.pdf >/dev/null 2>&1", dir);
    CHECK_INT(sh(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s/got.json", dir);
    FILE *g = fopen(cmd, "rb");
    char buf[256] = "";
    size_t n = g ? fread(buf, 1, sizeof buf - 1, g) : 0;
    if (g) fclose(g);
    buf[n] = '\0';
    CHECK_STR(buf, text);
    snprintf(cmd, sizeof cmd, "pdftotext -q %s - | grep -q 'For Ada'", path);
    CHECK_INT(sh(cmd), 0);
    snprintf(cmd, sizeof cmd, "pdfinfo %s >/dev/null 2>&1", path);
    CHECK_INT(sh(cmd), 0);
  } else {
    fprintf(stderr, "  (pdfdetach not installed: poppler checks skipped)\n");
  }
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  sh(cmd);
  /* twice: the catalog then has /Names, which is refused rather than lost */
  bd_buf_t twice = BD_BUF_INIT;
  CHECK_INT(bd_pdf_attach(pdf.data, pdf.len, "b.json", "application/json", "{}", 2, "b", &twice, err, sizeof err), -1);
  CHECK(strstr(err, "/Names") != NULL);
  CHECK_INT(bd_pdf_attach("not a pdf", 9, "b.json", "application/json", "{}", 2, "b", &twice, err, sizeof err), -1);
  bd_buf_free(&twice);
  bd_buf_free(&pdf);
  bd_cert_output_free(&out);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  RUN(test_base58);
  RUN(test_multikey_and_did);
  RUN(test_credential_proof);
  RUN(test_status_list);
  RUN(test_did_document);
  RUN(test_png_baking);
  RUN(test_pdf_attachment);
  UNIT_DONE();
}
