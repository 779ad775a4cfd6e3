/* qr_errors_doc.h: the error code reference of the /v1 surface
 * (qr_errors_doc.c). Loop thread only. */
#ifndef BD_QR_ERRORS_DOC_H
#define BD_QR_ERRORS_DOC_H

#include "buf.h"
#include "http.h"

/* Appends the documentation URL of an error code (public_url +
 * "/docs/errors#" + code) to out: the envelope's doc_url. */
void qr_doc_url(const char *code, bd_buf_t *out);
/* GET /docs/errors: the page, every code with its status and meaning. */
void qr_h_errors_doc(bd_req_t *req);

#endif
