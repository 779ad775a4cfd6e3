/* qr.c: payload encoding for every target type, and designs. */
#include "qr.h"

#include "util.h"

#include <cairo.h>
#include <math.h>
#include <qrencode.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>

#include "qr_internal.h"

const char *bd_qr_type_name(bd_qr_type_t t) {
  static const char *names[] = {"url", "text", "email", "sms", "phone", "wifi", "event", "vcard"};
  return (unsigned)t < BD_ARRAY_LEN(names) ? names[t] : "text";
}

static int fail(char *err, size_t errsz, const char **param, const char *p, const char *msg) {
  snprintf(err, errsz, "%s", msg);
  if (param) *param = p;
  return -1;
}

/* A string member: absent → NULL; present but not a string → error. */
static bool str_member(const json_t *o, const char *k, const char **out, size_t max) {
  json_t *v = json_object_get(o, k);
  *out = NULL;
  if (!v || json_is_null(v)) return true;
  if (!json_is_string(v) || json_string_length(v) > max) return false;
  *out = json_string_value(v);
  return true;
}

/* --- url ------------------------------------------------------------------- */

static bool valid_url(const char *u) {
  const char *rest;
  if (!strncasecmp(u, "https://", 8)) rest = u + 8;
  else if (!strncasecmp(u, "http://", 7)) rest = u + 7;
  else return false;
  if (!*rest || *rest == '/' || *rest == '?' || *rest == '#') return false;
  for (const unsigned char *p = (const unsigned char *)u; *p; p++)
    if (*p <= 0x20 || *p == 0x7f || *p == '"' || *p == '<' || *p == '>' || *p == '\\') return false;
  return true;
}

/* Appends url with the utm object merged as utm_* parameters. */
static int merge_utm(bd_buf_t *out, const char *url, const json_t *utm, char *err, size_t errsz, const char **param) {
  static const char *keys[] = {"source", "medium", "campaign", "term", "content"};
  const char *frag = strchr(url, '#');
  size_t base_len = frag ? (size_t)(frag - url) : strlen(url);
  const char *q = memchr(url, '?', base_len);
  size_t path_len = q ? (size_t)(q - url) : base_len;
  bd_buf_append(out, url, path_len);
  bool first = true;
  /* keep existing parameters, dropping the utm_* ones we replace */
  if (q) {
    const char *p = q + 1, *end = url + base_len;
    while (p < end) {
      const char *amp = memchr(p, '&', (size_t)(end - p));
      const char *se = amp ? amp : end;
      bool replaced = false;
      for (size_t i = 0; i < BD_ARRAY_LEN(keys); i++) {
        char k[24];
        int kl = snprintf(k, sizeof k, "utm_%s=", keys[i]);
        json_t *v = utm ? json_object_get(utm, keys[i]) : NULL;
        if (v && json_is_string(v) && (size_t)(se - p) >= (size_t)kl - 1 && !strncmp(p, k, (size_t)kl - 1) &&
            (p[kl - 1] == '=' || p + kl - 1 == se))
          replaced = true;
      }
      if (!replaced && se > p) {
        bd_buf_putc(out, first ? '?' : '&');
        bd_buf_append(out, p, (size_t)(se - p));
        first = false;
      }
      p = amp ? amp + 1 : end;
    }
  }
  if (utm && !json_is_null(utm)) {
    if (!json_is_object(utm)) return fail(err, errsz, param, "target.utm", "target.utm must be an object");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)utm, k, v) {
      bool known = false;
      for (size_t i = 0; i < BD_ARRAY_LEN(keys); i++) known |= !strcmp(k, keys[i]);
      if (!known) {
        snprintf(err, errsz, "target.utm.%s is not a UTM field (source, medium, campaign, term, content)", k);
        if (param) *param = "target.utm";
        return -1;
      }
      if (!json_is_null(v) && (!json_is_string(v) || json_string_length(v) > 200)) {
        snprintf(err, errsz, "target.utm.%s must be a string of at most 200 characters", k);
        if (param) *param = "target.utm";
        return -1;
      }
    }
    for (size_t i = 0; i < BD_ARRAY_LEN(keys); i++) {
      json_t *uv = json_object_get(utm, keys[i]);
      if (!json_is_string(uv) || json_string_length(uv) == 0) continue;
      bd_buf_putc(out, first ? '?' : '&');
      first = false;
      bd_buf_printf(out, "utm_%s=", keys[i]);
      bd_url_encode(out, json_string_value(uv), json_string_length(uv));
    }
  }
  if (frag) bd_buf_puts(out, frag);
  return 0;
}

