/* credential.c: Verifiable Credentials for certificates (credential.h). */
#include "credential.h"

#include "jcs.h"
#include "util.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define OB_CONTEXT "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
#define VC_CONTEXT "https://www.w3.org/ns/credentials/v2"

/* --- identifiers ------------------------------------------------------------- */

void bd_vc_base58(bd_buf_t *out, const unsigned char *p, size_t n) {
  static const char alpha[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
  size_t zeros = 0;
  while (zeros < n && p[zeros] == 0) zeros++;
  size_t cap = (n - zeros) * 138 / 100 + 1;
  unsigned char *d = bd_calloc(cap, 1);
  size_t len = 0; /* digits used, little-endian in d */
  for (size_t i = zeros; i < n; i++) {
    unsigned carry = p[i];
    for (size_t j = 0; j < len; j++) {
      carry += (unsigned)d[j] << 8;
      d[j] = (unsigned char)(carry % 58);
      carry /= 58;
    }
    while (carry) {
      d[len++] = (unsigned char)(carry % 58);
      carry /= 58;
    }
  }
  for (size_t i = 0; i < zeros; i++) bd_buf_putc(out, '1');
  for (size_t i = len; i-- > 0;) bd_buf_putc(out, alpha[d[i]]);
  free(d);
}

void bd_vc_multikey(const unsigned char pk[32], char out[64]) {
  unsigned char b[34] = {0xed, 0x01};
  memcpy(b + 2, pk, 32);
  bd_buf_t s = BD_BUF_INIT;
  bd_buf_putc(&s, 'z');
  bd_vc_base58(&s, b, sizeof b);
  snprintf(out, 64, "%s", s.data);
  bd_buf_free(&s);
}

int bd_vc_did(const char *base_url, long long institution_id, char *out, size_t outsz) {
  const char *p = !strncmp(base_url, "https://", 8) ? base_url + 8 : !strncmp(base_url, "http://", 7) ? base_url + 7
                                                                                                    : NULL;
  if (!p || !*p) return -1;
  bd_buf_t b = BD_BUF_INIT;
  bd_buf_puts(&b, "did:web:");
  /* host[:port]: the port's colon percent-encoded; then each path segment */
  for (; *p && *p != '/'; p++) {
    if (*p == ':') bd_buf_puts(&b, "%3A");
    else if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
             *p == '-' || *p == '[' || *p == ']')
      bd_buf_putc(&b, *p);
    else {
      bd_buf_free(&b);
      return -1;
    }
  }
  while (*p == '/') {
    const char *seg = ++p;
    while (*p && *p != '/') p++;
    if (p == seg) continue; /* "//" or a trailing slash */
    bd_buf_putc(&b, ':');
    for (const char *q = seg; q < p; q++) {
      if ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') || *q == '.' ||
          *q == '-' || *q == '_' || *q == '~')
        bd_buf_putc(&b, *q);
      else
        bd_buf_printf(&b, "%%%02X", (unsigned char)*q);
    }
  }
  bd_buf_printf(&b, ":institutions:%lld", institution_id);
  int rc = b.len < outsz ? 0 : -1;
  if (!rc) memcpy(out, b.data, b.len + 1);
  bd_buf_free(&b);
  return rc;
}

void bd_vc_method(const char *did, const char *key_id, char *out, size_t outsz) {
  const char *hex = strchr(key_id, ':');
  snprintf(out, outsz, "%s#key-%s", did, hex ? hex + 1 : key_id);
}

/* --- proofs -------------------------------------------------------------------- */

/* SHA-256(JCS(v)) into h. */
static int jcs_hash(const json_t *v, unsigned char h[32], char *err, size_t errsz) {
  bd_buf_t b = BD_BUF_INIT;
  int rc = bd_jcs_canonicalize(v, &b, err, errsz);
  if (rc == 0) crypto_hash_sha256(h, (const unsigned char *)(b.data ? b.data : ""), b.len);
  bd_buf_free(&b);
  return rc;
}

