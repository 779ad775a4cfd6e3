/* business_email.c: certificates e-mailed to their recipients (issue 26).
 *
 * The queue and the outcomes are SQL (030_business_email.sql): a batch
 * created with notify_recipients queues a 'business.certificate' message
 * (core/mail.h) in the transaction that marks each certificate generated.
 * Here: the composer of those messages, the template's `email` block and
 * the batch's notify_recipients field (their validation), and
 * POST /business/certificates/{id}/resend.
 *
 * COMPOSING (mail.h calls bd_biz_email_compose for each claimed message):
 * one query (biz_email_context: the certificate, its batch, institution,
 * template e-mail block and PDF), then on the work queue the placeholders
 * of the subject and bodies are filled and the MIME message built
 * (lib/mime.h): From is BATCHD_SMTP_FROM (its display name, else the
 * institution's name), To the recipient by name, Date the time the
 * message was queued, Message-ID <msg_…@the sender's domain>, text and
 * HTML alternatives, the PDF attached as <ReferenceId>.pdf, exactly the
 * bytes GET …/pdf serves. A body without the verification URL gets it
 * appended. A certificate revoked or gone before its message went out is
 * not sent (the message fails, saying so).
 */
#include "business.h"

#include "app.h"
#include "log.h"
#include "mail.h"
#include "mime.h"
#include "util.h"
#include "work.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUBJECT_MAX 255         /* characters of a template's subject */
#define TEXT_MAX (64 * 1024)    /* bytes of a template's text body */
#define HTML_MAX (256 * 1024)   /* bytes of a template's HTML body */
#define PLACEHOLDER_MAX 100     /* bytes of a placeholder name */

static const char k_default_subject[] = "Your certificate from {{InstitutionName}}";
static const char k_default_text[] =
    "Dear {{RecipientsName}},\n"
    "\n"
    "{{InstitutionName}} has issued you a certificate: {{BatchName}}.\n"
    "It is attached to this message as a PDF file.\n"
    "\n"
    "Anyone can check that it is genuine at\n"
    "{{VerificationUrl}}\n"
    "\n"
    "Reference: {{ReferenceId}}\n"
    "Issued: {{IssueDate}}\n";
static const char k_default_html[] =
    "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head>\n"
    "<body style=\"font-family: sans-serif; line-height: 1.5; color: #222;\">\n"
    "<p>Dear {{RecipientsName}},</p>\n"
    "<p>{{InstitutionName}} has issued you a certificate: <strong>{{BatchName}}</strong>.<br>\n"
    "It is attached to this message as a PDF file.</p>\n"
    "<p>Anyone can check that it is genuine at<br>\n"
    "<a href=\"{{VerificationUrl}}\">{{VerificationUrl}}</a></p>\n"
    "<p style=\"color: #666;\">Reference: {{ReferenceId}}<br>\nIssued: {{IssueDate}}</p>\n"
    "</body></html>\n";

/* --- validation ------------------------------------------------------------------- */

bool bd_biz_email_notify_field(const char *v, size_t n, bool too_long, bd_biz_errors_t *e) {
  if (!v || n == 0) return false; /* absent or empty: off */
  if (!too_long && (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "on") || !strcmp(v, "yes"))) {
    if (!bd_mail_enabled()) {
      bd_biz_errors_add(e, "notify_recipients", "E-mail delivery is not configured on this server.");
      return false;
    }
    return true;
  }
  if (!too_long && (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "off") || !strcmp(v, "no"))) return false;
  bd_biz_errors_add(e, "notify_recipients", "The notify recipients field must be true or false.");
  return false;
}

static size_t utf8_chars(const char *s) {
  size_t n = 0;
  for (; *s; s++) n += ((unsigned char)*s & 0xc0) != 0x80;
  return n;
}

