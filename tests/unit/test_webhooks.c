/* test_webhooks.c: webhook signatures (the Standard Webhooks vector, the hex
 * HMAC), the SSRF address rule and the URL rules. */
#include "app.h"
#include "unit.h"
#include "webhooks.h"

#include <arpa/inet.h>
#include <sodium.h>

/* The vector of the Standard Webhooks reference library's tests
 * (libraries/javascript/src/webhook.test.ts, "sign function works"). The
 * secret's key is the base64 after "whsec_" (24 bytes here; ours are 32). */
static void test_standard_webhooks_vector(void) {
  unsigned char key[64];
  size_t keylen = 0;
  const char *b64 = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  CHECK(sodium_base642bin(key, sizeof key, b64, strlen(b64), NULL, &keylen, NULL, sodium_base64_VARIANT_ORIGINAL) ==
        0);
  CHECK_INT(keylen, 24);
  const char *body = "{\"test\": 2432232314}";
  char sig[BD_WEBHOOK_SIG_MAX];
  bd_webhook_sign_std(key, keylen, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, strlen(body), sig);
  CHECK_STR(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
  /* any change to id, timestamp or body changes it */
  bd_webhook_sign_std(key, keylen, "msg_p5jXN8AQM9LWM0D4loKWxJel", 1614265330, body, strlen(body), sig);
  CHECK(strcmp(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=") != 0);
  bd_webhook_sign_std(key, keylen, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265331, body, strlen(body), sig);
  CHECK(strcmp(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=") != 0);
  bd_webhook_sign_std(key, keylen, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, strlen(body) - 1, sig);
  CHECK(strcmp(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=") != 0);
  /* a 32-byte key gives the full-length form */
  unsigned char k32[32] = {0};
  bd_webhook_sign_std(k32, sizeof k32, "evt_1", 1, "{}", 2, sig);
  CHECK_INT(strlen(sig), 3 + 44);
  CHECK(!strncmp(sig, "v1,", 3));
}

/* X-Webhook-Signature: hex HMAC-SHA256 of the body (RFC 4231 test case 2). */
static void test_hex_signature(void) {
  char hex[65];
  const char *data = "what do ya want for nothing?";
  bd_webhook_sign_hex((const unsigned char *)"Jefe", 4, data, strlen(data), hex);
  CHECK_STR(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  /* RFC 4231 test case 1: key 0x0b x 20, "Hi There" */
  unsigned char k[20];
  memset(k, 0x0b, sizeof k);
  bd_webhook_sign_hex(k, sizeof k, "Hi There", 8, hex);
  CHECK_STR(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
}

static bool forbidden(const char *text) {
  unsigned char a[16];
  if (inet_pton(AF_INET, text, a) == 1) return bd_webhook_addr_forbidden(a, 4);
  if (inet_pton(AF_INET6, text, a) == 1) return bd_webhook_addr_forbidden(a, 16);
  fprintf(stderr, "  not an address: %s\n", text);
  return false;
}

static void test_forbidden_addresses(void) {
  static const char *const refused[] = {
      "127.0.0.1", "127.255.0.9", "0.0.0.0", "10.0.0.1", "10.255.255.255", "172.16.0.1", "172.20.1.1",
      "172.31.255.255", "192.168.0.1", "192.168.255.254", "169.254.169.254", "169.254.0.1", "100.64.0.1",
      "100.127.255.255", "224.0.0.1", "239.255.255.250", "255.255.255.255", "::1", "::", "fe80::1",
      "febf::1", "fc00::1", "fd12:3456::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.1.2.3",
      "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "2001:db8::1",
  };
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
    if (!forbidden(refused[i])) fprintf(stderr, "  allowed but should not be: %s\n", refused[i]);
    CHECK(forbidden(refused[i]));
  }
  static const char *const allowed[] = {
      "8.8.8.8", "1.1.1.1", "172.15.255.255", "172.32.0.1", "192.169.0.1", "100.63.255.255", "100.128.0.1",
      "169.253.0.1", "11.0.0.1", "223.255.255.255", "2606:4700::", "2606:4700:4700::1111", "2a00:1450::1",
      "::ffff:8.8.8.8", "64:ff9b::808:808",
  };
  for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
    if (forbidden(allowed[i])) fprintf(stderr, "  refused but should not be: %s\n", allowed[i]);
    CHECK(!forbidden(allowed[i]));
  }
  unsigned char a[8] = {0};
  CHECK(bd_webhook_addr_forbidden(a, 8)); /* not an address length */
}

static void test_url_rules(void) {
  bd_app.cfg.webhook_allow_http = 0;
  bd_app.cfg.webhook_allow_private = 0;
  CHECK(bd_webhook_url_problem("https://hooks.example.com/batchd") == NULL);
  CHECK(bd_webhook_url_problem("https://hooks.example.com:8443/a?b=c") == NULL);
  CHECK(bd_webhook_url_problem("HTTPS://Hooks.Example.com") == NULL);
  CHECK(bd_webhook_url_problem("https://[2606:4700::1]/x") == NULL);
  CHECK(bd_webhook_url_problem("https://8.8.8.8/x") == NULL);
  CHECK_STR(bd_webhook_url_problem("http://hooks.example.com/x"), "url must be https");
  CHECK(bd_webhook_url_problem("") != NULL);
  CHECK(bd_webhook_url_problem("ftp://example.com/") != NULL);
  CHECK(bd_webhook_url_problem("hooks.example.com/x") != NULL);
  CHECK(bd_webhook_url_problem("https://") != NULL);
  CHECK(bd_webhook_url_problem("https:///path") != NULL);
  CHECK(bd_webhook_url_problem("https://user:pw@example.com/") != NULL);
  CHECK(bd_webhook_url_problem("https://example.com/#frag") != NULL);
  CHECK(bd_webhook_url_problem("https://exa mple.com/") != NULL);
  CHECK(bd_webhook_url_problem("https://example.com/\r\nX: y") != NULL);
  CHECK(bd_webhook_url_problem("https://[::1/") != NULL);
  static const char *const private_urls[] = {
      "https://127.0.0.1/x", "https://10.1.2.3/", "https://172.16.0.1:8443/", "https://192.168.1.1/",
      "https://169.254.169.254/latest/meta-data/", "https://100.64.0.1/", "https://[::1]/", "https://[fe80::1]/",
      "https://[fc00::1]/", "https://[::ffff:127.0.0.1]/", "https://224.0.0.1/", "https://localhost/",
      "https://localhost:8080/", "https://LOCALHOST/", "https://api.localhost/",
  };
  for (size_t i = 0; i < sizeof private_urls / sizeof private_urls[0]; i++) {
    const char *p = bd_webhook_url_problem(private_urls[i]);
    if (!p) fprintf(stderr, "  accepted: %s\n", private_urls[i]);
    CHECK(p != NULL);
  }
  char longurl[2100] = "https://example.com/";
  memset(longurl + strlen(longurl), 'a', 2060 - strlen(longurl));
  longurl[2060] = '\0';
  CHECK(bd_webhook_url_problem(longurl) != NULL);
  /* the settings open them up */
  bd_app.cfg.webhook_allow_http = 1;
  CHECK(bd_webhook_url_problem("http://hooks.example.com/x") == NULL);
  CHECK(bd_webhook_url_problem("http://127.0.0.1:9000/x") != NULL); /* still private */
  bd_app.cfg.webhook_allow_private = 1;
  CHECK(bd_webhook_url_problem("http://127.0.0.1:9000/x") == NULL);
  CHECK(bd_webhook_url_problem("https://localhost/") == NULL);
  CHECK(bd_webhook_url_problem("https://[::1]:8443/") == NULL);
  CHECK(bd_webhook_url_problem("https://user@127.0.0.1/") != NULL); /* credentials: never */
  bd_app.cfg.webhook_allow_http = 0;
  CHECK_STR(bd_webhook_url_problem("http://127.0.0.1:9000/x"), "url must be https");
  bd_app.cfg.webhook_allow_private = 0;
}

int main(void) {
  if (sodium_init() < 0) return 1;
  RUN(test_standard_webhooks_vector);
  RUN(test_hex_signature);
  RUN(test_forbidden_addresses);
  RUN(test_url_rules);
  UNIT_DONE();
}