/* --- text escaping ---------------------------------------------------------- */

/* WIFI: backslash before \ ; , : " */
static void wifi_escape(bd_buf_t *b, const char *s) {
  for (; *s; s++) {
    if (strchr("\\;,:\"", *s)) bd_buf_putc(b, '\\');
    bd_buf_putc(b, *s);
  }
}

/* iCalendar / vCard TEXT: backslash before \ ; , and newlines as \n */
static void ical_escape(bd_buf_t *b, const char *s) {
  for (; *s; s++) {
    if (*s == '\n') bd_buf_puts(b, "\\n");
    else if (*s == '\r') continue;
    else {
      if (*s == '\\' || *s == ';' || *s == ',') bd_buf_putc(b, '\\');
      bd_buf_putc(b, *s);
    }
  }
}

static bool valid_email(const char *e) {
  const char *at = strchr(e, '@');
  size_t n = strlen(e);
  if (!at || at == e || n > 254 || strchr(at + 1, '@')) return false;
  const char *dot = strrchr(at, '.');
  if (!dot || dot == at + 1 || !dot[1]) return false;
  for (const unsigned char *p = (const unsigned char *)e; *p; p++)
    if (*p <= 0x20 || *p == 0x7f || strchr("()<>[]\\,;:\"", *p)) return false;
  return true;
}

static bool valid_phone(const char *p) {
  int digits = 0;
  if (*p == '+') p++;
  for (; *p; p++) {
    if (*p >= '0' && *p <= '9') digits++;
    else if (!strchr(" -().", *p)) return false;
  }
  return digits >= 3 && digits <= 20;
}

/* RFC 3339 → iCalendar UTC basic format */
static bool ical_time(const char *s, char out[20]) {
  int64_t us;
  if (!bd_time_parse(s, &us)) return false;
  time_t t = (time_t)(us / 1000000);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, 20, "%Y%m%dT%H%M%SZ", &tm);
  return true;
}

/* --- payloads ---------------------------------------------------------------- */

#define MAXS 4000 /* longest accepted string field */

