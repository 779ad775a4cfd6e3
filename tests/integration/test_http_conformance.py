"""HTTP/1.1 conformance of the server core (issue 28), over raw sockets
against the real binary.

Every case is a byte string a client sends, the status it must get, and
whether the connection must be closed after the answer. Each case is sent
followed, on the same connection, by a valid pipelined request
(`FOLLOW_UP`, X-Request-Id `follow-up`):

  - close=False: exactly two answers come back, the case's and then the
    follow-up's 200 (the message was framed as one message, no more, no
    less);
  - close=True: one answer comes back, then the server closes; the
    follow-up is never answered (after a malformed message the rest of the
    stream cannot be trusted: RFC 9112 section 9.6 / CWE-444).

Three groups, each case citing the section it checks:
  compliance  valid requests that must be served
  smuggling   framing that two parsers could read differently (Content-Length,
              Transfer-Encoding, chunked coding, line endings, obs-fold,
              field names a proxy might skip or accept)
  malformed   invalid request lines, versions, targets, field names and
              values, Host, over-long lines (431)

Errors are answered in the error format of the path's surface (here mostly
the neutral {"error": {...}} of the operational endpoints). Where the RFC
allows a choice batchd refuses (bare LF, BWS in a request line, unknown
methods); the choices are written next to the cases and in SECURITY.md.
"""
import hashlib
import json
import socket
import time

import pytest

from batchd_client import Incomplete, parse_response, recv_until_close

FOLLOW_UP = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: follow-up\r\n\r\n"


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(env={
        "BATCHD_TEST_HOOKS": "1",
        "BATCHD_RATE_LIMIT": "0",
        "BATCHD_MAX_HEADER_BYTES": "4096",
        "BATCHD_HEADER_TIMEOUT_MS": "1500",
        "BATCHD_BODY_TIMEOUT_MS": "1500",
        "BATCHD_KEEPALIVE_TIMEOUT_MS": "30000",
    })


class Case:
    def __init__(self, group, name, rfc, data, status, close, body=None, head=False, check=None,
                 follow_up=True):
        self.group = group          # compliance / smuggling / malformed
        self.name = name            # short id
        self.rfc = rfc              # the section the case checks
        self.data = data            # bytes sent
        self.status = status        # expected status of the first answer
        self.close = close          # the connection must be closed after it
        self.body = body            # POST /_test/stream: the body it must have decoded
        self.head = head            # the first answer answers HEAD (no body)
        self.check = check          # extra check on the first response
        self.follow_up = follow_up  # send FOLLOW_UP after the case

    @property
    def id(self):
        return "%s-%s" % (self.group, self.name)


def get(*fields, target=b"/healthz", version=b"HTTP/1.1", method=b"GET"):
    """A bodiless request: request line, the given field lines, empty line."""
    return method + b" " + target + b" " + version + b"\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n"


def post(body, *fields, target=b"/_test/stream", version=b"HTTP/1.1"):
    """A request to the streamed hash endpoint: field lines, then body bytes as given."""
    return b"POST " + target + b" " + version + b"\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n" + body


def chunked(body_bytes, *extra):
    """A chunked POST /_test/stream with the raw chunked body bytes."""
    return post(body_bytes, b"Host: x", b"Transfer-Encoding: chunked", *extra)


H = b"Host: x"
TE = b"Transfer-Encoding: chunked"


def error_format(keys):
    def check(r):
        doc = r.json()
        assert set(keys) <= set(doc), (keys, doc)
    return check


def neutral_error(r):
    doc = r.json()
    assert set(doc["error"]) >= {"code", "message", "request_id"}, doc
    assert doc["error"]["request_id"] == r.header("x-request-id"), doc


def has_allow(r):
    assert "GET" in r.header("allow", ""), r.header_list


C, S, M = "compliance", "smuggling", "malformed"