/* hashData of doc (its proof member ignored) under proof configuration cfg. */
static int hash_data(const json_t *doc, const json_t *cfg, unsigned char out[64], char *err, size_t errsz) {
  json_t *unsecured = json_copy((json_t *)doc); /* shallow: members are shared, only "proof" is dropped */
  json_object_del(unsecured, "proof");
  int rc = jcs_hash(cfg, out, err, errsz);
  if (rc == 0) rc = jcs_hash(unsecured, out + 32, err, errsz);
  json_decref(unsecured);
  return rc;
}

static json_t *proof_config(const json_t *doc, const char *vm, const char *created) {
  json_t *cfg = json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "DataIntegrityProof", "cryptosuite", "eddsa-jcs-2022",
                          "created", created, "verificationMethod", vm, "proofPurpose", "assertionMethod");
  json_t *ctx = json_object_get(doc, "@context");
  if (ctx) json_object_set(cfg, "@context", ctx);
  return cfg;
}

int bd_vc_prove(json_t *doc, const bd_sign_key_t *key, const char *vm, const char *created, char *err, size_t errsz) {
  json_t *cfg = proof_config(doc, vm, created);
  unsigned char hd[64], sig[64];
  int rc = hash_data(doc, cfg, hd, err, errsz);
  if (rc == 0) {
    crypto_sign_detached(sig, NULL, hd, sizeof hd, key->sk);
    bd_buf_t pv = BD_BUF_INIT;
    bd_buf_putc(&pv, 'z');
    bd_vc_base58(&pv, sig, sizeof sig);
    /* the proof as attached: the configuration (with its @context) and the value */
    json_object_set_new(cfg, "proofValue", json_string(pv.data));
    bd_buf_free(&pv);
    /* a proof set of one: VC 2.0 allows an object or a set, and the Open
     * Badges 3.0 schema requires the array */
    json_object_set_new(doc, "proof", json_pack("[O]", cfg));
  }
  json_decref(cfg);
  return rc;
}