int bd_qr_payload(const json_t *t, bd_qr_type_t *type, bd_buf_t *out, char *err, size_t errsz, const char **param) {
  if (param) *param = "target";
  if (!json_is_object(t)) return fail(err, errsz, param, "target", "target must be an object");
  const char *dest, *text, *email, *subject, *message, *phone, *ssid, *password, *enc, *title, *location, *start,
      *end;
  if (!str_member(t, "destination", &dest, 2048)) return fail(err, errsz, param, "target.destination", "target.destination must be a string of at most 2048 characters");
  if (!str_member(t, "text", &text, MAXS)) return fail(err, errsz, param, "target.text", "target.text must be a string of at most 4000 characters");
  if (!str_member(t, "email", &email, 254)) return fail(err, errsz, param, "target.email", "target.email must be a string");
  if (!str_member(t, "subject", &subject, 500)) return fail(err, errsz, param, "target.subject", "target.subject must be a string of at most 500 characters");
  if (!str_member(t, "message", &message, 2000)) return fail(err, errsz, param, "target.message", "target.message must be a string of at most 2000 characters");
  if (!str_member(t, "phone", &phone, 40)) return fail(err, errsz, param, "target.phone", "target.phone must be a string");
  if (!str_member(t, "ssid", &ssid, 64)) return fail(err, errsz, param, "target.ssid", "target.ssid must be a string of at most 64 characters");
  if (!str_member(t, "password", &password, 128)) return fail(err, errsz, param, "target.password", "target.password must be a string of at most 128 characters");
  if (!str_member(t, "encryption", &enc, 10)) return fail(err, errsz, param, "target.encryption", "target.encryption must be WPA, WEP or nopass");
  if (!str_member(t, "title", &title, 500)) return fail(err, errsz, param, "target.title", "target.title must be a string of at most 500 characters");
  if (!str_member(t, "location", &location, 500)) return fail(err, errsz, param, "target.location", "target.location must be a string of at most 500 characters");
  if (!str_member(t, "start", &start, 40)) return fail(err, errsz, param, "target.start", "target.start must be an RFC 3339 timestamp");
  if (!str_member(t, "end", &end, 40)) return fail(err, errsz, param, "target.end", "target.end must be an RFC 3339 timestamp");
  json_t *vcard = json_object_get(t, "vcard");

  if (dest) {
    *type = BD_QR_TYPE_URL;
    if (!valid_url(dest))
      return fail(err, errsz, param, "target.destination", "target.destination must be an absolute http(s) URL");
    return merge_utm(out, dest, json_object_get(t, "utm"), err, errsz, param);
  }
  if (vcard && !json_is_null(vcard)) {
    *type = BD_QR_TYPE_VCARD;
    if (!json_is_object(vcard)) return fail(err, errsz, param, "target.vcard", "target.vcard must be an object");
    static const char *keys[] = {"first_name", "last_name", "organization", "title", "phone", "email", "url", "address"};
    const char *v[8];
    for (int i = 0; i < 8; i++)
      if (!str_member(vcard, keys[i], &v[i], 500)) {
        snprintf(err, errsz, "target.vcard.%s must be a string of at most 500 characters", keys[i]);
        if (param) *param = "target.vcard";
        return -1;
      }
    if (!v[0] && !v[1] && !v[2])
      return fail(err, errsz, param, "target.vcard", "target.vcard needs first_name, last_name or organization");
    if (v[5] && !valid_email(v[5])) return fail(err, errsz, param, "target.vcard.email", "target.vcard.email is not a valid e-mail address");
    bd_buf_puts(out, "BEGIN:VCARD\r\nVERSION:3.0\r\nN:");
    ical_escape(out, v[1] ? v[1] : "");
    bd_buf_putc(out, ';');
    ical_escape(out, v[0] ? v[0] : "");
    bd_buf_puts(out, ";;;\r\nFN:");
    if (v[0] || v[1]) {
      ical_escape(out, v[0] ? v[0] : "");
      if (v[0] && v[1]) bd_buf_putc(out, ' ');
      ical_escape(out, v[1] ? v[1] : "");
    } else {
      ical_escape(out, v[2]);
    }
    bd_buf_puts(out, "\r\n");
    static const char *props[] = {NULL, NULL, "ORG:", "TITLE:", "TEL:", "EMAIL:", "URL:", "ADR:;;"};
    for (int i = 2; i < 8; i++)
      if (v[i]) {
        bd_buf_puts(out, props[i]);
        ical_escape(out, v[i]);
        if (i == 7) bd_buf_puts(out, ";;;;");
        bd_buf_puts(out, "\r\n");
      }
    bd_buf_puts(out, "END:VCARD");
    return 0;
  }
  if (ssid) {
    *type = BD_QR_TYPE_WIFI;
    if (!*ssid) return fail(err, errsz, param, "target.ssid", "target.ssid must not be empty");
    const char *e = enc ? enc : (password && *password ? "WPA" : "nopass");
    if (strcmp(e, "WPA") && strcmp(e, "WEP") && strcmp(e, "nopass"))
      return fail(err, errsz, param, "target.encryption", "target.encryption must be WPA, WEP or nopass");
    if (strcmp(e, "nopass") && !(password && *password))
      return fail(err, errsz, param, "target.password", "target.password is required for WPA or WEP networks");
    json_t *hidden = json_object_get(t, "hidden");
    if (hidden && !json_is_boolean(hidden)) return fail(err, errsz, param, "target.hidden", "target.hidden must be a boolean");
    bd_buf_printf(out, "WIFI:T:%s;S:", e);
    wifi_escape(out, ssid);
    bd_buf_puts(out, ";");
    if (strcmp(e, "nopass")) {
      bd_buf_puts(out, "P:");
      wifi_escape(out, password);
      bd_buf_puts(out, ";");
    }
    if (json_is_true(hidden)) bd_buf_puts(out, "H:true;");
    bd_buf_puts(out, ";");
    return 0;
  }
  if (email) {
    *type = BD_QR_TYPE_EMAIL;
    if (!valid_email(email)) return fail(err, errsz, param, "target.email", "target.email is not a valid e-mail address");
    bd_buf_puts(out, "mailto:");
    bd_buf_puts(out, email);
    char sep = '?';
    if (subject && *subject) {
      bd_buf_printf(out, "%csubject=", sep);
      bd_url_encode(out, subject, strlen(subject));
      sep = '&';
    }
    if (message && *message) {
      bd_buf_printf(out, "%cbody=", sep);
      bd_url_encode(out, message, strlen(message));
    }
    return 0;
  }
  if (phone) {
    if (!valid_phone(phone)) {
      *type = message ? BD_QR_TYPE_SMS : BD_QR_TYPE_PHONE;
      return fail(err, errsz, param, "target.phone", "target.phone is not a valid phone number");
    }
    if (message) {
      *type = BD_QR_TYPE_SMS;
      bd_buf_printf(out, "SMSTO:%s:%s", phone, message);
    } else {
      *type = BD_QR_TYPE_PHONE;
      bd_buf_printf(out, "tel:%s", phone);
    }
    return 0;
  }
  if (title || location || start || end) {
    *type = BD_QR_TYPE_EVENT;
    if (!title || !*title) return fail(err, errsz, param, "target.title", "target.title is required for an event");
    char ts[20], te[20];
    if (!start || !ical_time(start, ts))
      return fail(err, errsz, param, "target.start", "target.start is required: an RFC 3339 timestamp");
    if (end && !ical_time(end, te)) return fail(err, errsz, param, "target.end", "target.end must be an RFC 3339 timestamp");
    if (end && strcmp(te, ts) < 0) return fail(err, errsz, param, "target.end", "target.end is before target.start");
    bd_buf_puts(out, "BEGIN:VEVENT\r\nSUMMARY:");
    ical_escape(out, title);
    bd_buf_puts(out, "\r\n");
    if (location) {
      bd_buf_puts(out, "LOCATION:");
      ical_escape(out, location);
      bd_buf_puts(out, "\r\n");
    }
    bd_buf_printf(out, "DTSTART:%s\r\n", ts);
    if (end) bd_buf_printf(out, "DTEND:%s\r\n", te);
    bd_buf_puts(out, "END:VEVENT");
    return 0;
  }
  if (text) {
    *type = BD_QR_TYPE_TEXT;
    if (!*text) return fail(err, errsz, param, "target.text", "target.text must not be empty");
    bd_buf_puts(out, text);
    return 0;
  }
  *type = BD_QR_TYPE_TEXT;
  return fail(err, errsz, param, "target",
              "target needs one of destination, text, email, phone, ssid, title/start or vcard");
}