bool bd_biz_email_block_check(const json_t *email, bd_biz_errors_t *e) {
  if (!email || json_is_null(email)) return true;
  if (!json_is_object(email)) {
    bd_biz_errors_add(e, "email", "The email field must be an object.");
    return false;
  }
  bool ok = true;
  static const struct {
    const char *key, *field;
    size_t max;
    bool chars;
  } f[] = {{"subject", "email.subject", SUBJECT_MAX, true},
           {"text", "email.text", TEXT_MAX, false},
           {"html", "email.html", HTML_MAX, false}};
  for (size_t i = 0; i < BD_ARRAY_LEN(f); i++) {
    const json_t *v = json_object_get(email, f[i].key);
    if (!v || json_is_null(v)) continue;
    if (!json_is_string(v)) {
      bd_biz_errors_add(e, f[i].field, "The %s field must be a string.", f[i].field);
      ok = false;
      continue;
    }
    const char *s = json_string_value(v);
    if (memchr(s, '\0', json_string_length(v))) {
      bd_biz_errors_add(e, f[i].field, "The %s field must not contain NUL characters.", f[i].field);
      ok = false;
    } else if (f[i].chars ? utf8_chars(s) > f[i].max : json_string_length(v) > f[i].max) {
      bd_biz_errors_add(e, f[i].field, "The %s field must not be greater than %zu %s.", f[i].field, f[i].max,
                        f[i].chars ? "characters" : "bytes");
      ok = false;
    } else if (f[i].chars && strpbrk(s, "\r\n")) {
      bd_biz_errors_add(e, f[i].field, "The %s field must be a single line.", f[i].field);
      ok = false;
    }
  }
  const char *key;
  const json_t *v;
  json_object_foreach((json_t *)email, key, v) {
    if (strcmp(key, "subject") && strcmp(key, "text") && strcmp(key, "html")) {
      char field[64];
      snprintf(field, sizeof field, "email.%.40s", key);
      bd_biz_errors_add(e, field, "The %s field is not allowed (subject, text, html).", field);
      ok = false;
    }
  }
  return ok;
}

/* --- composing -------------------------------------------------------------------- */

typedef struct {
  bd_mail_item_t *item;   /* the sender's message */
  bd_work_t work;         /* composition on the work queue */
  char id[64];            /* msg_… */
  char to[300];           /* recipient */
  long long created_s;    /* Date */
  json_t *ctx;            /* biz_email_context's JSON (owned) */
  char *pdf_hex;          /* the PDF as bytea text (\x…), owned */
  size_t pdf_hex_len;     /* its length */
  bd_buf_t msg;           /* the composed message (worker-made) */
  char err[256];          /* why not ("" = composed) */
} compose_t;

static const char *ctx_str(const json_t *ctx, const char *k) {
  const char *s = json_string_value(json_object_get(ctx, k));
  return s ? s : "";
}

/* The value of placeholder name[0..n) for this certificate (NULL: none). */
static const char *placeholder(const json_t *ctx, const char *name, size_t n, const char *vurl, const char *date) {
  static const struct {
    const char *name, *key;
  } k[] = {{"RecipientsName", "name"},       {"RecipientsEmail", "email"},   {"ReferenceId", "reference_id"},
           {"InstitutionName", "institution_name"}, {"BatchName", "batch_name"}};
  for (size_t i = 0; i < BD_ARRAY_LEN(k); i++)
    if (strlen(k[i].name) == n && !memcmp(k[i].name, name, n)) return ctx_str(ctx, k[i].key);
  if (n == 9 && !memcmp(name, "IssueDate", 9)) return date;
  if (n == 15 && !memcmp(name, "VerificationUrl", 15)) return vurl;
  const json_t *cd = json_object_get(ctx, "custom_data");
  const char *key;
  const json_t *v;
  json_object_foreach((json_t *)cd, key, v) {
    if (strlen(key) == n && !memcmp(key, name, n)) return json_string_value(v) ? json_string_value(v) : "";
  }
  return NULL;
}

/* Fills the {{placeholders}} of tpl as cert_render.h does (spaces inside
 * the braces ignored, unknown names empty, a "{{" without "}}" or with an
 * empty or over-long name literal); values HTML-escaped when html. */