static int base58_decode(const char *s, unsigned char *out, size_t outsz) {
  static const char alpha[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
  unsigned char d[128] = {0};
  size_t len = 0, zeros = 0;
  for (; *s == '1'; s++) zeros++;
  for (; *s; s++) {
    const char *c = strchr(alpha, *s);
    if (!c || !*s) return -1;
    unsigned carry = (unsigned)(c - alpha);
    for (size_t j = 0; j < len; j++) {
      carry += d[j] * 58u;
      d[j] = (unsigned char)(carry & 0xff);
      carry >>= 8;
    }
    while (carry) {
      if (len == sizeof d) return -1;
      d[len++] = (unsigned char)(carry & 0xff);
      carry >>= 8;
    }
  }
  if (zeros + len != outsz) return -1;
  memset(out, 0, zeros);
  for (size_t i = 0; i < len; i++) out[zeros + i] = d[len - 1 - i];
  return 0;
}

bool bd_vc_verify(const json_t *doc, const unsigned char pk[32]) {
  json_t *proof = json_object_get(doc, "proof");
  if (json_is_array(proof)) proof = json_array_size(proof) == 1 ? json_array_get(proof, 0) : NULL;
  const char *pv = json_string_value(json_object_get(proof, "proofValue"));
  unsigned char sig[64], hd[64];
  if (!pv || pv[0] != 'z' || base58_decode(pv + 1, sig, sizeof sig) != 0) return false;
  if (strcmp(json_string_value(json_object_get(proof, "cryptosuite")) ?: "", "eddsa-jcs-2022")) return false;
  json_t *cfg = json_copy(proof);
  json_object_del(cfg, "proofValue");
  char err[128];
  bool ok = hash_data(doc, cfg, hd, err, sizeof err) == 0 && crypto_sign_verify_detached(sig, hd, sizeof hd, pk) == 0;
  json_decref(cfg);
  return ok;
}

/* --- the certificate's credential ----------------------------------------------- */

json_t *bd_vc_certificate(const bd_vc_input_t *in, const bd_sign_key_t *key, char *err, size_t errsz) {
  json_t *ids = json_array();
  json_array_append_new(ids, json_pack("{s:s, s:b, s:s, s:s}", "type", "IdentityObject", "hashed", 0, "identityHash",
                                       in->recipient_name, "identityType", "name"));
  if (in->recipient_email && *in->recipient_email) {
    /* OB 3.0 IdentityHash: "sha256$" + hex SHA-256(identifier || salt), the
     * address lower-cased first */
    bd_buf_t m = BD_BUF_INIT;
    for (const char *p = in->recipient_email; *p; p++)
      bd_buf_putc(&m, (*p >= 'A' && *p <= 'Z') ? (char)(*p + 32) : *p);
    bd_buf_puts(&m, in->salt);
    unsigned char h[32];
    crypto_hash_sha256(h, (const unsigned char *)m.data, m.len);
    char hex[65], ih[80];
    bd_hex_encode(hex, h, sizeof h);
    snprintf(ih, sizeof ih, "sha256$%s", hex);
    bd_buf_free(&m);
    json_array_append_new(ids, json_pack("{s:s, s:b, s:s, s:s, s:s}", "type", "IdentityObject", "hashed", 1,
                                         "identityHash", ih, "identityType", "emailAddress", "salt", in->salt));
  }
  char idx[24];
  snprintf(idx, sizeof idx, "%ld", in->status_index);
  char status_id[1024];
  snprintf(status_id, sizeof status_id, "%s#%ld", in->status_list_url, in->status_index);
  json_t *issuer = json_pack("{s:s, s:[s], s:s}", "id", in->issuer_did, "type", "Profile", "name", in->issuer_name);
  if (in->issuer_url) json_object_set_new(issuer, "url", json_string(in->issuer_url));
  json_t *doc = json_pack(
      "{s:[s,s], s:s, s:[s,s], s:o, s:s, s:s, s:{s:[s], s:o, s:{s:s, s:[s], s:s, s:s, s:{s:s}}},"
      " s:{s:s, s:s, s:s, s:s, s:s}}",
      "@context", VC_CONTEXT, OB_CONTEXT, "id", in->credential_id, "type", "VerifiableCredential",
      "OpenBadgeCredential", "issuer", issuer, "validFrom", in->valid_from, "name", in->credential_name,
      "credentialSubject", "type", "AchievementSubject", "identifier", ids, "achievement", "id", in->achievement_id,
      "type", "Achievement", "name", in->achievement_name, "description", in->achievement_description, "criteria",
      "narrative", in->criteria, "credentialStatus", "id", status_id, "type", "BitstringStatusListEntry",
      "statusPurpose", "revocation", "statusListIndex", idx, "statusListCredential", in->status_list_url);
  if (!doc) {
    snprintf(err, errsz, "the credential could not be built (a field is not valid UTF-8)");
    return NULL;
  }
  if (bd_vc_prove(doc, key, in->verification_method, in->created, err, errsz) != 0) {
    json_decref(doc);
    return NULL;
  }
  return doc;
}

/* --- status lists -------------------------------------------------------------- */

static int gzip(const unsigned char *p, size_t n, bd_buf_t *out) {
  z_stream z;
  memset(&z, 0, sizeof z);
  if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK) return -1;
  size_t cap = deflateBound(&z, (uLong)n) + 32;
  unsigned char *buf = bd_malloc(cap);
  z.next_in = (unsigned char *)p;
  z.avail_in = (uInt)n;
  z.next_out = buf;
  z.avail_out = (uInt)cap;
  int rc = deflate(&z, Z_FINISH);
  if (rc == Z_STREAM_END) bd_buf_append(out, buf, z.total_out);
  deflateEnd(&z);
  free(buf);
  return rc == Z_STREAM_END ? 0 : -1;
}