/* --- designs ---------------------------------------------------------------- */

static const char *k_gradients[] = {"linear-top-to-bottom", "linear-left-to-right", "diagonal", "radial"};
static const char *k_body[] = {"square", "rounded", "dots"};
static const char *k_eye[] = {"square", "rounded", "circle"};

static bool parse_color(const char *s, uint32_t *rgb) {
  if (!s || s[0] != '#') return false;
  size_t n = strlen(s + 1);
  unsigned v = 0;
  for (size_t i = 1; i <= n; i++) {
    char c = s[i];
    int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
    if (d < 0) return false;
    v = v * 16 + (unsigned)d;
  }
  if (n == 6) *rgb = v;
  else if (n == 3) *rgb = ((v >> 8) & 0xF) * 0x110000 + ((v >> 4) & 0xF) * 0x1100 + (v & 0xF) * 0x11;
  else return false;
  return true;
}

static double lin(double c) { return c <= 0.03928 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4); }

static double luminance(uint32_t rgb) {
  return 0.2126 * lin(((rgb >> 16) & 255) / 255.0) + 0.7152 * lin(((rgb >> 8) & 255) / 255.0) +
         0.0722 * lin((rgb & 255) / 255.0);
}

static double contrast(uint32_t a, uint32_t b) {
  double la = luminance(a), lb = luminance(b);
  return la > lb ? (la + 0.05) / (lb + 0.05) : (lb + 0.05) / (la + 0.05);
}

static int enum_index(const char *v, const char **names, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (v && !strcmp(v, names[i])) return (int)i;
  return -1;
}

static const char *color_str(uint32_t rgb, char buf[8]) {
  snprintf(buf, 8, "#%06x", rgb & 0xFFFFFF);
  return buf;
}

static bd_qr_design_t *dfail(bd_qr_design_t *d, char *err, size_t errsz, const char **param, const char *p,
                             const char *msg) {
  bd_qr_design_free(d);
  fail(err, errsz, param, p, msg);
  return NULL;
}

