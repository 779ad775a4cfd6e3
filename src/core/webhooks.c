/* webhooks.c: signed webhooks (webhooks.h): secrets, URL rules. */
#include "webhooks.h"

#include "app.h"
#include "keyfile.h"
#include "util.h"

#include <arpa/inet.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define KEY_PREFIX "batchd-webhook-key-v1 "

static unsigned char g_seal_key[32];
static bool g_have_key;

int bd_webhook_key_load(char *err, size_t errsz) {
  if (g_have_key) return 0;
  if (bd_keyfile_load_or_create(bd_app.cfg.webhook_key_file, KEY_PREFIX, "webhook key file", g_seal_key, err,
                                errsz) != 0)
    return -1;
  g_have_key = true;
  return 0;
}

int bd_webhook_secret_new(char secret[BD_WEBHOOK_SECRET_MAX], bd_buf_t *sealed_hex, char *err, size_t errsz) {
  if (bd_webhook_key_load(err, errsz) != 0) return -1;
  unsigned char raw[32];
  randombytes_buf(raw, sizeof raw);
  memcpy(secret, "whsec_", 6);
  sodium_bin2base64(secret + 6, BD_WEBHOOK_SECRET_MAX - 6, raw, sizeof raw, sodium_base64_VARIANT_ORIGINAL);
  /* sealed: nonce || secretbox(raw) */
  unsigned char box[crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + 32];
  randombytes_buf(box, crypto_secretbox_NONCEBYTES);
  crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES, raw, sizeof raw, box, g_seal_key);
  sodium_memzero(raw, sizeof raw);
  char hex[2 * sizeof box + 1];
  sodium_bin2hex(hex, sizeof hex, box, sizeof box);
  bd_buf_puts(sealed_hex, "\\x");
  bd_buf_puts(sealed_hex, hex);
  return 0;
}

int bd_webhook_secret_key(const void *sealed, size_t n, unsigned char key[32]) {
  char err[256];
  if (bd_webhook_key_load(err, sizeof err) != 0) return -1;
  if (n != crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + 32) return -1;
  const unsigned char *p = sealed;
  return crypto_secretbox_open_easy(key, p + crypto_secretbox_NONCEBYTES, n - crypto_secretbox_NONCEBYTES, p,
                                    g_seal_key) == 0
             ? 0
             : -1;
}

bool bd_webhook_addr_forbidden(const unsigned char *a, size_t len) {
  if (len == 16) {
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (!memcmp(a, mapped, 12)) return bd_webhook_addr_forbidden(a + 12, 4);
    static const unsigned char zero[16] = {0};
    if (!memcmp(a, zero, 15) && (a[15] == 0 || a[15] == 1)) return true; /* :: and ::1 */
    if ((a[0] & 0xfe) == 0xfc) return true;                               /* fc00::/7 unique local */
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) return true;               /* fe80::/10 link-local */
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0) return true;               /* fec0::/10 site-local (deprecated) */
    if (a[0] == 0xff) return true;                                        /* multicast */
    if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8) return true; /* documentation */
    if (a[0] == 0x00 && a[1] == 0x64 && a[2] == 0xff && a[3] == 0x9b)    /* NAT64 of a forbidden v4 */
      return bd_webhook_addr_forbidden(a + 12, 4);
    return false;
  }
  if (len != 4) return true;
  if (a[0] == 0 || a[0] == 10 || a[0] == 127) return true;         /* this network, private, loopback */
  if (a[0] == 169 && a[1] == 254) return true;                      /* link-local (cloud metadata) */
  if (a[0] == 172 && (a[1] & 0xf0) == 16) return true;              /* 172.16/12 */
  if (a[0] == 192 && a[1] == 168) return true;                      /* 192.168/16 */
  if (a[0] == 100 && (a[1] & 0xc0) == 64) return true;              /* 100.64/10 CGNAT */
  if (a[0] == 192 && a[1] == 0 && (a[2] == 0 || a[2] == 2)) return true; /* 192.0.0/24, TEST-NET-1 */
  if (a[0] == 198 && (a[1] & 0xfe) == 18) return true;              /* 198.18/15 benchmarking */
  if (a[0] >= 224) return true;                                     /* multicast, reserved, broadcast */
  return false;
}

const char *bd_webhook_url_problem(const char *url) {
  size_t n = strlen(url);
  if (n == 0) return "url is required";
  if (n > 2048) return "url must be at most 2048 characters";
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)url[i] <= ' ' || (unsigned char)url[i] >= 0x7f) return "url must not contain spaces or control characters";
  const char *rest;
  if (!strncasecmp(url, "https://", 8)) rest = url + 8;
  else if (!strncasecmp(url, "http://", 7)) {
    if (!bd_app.cfg.webhook_allow_http) return "url must be https";
    rest = url + 7;
  } else {
    return "url must be an absolute http(s) URL";
  }
  if (strchr(url, '#')) return "url must not have a fragment";
  size_t alen = strcspn(rest, "/?");
  if (alen == 0) return "url has no host";
  if (memchr(rest, '@', alen)) return "url must not carry a user name or password";
  char host[300];
  if (alen >= sizeof host) return "url host is too long";
  memcpy(host, rest, alen);
  host[alen] = '\0';
  /* strip the port; IPv6 literals are [..] */
  char *h = host;
  if (*h == '[') {
    char *e = strchr(h, ']');
    if (!e) return "url host is malformed";
    *e = '\0';
    h++;
  } else {
    char *c = strrchr(h, ':');
    if (c) *c = '\0';
  }
  if (!*h) return "url has no host";
  if (!bd_app.cfg.webhook_allow_private) {
    unsigned char a[16];
    if ((inet_pton(AF_INET, h, a) == 1 && bd_webhook_addr_forbidden(a, 4)) ||
        (inet_pton(AF_INET6, h, a) == 1 && bd_webhook_addr_forbidden(a, 16)))
      return "url must not point at a loopback, private, link-local or multicast address";
    if (!strcasecmp(h, "localhost") || (strlen(h) > 10 && !strcasecmp(h + strlen(h) - 10, ".localhost")))
      return "url must not point at a loopback, private, link-local or multicast address";
  }
  return NULL;
}