static void fill(bd_buf_t *out, const char *tpl, const json_t *ctx, const char *vurl, const char *date, bool html) {
  const char *p = tpl;
  for (;;) {
    const char *o = strstr(p, "{{");
    if (!o) break;
    const char *c = strstr(o + 2, "}}");
    const char *nl = strpbrk(o + 2, "\r\n");
    if (!c || (nl && nl < c)) break;
    const char *ns = o + 2, *ne = c;
    while (ns < ne && *ns == ' ') ns++;
    while (ne > ns && ne[-1] == ' ') ne--;
    size_t n = (size_t)(ne - ns);
    if (n == 0 || n > PLACEHOLDER_MAX) {
      bd_buf_append(out, p, (size_t)(o + 2 - p));
      p = o + 2;
      continue;
    }
    bd_buf_append(out, p, (size_t)(o - p));
    const char *v = placeholder(ctx, ns, n, vurl, date);
    if (v) {
      if (html) bd_mime_html_escape(out, v, strlen(v));
      else bd_buf_puts(out, v);
    }
    p = c + 2;
  }
  bd_buf_puts(out, p);
}

/* Text with its line ends made CRLF (the canonical form of text/plain). */
static void crlf(bd_buf_t *out, const char *s) {
  for (; *s; s++) {
    if (*s == '\r') {
      if (s[1] == '\n') s++;
      bd_buf_puts(out, "\r\n");
    } else if (*s == '\n') {
      bd_buf_puts(out, "\r\n");
    } else {
      bd_buf_putc(out, *s);
    }
  }
}

/* An HTML body made from a text template: escaped, paragraphs at blank
 * lines, line breaks kept, the verification URL a link. */
static void html_from_text(bd_buf_t *out, const char *text, const char *vurl) {
  bd_buf_puts(out, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head>\n"
                   "<body style=\"font-family: sans-serif; line-height: 1.5; color: #222;\">\n<p>");
  bd_buf_t esc = BD_BUF_INIT, link = BD_BUF_INIT;
  bd_mime_html_escape(&link, vurl, strlen(vurl));
  size_t ul = link.len;
  bd_mime_html_escape(&esc, text, strlen(text));
  const char *s = esc.data ? esc.data : "";
  for (size_t i = 0; s[i];) {
    if (ul && !strncmp(s + i, link.data, ul)) {
      bd_buf_printf(out, "<a href=\"%s\">%s</a>", link.data, link.data);
      i += ul;
    } else if (s[i] == '\r' || s[i] == '\n') {
      size_t nls = 0;
      while (s[i] == '\r' || s[i] == '\n') {
        if (s[i] == '\n') nls++;
        if (s[i] == '\r' && s[i + 1] != '\n') nls++;
        i++;
      }
      if (!s[i]) break;
      bd_buf_puts(out, nls >= 2 ? "</p>\n<p>" : "<br>\n");
    } else {
      bd_buf_putc(out, s[i++]);
    }
  }
  bd_buf_puts(out, "</p>\n</body></html>\n");
  bd_buf_free(&esc);
  bd_buf_free(&link);
}