/* Reads a colour member; *set says whether it was given. */
static bool color_member(const json_t *o, const char *k, uint32_t *rgb, bool *set) {
  json_t *v = o ? json_object_get(o, k) : NULL;
  if (set) *set = false;
  if (!v || json_is_null(v)) return true;
  if (!json_is_string(v) || !parse_color(json_string_value(v), rgb)) return false;
  if (set) *set = true;
  return true;
}

bd_qr_design_t *bd_qr_design_parse(const json_t *j, char *err, size_t errsz, const char **param) {
  bd_qr_design_t *d = bd_calloc(1, sizeof *d);
  d->ec = 'M';
  d->fg = 0x000000;
  d->bg = 0xFFFFFF;
  d->logo_size = 0.2;
  if (param) *param = NULL;
  if (!j || json_is_null(j)) return d;
  if (!json_is_object(j)) return dfail(d, err, errsz, param, "design", "design must be an object");
  static const char *known[] = {"error_correction", "colors", "gradient", "shapes", "eye_colors", "logo",
                                "transparent_background"};
  const char *key;
  json_t *val;
  json_object_foreach((json_t *)j, key, val) {
    if (enum_index(key, known, BD_ARRAY_LEN(known)) < 0) {
      snprintf(err, errsz, "design.%s is not a design field", key);
      if (param) *param = "design";
      bd_qr_design_free(d);
      return NULL;
    }
  }
  json_t *ec = json_object_get(j, "error_correction");
  if (ec && !json_is_null(ec)) {
    const char *e = json_string_value(ec);
    if (!e || strlen(e) != 1 || !strchr("LMQH", e[0]))
      return dfail(d, err, errsz, param, "design.error_correction", "design.error_correction must be L, M, Q or H");
    d->ec = e[0];
  }
  json_t *colors = json_object_get(j, "colors");
  if (colors && !json_is_null(colors) && !json_is_object(colors))
    return dfail(d, err, errsz, param, "design.colors", "design.colors must be an object");
  if (!color_member(colors, "foreground", &d->fg, NULL))
    return dfail(d, err, errsz, param, "design.colors.foreground", "design.colors.foreground must be a #rrggbb colour");
  if (!color_member(colors, "background", &d->bg, NULL))
    return dfail(d, err, errsz, param, "design.colors.background", "design.colors.background must be a #rrggbb colour");
  json_t *g = json_object_get(j, "gradient");
  if (g && !json_is_null(g)) {
    if (!json_is_object(g)) return dfail(d, err, errsz, param, "design.gradient", "design.gradient must be an object");
    bool s1, s2;
    if (!color_member(g, "start", &d->grad_start, &s1) || !s1)
      return dfail(d, err, errsz, param, "design.gradient.start", "design.gradient.start must be a #rrggbb colour");
    if (!color_member(g, "end", &d->grad_end, &s2) || !s2)
      return dfail(d, err, errsz, param, "design.gradient.end", "design.gradient.end must be a #rrggbb colour");
    json_t *ty = json_object_get(g, "type");
    int gi = ty && !json_is_null(ty) ? enum_index(json_string_value(ty), k_gradients, 4) : 0;
    if (gi < 0)
      return dfail(d, err, errsz, param, "design.gradient.type",
                   "design.gradient.type must be linear-top-to-bottom, linear-left-to-right, diagonal or radial");
    d->gradient = gi + 1;
  }
  json_t *sh = json_object_get(j, "shapes");
  if (sh && !json_is_null(sh)) {
    if (!json_is_object(sh)) return dfail(d, err, errsz, param, "design.shapes", "design.shapes must be an object");
    json_t *v;
    if ((v = json_object_get(sh, "body")) && !json_is_null(v) && (d->body = enum_index(json_string_value(v), k_body, 3)) < 0)
      return dfail(d, err, errsz, param, "design.shapes.body", "design.shapes.body must be square, rounded or dots");
    if ((v = json_object_get(sh, "eye_frame")) && !json_is_null(v) &&
        (d->eye_frame = enum_index(json_string_value(v), k_eye, 3)) < 0)
      return dfail(d, err, errsz, param, "design.shapes.eye_frame", "design.shapes.eye_frame must be square, rounded or circle");
    if ((v = json_object_get(sh, "eye_ball")) && !json_is_null(v) &&
        (d->eye_ball = enum_index(json_string_value(v), k_eye, 3)) < 0)
      return dfail(d, err, errsz, param, "design.shapes.eye_ball", "design.shapes.eye_ball must be square, rounded or circle");
  }
  json_t *eyes = json_object_get(j, "eye_colors");
  if (eyes && !json_is_null(eyes)) {
    if (!json_is_object(eyes)) return dfail(d, err, errsz, param, "design.eye_colors", "design.eye_colors must be an object");
    if (!color_member(eyes, "frame", &d->eye_frame_color, &d->has_eye_frame_color))
      return dfail(d, err, errsz, param, "design.eye_colors.frame", "design.eye_colors.frame must be a #rrggbb colour");
    if (!color_member(eyes, "ball", &d->eye_ball_color, &d->has_eye_ball_color))
      return dfail(d, err, errsz, param, "design.eye_colors.ball", "design.eye_colors.ball must be a #rrggbb colour");
  }
  json_t *tb = json_object_get(j, "transparent_background");
  if (tb && !json_is_null(tb)) {
    if (!json_is_boolean(tb))
      return dfail(d, err, errsz, param, "design.transparent_background", "design.transparent_background must be a boolean");
    d->transparent = json_is_true(tb);
  }
  json_t *logo = json_object_get(j, "logo");
  if (logo && !json_is_null(logo)) {
    if (!json_is_object(logo)) return dfail(d, err, errsz, param, "design.logo", "design.logo must be an object");
    const char *url = json_string_value(json_object_get(logo, "url"));
    if (!url) return dfail(d, err, errsz, param, "design.logo.url", "design.logo.url is required");
    if (strncmp(url, "data:", 5) != 0)
      return dfail(d, err, errsz, param, "design.logo.url",
                   "design.logo.url must be a data: URL (remote logos need an allowlist, which is not configured)");
    const char *comma = strchr(url, ',');
    if (!comma || !strstr(url, ";base64") || (size_t)(comma - url) > 64)
      return dfail(d, err, errsz, param, "design.logo.url", "design.logo.url must be a base64 data: URL");
    int kind = !strncmp(url + 5, "image/png;", 10)                                      ? BD_QR_LOGO_PNG
               : !strncmp(url + 5, "image/jpeg;", 11) || !strncmp(url + 5, "image/jpg;", 10) ? BD_QR_LOGO_JPEG
               : !strncmp(url + 5, "image/svg+xml;", 14)                                     ? BD_QR_LOGO_SVG
                                                                                             : 0;
    if (!kind)
      return dfail(d, err, errsz, param, "design.logo.url", "design.logo.url must be a PNG, JPEG or SVG image");
    bd_buf_t png = BD_BUF_INIT;
    if (!bd_b64_decode(&png, comma + 1, strlen(comma + 1)) || png.len > 1024 * 1024 ||
        !bd_qr_logo_probe(kind, (unsigned char *)png.data, png.len)) {
      bd_buf_free(&png);
      return dfail(d, err, errsz, param, "design.logo.url",
                   "design.logo.url must hold a valid PNG, JPEG or SVG image of at most 1 MiB (2048x2048 pixels)");
    }
    d->logo_kind = kind;
    d->logo = (unsigned char *)bd_buf_detach(&png, &d->logo_len);
    d->logo_url = bd_strdup(url);
    json_t *cb = json_object_get(logo, "clear_background");
    if (cb && !json_is_null(cb) && !json_is_boolean(cb))
      return dfail(d, err, errsz, param, "design.logo.clear_background", "design.logo.clear_background must be a boolean");
    d->clear_background = json_is_true(cb);
    json_t *sz = json_object_get(logo, "size");
    if (sz && !json_is_null(sz)) {
      if (!json_is_number(sz) || json_number_value(sz) < 0.05 || json_number_value(sz) > 0.4)
        return dfail(d, err, errsz, param, "design.logo.size", "design.logo.size must be a fraction between 0.05 and 0.4");
      d->logo_size = json_number_value(sz);
    }
    double max = d->ec == 'L' ? 0 : d->ec == 'M' ? 0.15 : d->ec == 'Q' ? 0.20 : 0.25;
    if (d->logo_size > max + 1e-9) {
      char msg[200];
      if (max == 0)
        snprintf(msg, sizeof msg, "a logo needs error correction M, Q or H (L cannot absorb it)");
      else
        snprintf(msg, sizeof msg, "the logo is too large for error correction %c: at most %.0f%% of the code's width",
                 d->ec, max * 100);
      return dfail(d, err, errsz, param, "design.logo", msg);
    }
  }
  /* scannability: every dark colour against the background */
  struct {
    uint32_t c;
    bool on;
    const char *p;
  } darks[] = {{d->fg, !d->gradient, "design.colors.foreground"},
               {d->grad_start, d->gradient != 0, "design.gradient.start"},
               {d->grad_end, d->gradient != 0, "design.gradient.end"},
               {d->eye_frame_color, d->has_eye_frame_color, "design.eye_colors.frame"},
               {d->eye_ball_color, d->has_eye_ball_color, "design.eye_colors.ball"}};
  for (size_t i = 0; i < BD_ARRAY_LEN(darks); i++) {
    if (!darks[i].on) continue;
    char msg[200], a[8], b[8];
    if (luminance(darks[i].c) >= luminance(d->bg)) {
      snprintf(msg, sizeof msg, "%s (%s) must be darker than the background (%s): inverted codes do not scan on many readers",
               darks[i].p, color_str(darks[i].c, a), color_str(d->bg, b));
      return dfail(d, err, errsz, param, darks[i].p, msg);
    }
    double cr = contrast(darks[i].c, d->bg);
    if (cr < 3.0) {
      snprintf(msg, sizeof msg, "%s (%s) has too little contrast with the background (%s): %.2f:1, at least 3:1 is needed",
               darks[i].p, color_str(darks[i].c, a), color_str(d->bg, b), cr);
      bd_qr_design_free(d);
      snprintf(err, errsz, "%s", msg);
      if (param) *param = darks[i].p;
      return NULL;
    }
  }
  return d;
}