json_t *bd_vc_status_list(const char *list_url, const char *did, const long *revoked, size_t nrevoked,
                          const char *valid_from, const bd_sign_key_t *key, const char *vm, const char *created,
                          char *err, size_t errsz) {
  unsigned char *bits = bd_calloc(BD_VC_STATUS_LIST_SIZE / 8, 1);
  for (size_t i = 0; i < nrevoked; i++)
    if (revoked[i] >= 0 && revoked[i] < BD_VC_STATUS_LIST_SIZE)
      bits[revoked[i] / 8] |= (unsigned char)(0x80u >> (revoked[i] % 8));
  bd_buf_t gz = BD_BUF_INIT;
  int rc = gzip(bits, BD_VC_STATUS_LIST_SIZE / 8, &gz);
  free(bits);
  if (rc) {
    bd_buf_free(&gz);
    snprintf(err, errsz, "the status list could not be compressed");
    return NULL;
  }
  size_t blen = sodium_base64_encoded_len(gz.len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  char *b64 = bd_malloc(blen + 1);
  b64[0] = 'u';
  sodium_bin2base64(b64 + 1, blen, (const unsigned char *)gz.data, gz.len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  bd_buf_free(&gz);
  char subject[1024];
  snprintf(subject, sizeof subject, "%s#list", list_url);
  json_t *doc = json_pack("{s:[s], s:s, s:[s,s], s:s, s:s, s:{s:s, s:s, s:s, s:s}}", "@context", VC_CONTEXT, "id",
                          list_url, "type", "VerifiableCredential", "BitstringStatusListCredential", "issuer", did,
                          "validFrom", valid_from, "credentialSubject", "id", subject, "type", "BitstringStatusList",
                          "statusPurpose", "revocation", "encodedList", b64);
  free(b64);
  if (!doc || bd_vc_prove(doc, key, vm, created, err, errsz) != 0) {
    if (!doc) snprintf(err, errsz, "the status list could not be built");
    json_decref(doc);
    return NULL;
  }
  return doc;
}

json_t *bd_vc_did_document(const char *did, const unsigned char (*pks)[32], const char *const *key_ids, size_t n) {
  json_t *vms = json_array(), *am = json_array();
  for (size_t i = 0; i < n; i++) {
    char id[600], mk[64];
    bd_vc_method(did, key_ids[i], id, sizeof id);
    bd_vc_multikey(pks[i], mk);
    json_array_append_new(vms, json_pack("{s:s, s:s, s:s, s:s}", "id", id, "type", "Multikey", "controller", did,
                                         "publicKeyMultibase", mk));
    json_array_append_new(am, json_string(id));
  }
  return json_pack("{s:[s,s], s:s, s:o, s:o}", "@context", "https://www.w3.org/ns/did/v1",
                   "https://w3id.org/security/multikey/v1", "id", did, "verificationMethod", vms, "assertionMethod",
                   am);
}

/* --- PNG baking ------------------------------------------------------------------ */

static const unsigned char k_png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
#define BAKE_KEYWORD "openbadgecredential"

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(bd_buf_t *b, uint32_t v) {
  unsigned char x[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8), (unsigned char)v};
  bd_buf_append(b, x, 4);
}

/* Offset of the IEND chunk, or 0 when the chunk structure is broken. */
static size_t png_iend(const unsigned char *p, size_t n) {
  if (n < 8 + 12 || memcmp(p, k_png_sig, 8)) return 0;
  size_t off = 8;
  while (off + 12 <= n) {
    uint32_t len = be32(p + off);
    if (len > n - off - 12) return 0;
    if (!memcmp(p + off + 4, "IEND", 4)) return off;
    off += 12 + (size_t)len;
  }
  return 0;
}

int bd_vc_bake_png(const void *png, size_t n, const char *text, size_t textlen, bd_buf_t *out, char *err,
                   size_t errsz) {
  const unsigned char *p = png;
  size_t iend = png_iend(p, n);
  if (!iend) {
    snprintf(err, errsz, "not a PNG");
    return -1;
  }
  bd_buf_append(out, p, iend);
  bd_buf_t c = BD_BUF_INIT;
  bd_buf_puts(&c, "iTXt" BAKE_KEYWORD);
  /* NUL after the keyword, compression flag 0, method 0, empty language
   * tag and translated keyword (each NUL-terminated), then the text */
  static const unsigned char hdr[5] = {0, 0, 0, 0, 0};
  bd_buf_append(&c, hdr, sizeof hdr);
  bd_buf_append(&c, text, textlen);
  put32(out, (uint32_t)(c.len - 4));
  bd_buf_append(out, c.data, c.len);
  put32(out, (uint32_t)crc32(0, (const unsigned char *)c.data, (uInt)c.len));
  bd_buf_free(&c);
  bd_buf_append(out, p + iend, n - iend);
  return 0;
}

char *bd_vc_unbake_png(const void *png, size_t n, size_t *textlen) {
  const unsigned char *p = png;
  if (!png_iend(p, n)) return NULL;
  size_t off = 8, kl = strlen(BAKE_KEYWORD);
  while (off + 12 <= n) {
    uint32_t len = be32(p + off);
    const unsigned char *d = p + off + 8;
    if (!memcmp(p + off + 4, "iTXt", 4) && len >= kl + 5 && !memcmp(d, BAKE_KEYWORD, kl) && d[kl] == 0 &&
        d[kl + 1] == 0) {
      /* skip language tag and translated keyword */
      size_t i = kl + 3;
      while (i < len && d[i]) i++;
      i++;
      while (i < len && d[i]) i++;
      i++;
      if (i > len) return NULL;
      char *t = bd_malloc(len - i + 1);
      memcpy(t, d + i, len - i);
      t[len - i] = '\0';
      if (textlen) *textlen = len - i;
      return t;
    }
    if (!memcmp(p + off + 4, "IEND", 4)) break;
    off += 12 + (size_t)len;
  }
  return NULL;
}

/* --- PDF attachment ----------------------------------------------------------------- */

/* The last occurrence of needle in [p, p + n). */
static const char *memrstr(const char *p, size_t n, const char *needle) {
  size_t k = strlen(needle);
  if (n < k) return NULL;
  for (size_t i = n - k + 1; i-- > 0;)
    if (!memcmp(p + i, needle, k)) return p + i;
  return NULL;
}

static const char *memstr(const char *p, size_t n, const char *needle) {
  size_t k = strlen(needle);
  for (size_t i = 0; i + k <= n; i++)
    if (!memcmp(p + i, needle, k)) return p + i;
  return NULL;
}

/* The value after key in a dictionary's text ("/Root 5 0 R" → 5), or -1. */
static long dict_ref(const char *d, size_t n, const char *key) {
  const char *k = memstr(d, n, key);
  if (!k) return -1;
  return strtol(k + strlen(key), NULL, 10);
}

/* Appends s as a PDF literal string. */
static void pdf_string(bd_buf_t *b, const char *s) {
  bd_buf_putc(b, '(');
  for (; *s; s++) {
    if (*s == '(' || *s == ')' || *s == '\\') bd_buf_putc(b, '\\');
    bd_buf_putc(b, *s);
  }
  bd_buf_putc(b, ')');
}

int bd_pdf_attach(const void *pdfv, size_t n, const char *filename, const char *mime, const void *data, size_t len,
                  const char *description, bd_buf_t *out, char *err, size_t errsz) {
  const char *pdf = pdfv;
  size_t tail = n > 2048 ? 2048 : n;
  const char *sx = memrstr(pdf + n - tail, tail, "startxref");
  const char *tr = sx ? memrstr(pdf, (size_t)(sx - pdf), "trailer") : NULL;
  if (n < 16 || memcmp(pdf, "%PDF-", 5) || !sx || !tr) {
    snprintf(err, errsz, "the PDF has no classic cross-reference table");
    return -1;
  }
  long prev = strtol(sx + 9, NULL, 10);
  size_t tlen = (size_t)(sx - tr);
  long size = dict_ref(tr, tlen, "/Size"), root = dict_ref(tr, tlen, "/Root"), info = dict_ref(tr, tlen, "/Info");
  if (prev <= 0 || (size_t)prev >= n || size <= 0 || root <= 0) {
    snprintf(err, errsz, "the PDF trailer lacks /Size, /Root or a cross-reference offset");
    return -1;
  }
  const char *id = memstr(tr, tlen, "/ID");
  const char *id_end = id ? memstr(id, tlen - (size_t)(id - tr), "]") : NULL;
  /* the catalog object "<root> 0 obj << ... >>": its last definition (an
   * earlier incremental update may have replaced it) */
  char head[32];
  snprintf(head, sizeof head, "\n%ld 0 obj", root);
  const char *obj = memrstr(pdf, n, head);
  const char *d = obj ? memstr(obj, n - (size_t)(obj - pdf), "<<") : NULL;
  if (!d) {
    snprintf(err, errsz, "the PDF catalog (object %ld) is not found", root);
    return -1;
  }
  int depth = 0;
  const char *e = d;
  for (; e + 1 < pdf + n; e++) {
    if (e[0] == '<' && e[1] == '<') depth++, e++;
    else if (e[0] == '>' && e[1] == '>') {
      if (--depth == 0) break;
      e++;
    }
  }
  if (depth != 0) {
    snprintf(err, errsz, "the PDF catalog does not end");
    return -1;
  }
  const char *inner = d + 2;
  size_t inner_len = (size_t)(e - inner);
  if (memstr(inner, inner_len, "/Names") || memstr(inner, inner_len, "/AF")) {
    snprintf(err, errsz, "the PDF catalog already has /Names or /AF");
    return -1;
  }
  bd_buf_append(out, pdf, n);
  if (pdf[n - 1] != '\n') bd_buf_putc(out, '\n');
  long ef = size, fs = size + 1;
  size_t off_ef = out->len;
  bd_buf_printf(out, "%ld 0 obj\n<< /Type /EmbeddedFile /Subtype /", ef);
  for (const char *m = mime; *m; m++) {
    /* a PDF name: '/' and delimiters as #xx */
    if (*m == '/' || *m == '#' || *m == '(' || *m == ')' || *m == '<' || *m == '>' || *m == '[' || *m == ']' ||
        *m == '{' || *m == '}' || *m == '%' || (unsigned char)*m <= ' ' || (unsigned char)*m > '~')
      bd_buf_printf(out, "#%02X", (unsigned char)*m);
    else
      bd_buf_putc(out, *m);
  }
  bd_buf_printf(out, " /Length %zu /Params << /Size %zu >> >>\nstream\n", len, len);
  bd_buf_append(out, data, len);
  bd_buf_puts(out, "\nendstream\nendobj\n");
  size_t off_fs = out->len;
  bd_buf_printf(out, "%ld 0 obj\n<< /Type /Filespec /F ", fs);
  pdf_string(out, filename);
  bd_buf_puts(out, " /UF ");
  pdf_string(out, filename);
  bd_buf_puts(out, " /Desc ");
  pdf_string(out, description);
  bd_buf_printf(out, " /AFRelationship /Data /EF << /F %ld 0 R /UF %ld 0 R >> >>\nendobj\n", ef, ef);
  size_t off_root = out->len;
  bd_buf_printf(out, "%ld 0 obj\n<<", root);
  bd_buf_append(out, inner, inner_len);
  bd_buf_puts(out, " /Names << /EmbeddedFiles << /Names [");
  pdf_string(out, filename);
  bd_buf_printf(out, " %ld 0 R] >> >> /AF [%ld 0 R] >>\nendobj\n", fs, fs);
  size_t off_xref = out->len;
  bd_buf_printf(out, "xref\n0 1\n0000000000 65535 f \n%ld 1\n%010zu 00000 n \n%ld 2\n%010zu 00000 n \n%010zu 00000 n \n",
                root, off_root, ef, off_ef, off_fs);
  bd_buf_printf(out, "trailer\n<< /Size %ld /Root %ld 0 R", size + 2, root);
  if (info > 0) bd_buf_printf(out, " /Info %ld 0 R", info);
  if (id && id_end) {
    bd_buf_putc(out, ' ');
    bd_buf_append(out, id, (size_t)(id_end - id) + 1);
  }
  bd_buf_printf(out, " /Prev %ld >>\nstartxref\n%zu\n%%%%EOF\n", prev, off_xref);
  return 0;
}