static void compose_work(bd_work_t *w) {
  compose_t *c = w->data;
  const json_t *ctx = c->ctx;
  size_t pdf_len = 0;
  unsigned char *pdf = PQunescapeBytea((const unsigned char *)c->pdf_hex, &pdf_len);
  if (!pdf) {
    snprintf(c->err, sizeof c->err, "the certificate's PDF could not be read");
    return;
  }
  char vurl[1024], date[16] = "";
  snprintf(vurl, sizeof vurl, "%s/verify/%s", bd_biz_base_url(), ctx_str(ctx, "reference_id"));
  const char *iso = ctx_str(ctx, "issue_date"); /* YYYY-MM-DD -> DD-MM-YYYY, as on the certificate */
  if (strlen(iso) == 10) snprintf(date, sizeof date, "%.2s-%.2s-%.4s", iso + 8, iso + 5, iso);
  const json_t *blk = json_object_get(ctx, "template_email");
  const char *t_subject = json_string_value(json_object_get(blk, "subject"));
  const char *t_text = json_string_value(json_object_get(blk, "text"));
  const char *t_html = json_string_value(json_object_get(blk, "html"));
  bd_buf_t subject = BD_BUF_INIT, text = BD_BUF_INIT, html = BD_BUF_INIT, body = BD_BUF_INIT;
  fill(&subject, t_subject && *t_subject ? t_subject : k_default_subject, ctx, vurl, date, false);
  fill(&text, t_text && *t_text ? t_text : k_default_text, ctx, vurl, date, false);
  if (!strstr(text.data ? text.data : "", vurl)) bd_buf_printf(&text, "\n\nVerify this certificate: %s\n", vurl);
  crlf(&body, text.data ? text.data : "");
  if (t_html && *t_html) {
    fill(&html, t_html, ctx, vurl, date, true);
    bd_buf_t esc = BD_BUF_INIT;
    bd_mime_html_escape(&esc, vurl, strlen(vurl));
    if (!strstr(html.data ? html.data : "", esc.data))
      bd_buf_printf(&html, "\n<p>Verify this certificate: <a href=\"%s\">%s</a></p>\n", esc.data, esc.data);
    bd_buf_free(&esc);
  } else if (t_text && *t_text) {
    html_from_text(&html, text.data ? text.data : "", vurl);
  } else {
    fill(&html, k_default_html, ctx, vurl, date, true);
  }
  bd_buf_t html_crlf = BD_BUF_INIT;
  crlf(&html_crlf, html.data ? html.data : "");
  const char *from_addr = bd_mail_from_address();
  const char *at = strrchr(from_addr, '@');
  char mid[320], fname[160];
  snprintf(mid, sizeof mid, "%s@%s", c->id, at ? at + 1 : "batchd.invalid");
  snprintf(fname, sizeof fname, "%s.pdf", ctx_str(ctx, "reference_id"));
  const char *from_name = *bd_mail_from_name() ? bd_mail_from_name() : ctx_str(ctx, "institution_name");
  bd_mime_message_t m = {
      .from_name = from_name,
      .from_addr = from_addr,
      .to_name = ctx_str(ctx, "name"),
      .to_addr = c->to,
      .subject = subject.data ? subject.data : "",
      .date_s = c->created_s,
      .message_id = mid,
      .text = body.data ? body.data : "",
      .html = html_crlf.data ? html_crlf.data : "",
      .attachment = pdf,
      .attachment_len = pdf_len,
      .attachment_name = fname,
      .attachment_type = "application/pdf",
  };
  bd_buf_reserve(&c->msg, pdf_len * 4 / 3 + pdf_len / 38 + body.len * 2 + html_crlf.len * 2 + 4096);
  if (bd_mime_compose(&m, &c->msg) != 0) snprintf(c->err, sizeof c->err, "invalid recipient or sender address");
  PQfreemem(pdf);
  bd_buf_free(&subject);
  bd_buf_free(&text);
  bd_buf_free(&html);
  bd_buf_free(&html_crlf);
  bd_buf_free(&body);
}

static void compose_free(compose_t *c) {
  json_decref(c->ctx);
  free(c->pdf_hex);
  bd_buf_free(&c->msg);
  free(c);
}

static void compose_after(bd_work_t *w, int status) {
  compose_t *c = w->data;
  if (status != 0) bd_mail_compose_failed(c->item, false, "composition was cancelled (shutdown)");
  else if (c->err[0]) bd_mail_compose_failed(c->item, true, c->err);
  else bd_mail_composed(c->item, &c->msg);
  compose_free(c);
}

static bd_pg_stmt_t S_CTX = BD_PG_STMT_BG("SELECT ctx, pdf FROM biz_email_context($1::uuid, $2)");