bd_qr_design_t *bd_qr_design_copy(const bd_qr_design_t *s) {
  bd_qr_design_t *d = bd_malloc(sizeof *d);
  *d = *s;
  if (s->logo) {
    d->logo = bd_malloc(s->logo_len);
    memcpy(d->logo, s->logo, s->logo_len);
    d->logo_url = bd_strdup(s->logo_url);
  }
  return d;
}

void bd_qr_design_free(bd_qr_design_t *d) {
  if (!d) return;
  free(d->logo);
  free(d->logo_url);
  free(d);
}

char bd_qr_design_ec(const bd_qr_design_t *d) { return d->ec; }

json_t *bd_qr_design_to_json(const bd_qr_design_t *d) {
  char a[8], b[8];
  json_t *j = json_object();
  char ec[2] = {d->ec, 0};
  json_object_set_new(j, "error_correction", json_string(ec));
  json_object_set_new(j, "colors", json_pack("{s:s, s:s}", "foreground", color_str(d->fg, a), "background",
                                             color_str(d->bg, b)));
  if (d->gradient)
    json_object_set_new(j, "gradient", json_pack("{s:s, s:s, s:s}", "start", color_str(d->grad_start, a), "end",
                                                 color_str(d->grad_end, b), "type", k_gradients[d->gradient - 1]));
  json_object_set_new(j, "shapes", json_pack("{s:s, s:s, s:s}", "body", k_body[d->body], "eye_frame",
                                             k_eye[d->eye_frame], "eye_ball", k_eye[d->eye_ball]));
  if (d->has_eye_frame_color || d->has_eye_ball_color) {
    json_t *e = json_object();
    if (d->has_eye_frame_color) json_object_set_new(e, "frame", json_string(color_str(d->eye_frame_color, a)));
    if (d->has_eye_ball_color) json_object_set_new(e, "ball", json_string(color_str(d->eye_ball_color, a)));
    json_object_set_new(j, "eye_colors", e);
  }
  if (d->logo)
    json_object_set_new(j, "logo", json_pack("{s:s, s:b, s:f}", "url", d->logo_url, "clear_background",
                                             d->clear_background, "size", d->logo_size));
  json_object_set_new(j, "transparent_background", json_boolean(d->transparent));
  return j;
}

QRecLevel bd_qr_level(char ec) {
  return ec == 'L' ? QR_ECLEVEL_L : ec == 'Q' ? QR_ECLEVEL_Q : ec == 'H' ? QR_ECLEVEL_H : QR_ECLEVEL_M;
}

bool bd_qr_fits(const char *payload, const bd_qr_design_t *d) {
  /* byte-mode capacity of version 40 */
  size_t n = strlen(payload);
  size_t cap = d->ec == 'L' ? 2953 : d->ec == 'M' ? 2331 : d->ec == 'Q' ? 1663 : 1273;
  return n > 0 && n <= cap;
}