CASES = [
    # --- compliance: valid requests are served, the connection stays usable ---------------
    Case(C, "origin_form", "RFC 9112 3.2.1", get(H), 200, False),
    Case(C, "origin_form_query", "RFC 9112 3.2.1", get(H, target=b"/healthz?probe=1&x"), 200, False),
    Case(C, "host_with_port", "RFC 9110 7.2", get(b"Host: localhost:8080"), 200, False),
    Case(C, "host_ipv4", "RFC 3986 3.2.2", get(b"Host: 127.0.0.1:80"), 200, False),
    Case(C, "host_ipv6_literal", "RFC 3986 3.2.2", get(b"Host: [::1]:8080"), 200, False),
    Case(C, "host_ipvfuture", "RFC 3986 3.2.2", get(b"Host: [v1.fe80::a+en1]"), 200, False),
    Case(C, "host_reg_name_chars", "RFC 3986 3.2.2 (unreserved, sub-delims, pct-encoded)",
         get(b"Host: a-b.c_d~e!$&'()*+,;=%41"), 200, False),
    Case(C, "host_empty", "RFC 9110 7.2 (empty when the target has no authority)", get(b"Host:"), 200, False),
    Case(C, "host_name_any_case", "RFC 9110 5.1", get(b"hOsT: x"), 200, False),
    Case(C, "absolute_form", "RFC 9112 3.2.2", get(H, target=b"http://x/healthz"), 200, False),
    Case(C, "absolute_form_query", "RFC 9112 3.2.2",
         get(H, target=b"http://x/_test/slow?ms=1"), 200, False),
    Case(C, "absolute_form_any_case", "RFC 9110 4.2.3 (scheme and host are case-insensitive)",
         get(b"Host: X:80", target=b"HTTP://X:80/healthz"), 200, False),
    Case(C, "absolute_form_https", "RFC 9110 4.2.2", get(H, target=b"https://x/healthz"), 200, False),
    Case(C, "absolute_form_authority_wins", "RFC 9112 3.2.2 (the Host field is ignored, the authority used)",
         get(b"Host: other.example", target=b"http://api.example/healthz"), 200, False),
    Case(C, "absolute_form_ipv6", "RFC 9112 3.2.2, RFC 3986 3.2.2",
         get(b"Host: [::1]:8080", target=b"http://[::1]:8080/healthz"), 200, False),
    Case(C, "absolute_form_empty_path", "RFC 9110 4.2.3 (an empty path is /)",
         get(H, target=b"http://x?probe"), 404, False, check=neutral_error),
    Case(C, "http10_without_host", "RFC 9112 3.2 (Host is required of HTTP/1.1), 9.3 (1.0 closes)",
         get(version=b"HTTP/1.0"), 200, True),
    Case(C, "http10_keep_alive", "RFC 9112 9.3, C.2.2",
         get(b"Connection: keep-alive", version=b"HTTP/1.0"), 200, False),
    Case(C, "connection_close", "RFC 9112 9.6", get(H, b"Connection: close"), 200, True),
    Case(C, "head", "RFC 9110 9.3.2", get(H, method=b"HEAD"), 200, False, head=True),
    Case(C, "method_not_allowed", "RFC 9110 15.5.6", get(H, method=b"DELETE"), 405, False, check=has_allow),
    Case(C, "leading_empty_line", "RFC 9112 2.2", b"\r\n" + get(H), 200, False),
    Case(C, "ows_around_value", "RFC 9110 5.5", get(H, b"X-A: \t spaced value \t"), 200, False),
    Case(C, "empty_field_value", "RFC 9110 5.5", get(H, b"X-Empty:"), 200, False),
    Case(C, "tchar_field_name", "RFC 9110 5.6.2", get(H, b"X-!#$%&'*+-.^_`|~09: v"), 200, False),
    Case(C, "obs_text_in_value", "RFC 9110 5.5 (obs-text)", get(H, b"X-A: caf\xe9"), 200, False),
    Case(C, "upgrade_ignored", "RFC 9110 7.8 (a server may ignore Upgrade)",
         get(H, b"Upgrade: websocket", b"Connection: Upgrade"), 200, False),
    Case(C, "content_length_body", "RFC 9112 6.2", post(b"hello", H, b"Content-Length: 5"), 200, False,
         body=b"hello"),
    Case(C, "content_length_zero", "RFC 9112 6.2", post(b"", H, b"Content-Length: 0"), 200, False, body=b""),
    Case(C, "content_length_ows", "RFC 9110 5.5", post(b"hello", H, b"Content-Length:  5 "), 200, False,
         body=b"hello"),
    Case(C, "chunked", "RFC 9112 7.1", chunked(b"5\r\nhello\r\nA\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n"),
         200, False, body=b"hello0123456789abcdefghij"),
    Case(C, "chunk_size_leading_zeros", "RFC 9112 7.1", chunked(b"0005\r\nhello\r\n000\r\n\r\n"), 200, False,
         body=b"hello"),
    # llhttp 8.1 refuses a valueless extension after one with a value
    # ("5;a=b;flag"), which RFC 9112 7.1.1 allows: a 400 a client can avoid.
    Case(C, "chunk_extensions", "RFC 9112 7.1.1 (unknown extensions are ignored)",
         chunked(b"5;flag;name=value\r\nhello\r\n0;last=\"q s\"\r\n\r\n"), 200, False, body=b"hello"),
    Case(C, "chunked_trailers", "RFC 9112 7.1.2", chunked(b"5\r\nhello\r\n0\r\nX-Trailer: v\r\nX-Other: w\r\n\r\n"),
         200, False, body=b"hello"),
    Case(C, "te_any_case", "RFC 9112 7 (coding names are case-insensitive)",
         post(b"5\r\nhello\r\n0\r\n\r\n", H, b"Transfer-Encoding: Chunked"), 200, False, body=b"hello"),
    Case(C, "expect_100_continue", "RFC 9110 10.1.1",
         post(b"hello", H, b"Content-Length: 5", b"Expect: 100-continue"), 200, False, body=b"hello"),
    Case(C, "sixty_fields", "RFC 9110 5.3", get(H, *[b"X-F%d: v" % i for i in range(59)]), 200, False),

    # --- smuggling: framing two parsers could disagree on: 400 (or 501) and closed ---------
    Case(S, "chunk_data_not_crlf", "RFC 9112 7.1 (chunk-data CRLF)",
         chunked(b"5\r\nhelloZZ0\r\n\r\n"), 400, True),
    Case(S, "chunk_data_bare_lf", "RFC 9112 7.1", chunked(b"5\r\nhello\n0\r\n\r\n"), 400, True),
    Case(S, "chunk_data_bare_cr", "RFC 9112 7.1", chunked(b"5\r\nhello\r0\r\n\r\n"), 400, True),
    Case(S, "chunk_data_too_long", "RFC 9112 7.1", chunked(b"2\r\n{}xx\r\n0\r\n\r\n"), 400, True),
    Case(S, "chunk_size_invalid_char", "RFC 9112 7.1 (chunk-size = 1*HEXDIG)", chunked(b"zz\r\n{}\r\n0\r\n\r\n"),
         400, True),
    Case(S, "chunk_size_hex_prefix", "RFC 9112 7.1", chunked(b"0x5\r\nhello\r\n0\r\n\r\n"), 400, True),
    Case(S, "chunk_size_negative", "RFC 9112 7.1", chunked(b"-5\r\nhello\r\n0\r\n\r\n"), 400, True),
    Case(S, "chunk_size_overflow", "RFC 9112 7.1 (anticipate overflow)",
         chunked(b"10000000000000005\r\nhello\r\n0\r\n\r\n"), 400, True),
    Case(S, "chunk_size_trailing_space", "RFC 9112 7.1", chunked(b"5 \r\nhello\r\n0\r\n\r\n"), 400, True),
    Case(S, "chunk_size_bare_lf", "RFC 9112 7.1", chunked(b"5\nhello\r\n0\r\n\r\n"), 400, True),
    Case(S, "chunk_size_bare_cr", "RFC 9112 7.1", chunked(b"5\r\r\nhello\r\n0\r\n\r\n"), 400, True),
    Case(S, "chunk_ext_bad_value", "RFC 9112 7.1.1 (chunk-ext-val = token / quoted-string)",
         chunked(b"5;a=b c\r\nhello\r\n0\r\n\r\n"), 400, True),
    Case(S, "chunk_ext_empty_name", "RFC 9112 7.1.1 (chunk-ext-name = token)",
         chunked(b"5;\r\nhello\r\n0\r\n\r\n"), 400, True),
    Case(S, "chunk_ext_open_quote", "RFC 9112 7.1.1", chunked(b"5;a=\"b\r\nhello\r\n0\r\n\r\n"), 400, True),
    Case(S, "chunk_ext_ctl", "RFC 9112 7.1.1", chunked(b"5;a\x00\r\nhello\r\n0\r\n\r\n"), 400, True),
    Case(S, "cl_and_te", "RFC 9112 6.1, 6.3", post(b"0\r\n\r\n", H, b"Content-Length: 5", TE), 400, True),
    Case(S, "te_and_cl", "RFC 9112 6.1, 6.3", post(b"0\r\n\r\n", H, TE, b"Content-Length: 60"), 400, True),
    Case(S, "duplicate_cl", "RFC 9112 6.3 (5)", post(b"hello", H, b"Content-Length: 5", b"Content-Length: 5"),
         400, True),
    Case(S, "conflicting_cl", "RFC 9112 6.3 (5)", post(b"hello", H, b"Content-Length: 5", b"Content-Length: 50"),
         400, True),
    Case(S, "cl_list", "RFC 9110 8.6", post(b"hello", H, b"Content-Length: 5, 5"), 400, True),
    Case(S, "cl_plus_sign", "RFC 9110 8.6 (1*DIGIT)", post(b"hello", H, b"Content-Length: +5"), 400, True),
    Case(S, "cl_negative", "RFC 9110 8.6", post(b"", H, b"Content-Length: -1"), 400, True),
    Case(S, "cl_hex", "RFC 9110 8.6", post(b"hello", H, b"Content-Length: 0x5"), 400, True),
    Case(S, "cl_overflow", "RFC 9112 6.3 (5)", post(b"", H, b"Content-Length: 99999999999999999999999"), 400, True),
    Case(S, "cl_empty", "RFC 9110 8.6", post(b"hello", H, b"Content-Length:"), 400, True),
    Case(S, "cl_inner_space", "RFC 9110 8.6", post(b"hello", H, b"Content-Length: 1 2"), 400, True),
    Case(S, "te_identity", "RFC 9112 6.3 (4): chunked not final", post(b"hello", H, b"Transfer-Encoding: identity"),
         400, True),
    Case(S, "te_gzip", "RFC 9112 6.3 (4)", post(b"hello", H, b"Transfer-Encoding: gzip"), 400, True),
    Case(S, "te_chunked_not_last", "RFC 9112 6.3 (4)",
         post(b"0\r\n\r\n", H, b"Transfer-Encoding: chunked, gzip"), 400, True),
    Case(S, "te_unknown_coding", "RFC 9112 6.1 (an unknown coding is 501)",
         post(b"0\r\n\r\n", H, b"Transfer-Encoding: gzip, chunked"), 501, True),
    Case(S, "te_chunked_twice", "RFC 9112 7 (chunked at most once)",
         post(b"0\r\n\r\n", H, b"Transfer-Encoding: chunked, chunked"), 400, True),
    Case(S, "te_two_lines", "RFC 9112 7", post(b"0\r\n\r\n", H, TE, TE), 400, True),
    Case(S, "te_lookalike", "RFC 9112 6.3 (4)", post(b"0\r\n\r\n", H, b"Transfer-Encoding: xchunked"), 400, True),
    Case(S, "te_in_http10", "RFC 9112 6.1 (1.0 with Transfer-Encoding is faulty framing)",
         post(b"0\r\n\r\n", H, TE, version=b"HTTP/1.0"), 400, True),
    Case(S, "te_space_before_colon", "RFC 9112 5.1", post(b"0\r\n\r\n", H, b"Transfer-Encoding : chunked"),
         400, True),
    Case(S, "cl_space_before_colon", "RFC 9112 5.1", post(b"hello", H, b"Content-Length : 5"), 400, True),
    Case(S, "te_obs_fold", "RFC 9112 5.2", post(b"0\r\n\r\n", H, b"Transfer-Encoding:\r\n chunked"), 400, True),
    Case(S, "te_vertical_tab", "RFC 9110 5.5", post(b"0\r\n\r\n", H, b"Transfer-Encoding: \x0bchunked"),
         400, True),
    Case(S, "obs_fold_after_empty_lines", "RFC 9112 5.2, 2.2",
         b"\r\n\r\n" + post(b"0\r\n\r\n", H, b"Transfer-Encoding:\r\n chunked"), 400, True),
    Case(S, "cl_name_with_space", "RFC 9110 5.1, 5.6.2 (field-name = token)",
         post(FOLLOW_UP.replace(b"follow-up", b"smuggled"), H, b"Content Length: %d" % len(FOLLOW_UP)), 400, True),
    Case(S, "te_name_with_space", "RFC 9110 5.1, 5.6.2",
         post(b"0\r\n\r\n", H, b"Transfer Encoding: chunked"), 400, True),
    Case(S, "trailer_empty_name", "RFC 9112 7.1.2, RFC 9110 5.1", chunked(b"5\r\nhello\r\n0\r\n: v\r\n\r\n"),
         400, True),
    Case(S, "trailer_name_with_space", "RFC 9112 7.1.2, RFC 9110 5.1",
         chunked(b"5\r\nhello\r\n0\r\nX T: v\r\n\r\n"), 400, True),
    # found by tests/fuzz/fuzz_http_framing: llhttp strict takes both
    Case(S, "trailer_obs_fold", "RFC 9112 5.2, 7.1.2", chunked(b"5\r\nhello\r\n0\r\nX: a\r\n b\r\n\r\n"),
         400, True),
    Case(S, "trailer_section_bare_lf", "RFC 9112 2.2, 7.1.2",
         chunked(b"5\r\nhello\r\n0\r\n\n" + FOLLOW_UP.replace(b"follow-up", b"smuggled")), 400, True),
    Case(S, "trailer_field_bare_lf_end", "RFC 9112 2.2, 7.1.2",
         chunked(b"5\r\nhello\r\n0\r\nX: a\r\n\n"), 400, True),
    Case(S, "trailer_whitespace_fold", "RFC 9112 5.2, 7.1.2",
         chunked(b"5\r\nhello\r\n0\r\nX:\r\n \r\n\r\n"), 400, True),
    Case(S, "trailer_bare_lf_inside", "RFC 9112 2.2, 7.1.2",
         chunked(b"5\r\nhello\r\n0\r\nX: a\nY: b\r\n\r\n"), 400, True),
    Case(S, "bare_cr_in_field", "RFC 9112 2.2", b"GET /healthz HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n", 400, True),
    # RFC 9112 2.2 lets a recipient accept a bare LF as a line end; batchd
    # refuses it everywhere in the head, since a proxy in front may not.
    Case(S, "bare_lf_everywhere", "RFC 9112 2.2", b"GET /healthz HTTP/1.1\nHost: x\n\n", 400, True),
    Case(S, "bare_lf_after_request_line", "RFC 9112 2.2", b"GET /healthz HTTP/1.1\nHost: x\r\n\r\n", 400, True),
    Case(S, "bare_lf_after_field", "RFC 9112 2.2", b"GET /healthz HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n", 400, True),
    Case(S, "bare_lf_end_of_head", "RFC 9112 2.2", b"GET /healthz HTTP/1.1\r\nHost: x\r\n\n", 400, True),

    # --- malformed: invalid request line, target, fields, Host: 400 (505, 431, 501) and closed -
    Case(M, "no_version", "RFC 9112 3 (request-line = method SP target SP version)",
         b"GET /healthz\r\nHost: x\r\n\r\n", 400, True),
    Case(M, "no_version_no_fields", "RFC 9112 3", b"GET /healthz\r\n\r\n", 400, True),
    Case(M, "version_2_0", "RFC 9110 15.6.6 (505), RFC 9112 2.3", get(H, version=b"HTTP/2.0"), 505, True),
    Case(M, "version_0_9", "RFC 9110 15.6.6", get(H, version=b"HTTP/0.9"), 505, True),
    # RFC 9110 2.5 says a higher minor version SHOULD be served as 1.1;
    # llhttp refuses versions it does not know, and so does batchd.
    Case(M, "version_1_2", "RFC 9112 2.3", get(H, version=b"HTTP/1.2"), 400, True),
    Case(M, "version_lowercase", "RFC 9112 2.3 (HTTP-name is case-sensitive)", get(H, version=b"http/1.1"),
         400, True),
    Case(M, "version_no_minor", "RFC 9112 2.3", get(H, version=b"HTTP/1"), 400, True),
    Case(M, "version_two_digit_minor", "RFC 9112 2.3", get(H, version=b"HTTP/1.10"), 400, True),
    Case(M, "space_after_version", "RFC 9112 3", get(H, version=b"HTTP/1.1 "), 400, True),
    # RFC 9112 3 lets a recipient split the request line on any whitespace;
    # batchd takes the single-SP grammar literally.
    Case(M, "double_space_after_method", "RFC 9112 3", b"GET  /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400, True),
    Case(M, "double_space_before_version", "RFC 9112 3", b"GET /healthz  HTTP/1.1\r\nHost: x\r\n\r\n", 400, True),
    Case(M, "tab_separator", "RFC 9112 3", b"GET\t/healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400, True),
    Case(M, "leading_space", "RFC 9112 3", b" GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400, True),
    Case(M, "space_in_target", "RFC 9112 3.2", get(H, target=b"/hea lthz"), 400, True),
    Case(M, "ctl_in_target", "RFC 9112 3.2, RFC 3986 3.3", get(H, target=b"/a\x7fb"), 400, True),
    Case(M, "non_ascii_in_target", "RFC 9112 3.2, RFC 3986 3.3", get(H, target=b"/a\xe9b"), 400, True),
    Case(M, "fragment_in_target", "RFC 9112 3.2.1 (origin-form has no fragment)",
         get(H, target=b"/healthz#frag"), 400, True),
    Case(M, "asterisk_form_not_options", "RFC 9112 3.2.4", get(H, target=b"*"), 400, True),
    Case(M, "relative_target", "RFC 9112 3.2", get(H, target=b"healthz"), 400, True),
    Case(M, "invalid_method_char", "RFC 9110 9.1 (method = token)", get(H, method=b"G@T"), 400, True),
    # An unknown method that is a token SHOULD be 501 (RFC 9110 9.1);
    # llhttp knows only registered methods, so these are 400.
    Case(M, "lowercase_method", "RFC 9110 9.1 (methods are case-sensitive)", get(H, method=b"get"), 400, True),
    Case(M, "unknown_method", "RFC 9110 9.1", get(H, method=b"FOO"), 400, True),
    Case(M, "connect_authority_form", "RFC 9110 9.3.6, 9.1 (not implemented)",
         get(H, method=b"CONNECT", target=b"x:443"), 501, True),
    Case(M, "no_host", "RFC 9112 3.2 (MUST 400)", get(), 400, True, check=neutral_error),
    Case(M, "two_hosts", "RFC 9112 3.2", get(b"Host: a.example", b"Host: b.example"), 400, True),
    Case(M, "two_hosts_same", "RFC 9112 3.2", get(H, H), 400, True),
    Case(M, "host_with_space", "RFC 9110 7.2", get(b"Host: a b"), 400, True),
    Case(M, "host_with_userinfo", "RFC 9110 7.2, 4.2.4", get(b"Host: user@x"), 400, True),
    Case(M, "host_with_path", "RFC 9110 7.2", get(b"Host: x/healthz"), 400, True),
    Case(M, "host_bad_port", "RFC 3986 3.2.3", get(b"Host: x:8o"), 400, True),
    Case(M, "host_open_bracket", "RFC 3986 3.2.2", get(b"Host: [::1"), 400, True),
    Case(M, "host_bad_ipv6", "RFC 3986 3.2.2", get(b"Host: [::g]"), 400, True),
    Case(M, "host_bad_pct", "RFC 3986 2.1", get(b"Host: x%4"), 400, True),
    Case(M, "absolute_form_no_host", "RFC 9112 3.2", get(target=b"http://x/healthz"), 400, True),
    Case(M, "absolute_form_userinfo", "RFC 9110 4.2.4", get(H, target=b"http://u:p@x/healthz"), 400, True),
    Case(M, "absolute_form_empty_host", "RFC 9110 4.2.1", get(H, target=b"http:///healthz"), 400, True),
    Case(M, "absolute_form_other_scheme", "RFC 9110 4.2", get(H, target=b"ftp://x/healthz"), 400, True),
    Case(M, "absolute_form_bad_port", "RFC 3986 3.2.3", get(H, target=b"http://x:8o/healthz"), 400, True),
    Case(M, "field_name_with_space", "RFC 9110 5.1, 5.6.2", get(H, b"X A: b"), 400, True, check=neutral_error),
    Case(M, "empty_field_name", "RFC 9110 5.1", get(H, b": value"), 400, True),
    Case(M, "space_before_colon", "RFC 9112 5.1 (MUST 400)", get(H, b"X-A : b"), 400, True),
    Case(M, "tab_before_colon", "RFC 9112 5.1", get(H, b"X-A\t: b"), 400, True),
    Case(M, "field_without_colon", "RFC 9112 5", get(H, b"BadHeader"), 400, True),
    Case(M, "field_name_separator", "RFC 9110 5.6.2", get(H, b"X(A): b"), 400, True),
    Case(M, "field_name_slash", "RFC 9110 5.6.2", get(H, b"X/A: b"), 400, True),
    Case(M, "field_name_non_ascii", "RFC 9110 5.6.2", get(H, b"X\xe9: b"), 400, True),
    Case(M, "nul_in_value", "RFC 9110 5.5 (reject or replace NUL)", get(H, b"X-A: a\x00b"), 400, True),
    Case(M, "ctl_in_value", "RFC 9110 5.5", get(H, b"X-A: a\x01b"), 400, True),
    Case(M, "del_in_value", "RFC 9110 5.5", get(H, b"X-A: a\x7fb"), 400, True),
    Case(M, "bare_cr_in_value", "RFC 9110 5.5, RFC 9112 2.2", get(H, b"X-A: a\rb"), 400, True),
    Case(M, "obs_fold", "RFC 9112 5.2", get(H, b"X-Folded: a", b" b"), 400, True),
    Case(M, "field_line_too_long", "RFC 6585 5 (431)", get(H, b"X-Big: " + b"a" * 5000), 431, True),
    Case(M, "request_line_too_long", "RFC 6585 5 (431)", get(H, target=b"/healthz?" + b"a" * 5000), 431, True),
    Case(M, "too_many_fields", "RFC 6585 5 (431)", get(H, *[b"X-F%d: v" % i for i in range(100)]), 431, True),
    Case(M, "tls_client_hello", "RFC 9112 3", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40,
         400, True),
    Case(M, "error_format_rpc", "RFC 9110 5.6.2 (answered in the /rpc error format)",
         post(b"{}", H, b"X A: b", b"Content-Length: 2", target=b"/rpc/x"), 400, True,
         check=error_format({"code", "message", "details", "hint"})),
    Case(M, "error_format_business", "RFC 9112 3.2 (answered in the /business error format)",
         get(target=b"/business/batches"), 400, True, check=error_format({"message"})),
]


def _split(buf, head_first):
    """Final responses in buf (1xx interim answers are skipped)."""
    out = []
    while buf:
        try:
            r, buf = parse_response(buf, head_only=head_first and not out, eof=True)
        except Incomplete:
            break
        if 100 <= r.status < 200:
            continue
        out.append(r)
    return out


def _exchange(srv, case):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        try:
            s.sendall(case.data + (FOLLOW_UP if case.follow_up else b""))
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered and closed before everything was sent (e.g. 431)
        if case.close:
            data, closed = recv_until_close(s, 4.0)
        else:
            # a kept connection: read until both answers are in (the server does not close)
            data, closed = b"", False
            deadline = time.time() + 4.0
            while time.time() < deadline and len(_split(data, case.head)) < 2:
                more, closed = recv_until_close(s, 0.05)
                data += more
                if closed:
                    break
        return _split(data, case.head), closed, data
    finally:
        s.close()


def test_case_count():
    groups = {}
    for c in CASES:
        groups[c.group] = groups.get(c.group, 0) + 1
    assert len({c.id for c in CASES}) == len(CASES), "duplicate case ids"
    assert sum(groups.values()) >= 66 and set(groups) == {C, S, M}, groups
    print("conformance cases: %s" % json.dumps(groups))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_conformance(srv, case):
    resps, closed, data = _exchange(srv, case)
    assert resps, "%s (%s): no answer: %r" % (case.id, case.rfc, data[:300])
    first = resps[0]
    assert first.status == case.status, "%s (%s): status %d, expected %d: %r" % (
        case.id, case.rfc, first.status, case.status, first.body[:300])
    if case.status >= 400:
        assert first.header("content-type", "").startswith("application/json"), first.header_list
        first.json()  # an error body in the surface's format, never empty
    if case.check:
        case.check(first)
    if case.body is not None:
        doc = first.json()
        assert doc["bytes"] == len(case.body) and doc["sha256"] == hashlib.sha256(case.body).hexdigest(), (
            case.id, doc, case.body)
    followed = [r for r in resps[1:] if r.header("x-request-id") == "follow-up"]
    if case.close:
        assert closed, "%s (%s): the connection stayed open after %d" % (case.id, case.rfc, first.status)
        assert len(resps) == 1 and not followed, "%s (%s): answered after it: %r" % (
            case.id, case.rfc, [(r.status, r.header("x-request-id")) for r in resps[1:]])
        if first.status >= 400:
            assert first.header("connection", "").lower() == "close", first.header_list
        assert b"smuggled" not in data
    else:
        assert len(resps) == 2 and followed and followed[0].status == 200, (
            "%s (%s): the pipelined request after it was not answered as the next message: %r" % (
                case.id, case.rfc, [(r.status, r.header("x-request-id")) for r in resps]))
        assert not closed or case.close


def test_absolute_form_routes_by_path_and_query(srv):
    """The absolute-form's path and query reach the handler, its authority
    does not: /_test/slow?ms=300 sleeps 300 ms (RFC 9112 3.2.2)."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    t0 = time.time()
    s.sendall(get(b"Host: a.example", target=b"http://b.example:9/_test/slow?ms=300"))
    resps, closed = [], False
    data = b""
    while not resps and time.time() - t0 < 5:
        more, closed = recv_until_close(s, 0.05)
        data += more
        resps = _split(data, False)
        if closed:
            break
    s.close()
    assert resps and resps[0].status == 200 and resps[0].json() == {"slept": True}, data[:300]
    assert time.time() - t0 >= 0.29


def test_split_writes_are_parsed_alike(srv):
    """Request line, fields and chunked body sent one byte per write: the
    checks keep their state across reads (the same answers as in one write)."""
    for data, status in ((chunked(b"5\r\nhello\r\n0\r\n\r\n"), 200), (get(H, b"X A: b"), 400),
                         (b"\r\n\r\n" + get(H, b"X: a", b" b"), 400), (get(b"Host: x", b"Host: y"), 400),
                         (b"GET /healthz HTTP/1.1\r\nHost: x\n\r\n", 400), (chunked(b"5\r\nhelloZZ0\r\n\r\n"), 400)):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            for i in range(len(data)):
                s.sendall(data[i:i + 1])
                if i % 7 == 0:
                    time.sleep(0.001)
        except (BrokenPipeError, ConnectionResetError):
            pass
        if status == 200:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        out, closed = recv_until_close(s, 4.0)
        s.close()
        resps = _split(out, False)
        assert resps and resps[0].status == status and closed, (data, out[:300])