static void on_ctx(void *ud, const bd_pg_result_t *r) {
  compose_t *c = ud;
  if (r->err != BD_PG_OK) {
    char e[300];
    snprintf(e, sizeof e, "database: %s", r->message ? r->message : "error");
    bd_mail_compose_failed(c->item, false, e);
    compose_free(c);
    return;
  }
  if (PQntuples(r->res) != 1) {
    bd_mail_compose_failed(c->item, true, "the certificate no longer exists");
    compose_free(c);
    return;
  }
  c->ctx = json_loads(PQgetvalue(r->res, 0, 0), 0, NULL);
  const char *status = ctx_str(c->ctx, "status");
  if (!c->ctx) {
    bd_mail_compose_failed(c->item, false, "bad context JSON");
  } else if (strcmp(status, "generated") != 0) {
    char e[128];
    snprintf(e, sizeof e, "not sent: the certificate is %s", *status ? status : "not generated");
    bd_mail_compose_failed(c->item, true, e);
  } else if (!json_is_true(json_object_get(c->ctx, "current"))) {
    bd_mail_compose_failed(c->item, true, "not sent: a newer message of this certificate replaced it");
  } else if (PQgetisnull(r->res, 0, 1)) {
    bd_mail_compose_failed(c->item, true, "not sent: the certificate has no PDF");
  } else {
    c->pdf_hex_len = (size_t)PQgetlength(r->res, 0, 1);
    c->pdf_hex = bd_malloc(c->pdf_hex_len + 1);
    memcpy(c->pdf_hex, PQgetvalue(r->res, 0, 1), c->pdf_hex_len + 1);
    c->work.work = compose_work;
    c->work.after = compose_after;
    c->work.data = c;
    c->work.background = false; /* a claimed message: finish it (the sender gives it back at shutdown) */
    bd_work_submit(&c->work);
    return;
  }
  compose_free(c);
}

static void compose(bd_mail_item_t *item, const bd_mail_msg_t *m) {
  compose_t *c = bd_calloc(1, sizeof *c);
  c->item = item;
  snprintf(c->id, sizeof c->id, "%s", m->id);
  snprintf(c->to, sizeof c->to, "%s", m->recipient);
  c->created_s = m->created_s;
  if (!bd_uuid_valid(bd_str_c(m->ref))) {
    bd_mail_compose_failed(item, true, "not a certificate id");
    free(c);
    return;
  }
  const char *p[] = {m->ref, m->id};
  if (bd_pg_query(bd_app.pg, &S_CTX, 2, p, on_ctx, c) != 0) {
    bd_mail_compose_failed(item, false, "database queue full");
    free(c);
  }
}

void bd_biz_email_init(void) { bd_mail_register("business.certificate", compose); }

/* --- POST /business/certificates/{id}/resend ------------------------------------------ */

static bd_pg_stmt_t S_RESEND =
    BD_PG_STMT("SELECT cert, status FROM biz_resend_certificate($1::uuid, $2::bigint, $3, $4::boolean)");

static void on_resent(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  if (r->err) {
    bd_app_db_error(req, r);
  } else if (PQntuples(r->res) != 1) {
    bd_biz_not_found(req, bd_req_param(req, 0));
  } else if (PQgetisnull(r->res, 0, 0)) {
    bd_biz_errors_t e;
    bd_biz_errors_init(&e);
    if (!strcmp(PQgetvalue(r->res, 0, 1), "unconfigured"))
      bd_biz_errors_add(&e, "certificate", "E-mail delivery is not configured on this server.");
    else
      bd_biz_errors_add(&e, "certificate", "Only generated certificates can be e-mailed.");
    bd_biz_errors_send(req, &e);
  } else {
    bd_mail_kick();
    bd_biz_send_data(req, 200, PQgetvalue(r->res, 0, 0));
  }
  bd_req_release(req);
}

static void resend_authed(bd_req_t *req, const bd_biz_caller_t *caller) {
  const char *id = bd_req_param(req, 0);
  if (!bd_uuid_valid(bd_str_c(id))) {
    bd_biz_not_found(req, id);
    return;
  }
  char inst[24];
  bd_biz_inst_str(caller, inst);
  /* not configured: still looked up, so that another institution's id is 404 */
  const char *p[] = {id, inst, bd_biz_base_url(), bd_mail_enabled() ? "t" : "f"};
  bd_app_query(req, &S_RESEND, 4, p, on_resent, req);
}

void bd_biz_cert_resend(bd_req_t *req) { bd_biz_authenticate(req, "certificates:manage", resend_authed); }
