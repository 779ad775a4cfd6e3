/* credential.h: certificates as W3C Verifiable Credentials 2.0 / Open
 * Badges 3.0, signed with the Data Integrity cryptosuite eddsa-jcs-2022,
 * revocation as a Bitstring Status List, and the credential carried inside
 * the artefacts (PNG baking, a PDF attachment). Pure functions, any thread.
 *
 * eddsa-jcs-2022 (W3C VC Data Integrity EdDSA Cryptosuites v1.0): the proof
 * configuration is the proof without proofValue, with the document's
 * @context; hashData = SHA-256(JCS(proof configuration)) || SHA-256(JCS(the
 * document without proof)); proofValue = "z" + base58btc(Ed25519(hashData)).
 * JCS is RFC 8785 (jcs.h).
 *
 * Issuers are did:web identifiers of the public URL, one per institution:
 *   https://host:port/base → did:web:host%3Aport:base:institutions:<id>
 * whose DID document (served at <base>/institutions/<id>/did.json) lists
 * every key that ever signed as a Multikey (bd_vc_did_document). The
 * verification method of a key is <did>#key-<16 hex of its key id>.
 */
#ifndef BD_CREDENTIAL_H
#define BD_CREDENTIAL_H

#include "buf.h"
#include "sign.h"

#include <jansson.h>

#define BD_VC_STATUS_LIST_SIZE 131072 /* entries of one status list (16 KiB): the spec's minimum */

/* What a certificate's credential says. Strings are UTF-8, none NULL
 * unless marked. */
typedef struct {
  const char *credential_id;      /* its URL (the public /credentials/{reference_id}) */
  const char *issuer_did;         /* bd_vc_did */
  const char *issuer_name;        /* the institution */
  const char *issuer_url;         /* NULL or the institution's web page */
  const char *achievement_id;     /* URL of the achievement (the template) */
  const char *achievement_name;   /* the template's name */
  const char *achievement_description;
  const char *criteria;           /* criteria narrative */
  const char *credential_name;    /* the credential's name */
  const char *recipient_name;     /* plain (identityType "name"): it is printed on the certificate */
  const char *recipient_email;    /* NULL or the e-mail: only ever hashed with salt */
  const char *salt;               /* for the e-mail hash */
  const char *valid_from;         /* XML Schema dateTime, e.g. 2025-02-15T00:00:00Z */
  const char *status_list_url;    /* the BitstringStatusListCredential */
  long status_index;              /* this credential's bit in it */
  const char *verification_method;/* bd_vc_method */
  const char *created;            /* the proof's dateTime */
} bd_vc_input_t;

/* did:web of base_url + path segments "institutions", id. Fails (-1) on a
 * base URL that is not http(s)://host[:port][/path]. */
int bd_vc_did(const char *base_url, long long institution_id, char *out, size_t outsz);
/* The verification method id of key_id ("ed25519:<16 hex>") under did. */
void bd_vc_method(const char *did, const char *key_id, char *out, size_t outsz);
/* "z6Mk…": multibase base58btc of the multicodec ed25519-pub key. */
void bd_vc_multikey(const unsigned char pk[32], char out[64]);
/* Base58btc (Bitcoin alphabet) of n bytes, appended. */
void bd_vc_base58(bd_buf_t *out, const unsigned char *p, size_t n);

/* The signed OpenBadgeCredential. NULL with err on failure. */
json_t *bd_vc_certificate(const bd_vc_input_t *in, const bd_sign_key_t *key, char *err, size_t errsz);

/* Adds an eddsa-jcs-2022 DataIntegrityProof to doc (in place), as a proof
 * set of one ("proof": [ {...} ], which the OB 3.0 schema requires). 0, or -1
 * with err (a value JCS cannot encode). */
int bd_vc_prove(json_t *doc, const bd_sign_key_t *key, const char *verification_method, const char *created,
                char *err, size_t errsz);
/* Verifies doc's eddsa-jcs-2022 proof (an object, or a set of exactly one)
 * with pk (tests, the self-check). */
bool bd_vc_verify(const json_t *doc, const unsigned char pk[32]);

/* The signed BitstringStatusListCredential `list_url` of issuer did: the
 * revoked entries' indices (each < BD_VC_STATUS_LIST_SIZE) have their bit
 * set (bit 0 is the left-most bit of the first byte); the list is GZIP'd
 * and multibase base64url (no padding) encoded. NULL with err. */
json_t *bd_vc_status_list(const char *list_url, const char *did, const long *revoked, size_t nrevoked,
                          const char *valid_from, const bd_sign_key_t *key, const char *verification_method,
                          const char *created, char *err, size_t errsz);

/* A DID document for did listing keys (public keys, key ids) as Multikeys,
 * every one an assertionMethod. */
json_t *bd_vc_did_document(const char *did, const unsigned char (*pks)[32], const char *const *key_ids, size_t n);

/* Open Badges baking: a copy of the PNG with an iTXt chunk "openbadgecredential"
 * holding text, before IEND. 0, or -1 with err when png is not a PNG. */
int bd_vc_bake_png(const void *png, size_t n, const char *text, size_t textlen, bd_buf_t *out, char *err,
                   size_t errsz);
/* The text of the "openbadgecredential" iTXt chunk (malloc'd), or NULL. */
char *bd_vc_unbake_png(const void *png, size_t n, size_t *textlen);

/* Attaches a file to a PDF by an incremental update: an EmbeddedFile, its
 * Filespec (AFRelationship /Data) in the catalog's /Names /EmbeddedFiles
 * and /AF. For PDFs with a classic cross-reference table and a catalog
 * without /Names or /AF (what cairo writes). 0, or -1 with err. */
int bd_pdf_attach(const void *pdf, size_t n, const char *filename, const char *mime, const void *data, size_t len,
                  const char *description, bd_buf_t *out, char *err, size_t errsz);

#endif
