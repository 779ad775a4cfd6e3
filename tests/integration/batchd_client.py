"""Helpers for black-box tests that need exact bytes: raw HTTP/1.1 over
sockets and a small response parser that splits pipelined responses.

Standard library only. The parser understands what batchd sends:
Content-Length bodies, chunked bodies (with or without trailers), bodiless
responses (1xx, 204, 304, answers to HEAD) and, at end of input, bodies
delimited by the connection closing."""
import json
import socket
import time


class Response:
    """One parsed HTTP response."""

    def __init__(self, status, headers, body, reason="", version="HTTP/1.1", header_list=None,
                 trailers=None):
        self.status = status            # int
        self.reason = reason            # str, may be empty
        self.version = version          # "HTTP/1.1"
        self.headers = headers          # dict, lower-case names (last value wins)
        self.header_list = header_list or list(headers.items())  # [(lower-case name, value)] in order
        self.body = body                # bytes
        self.trailers = trailers or {}  # chunked trailers, lower-case names

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def all(self, name):
        """Every value of a repeated header, in order."""
        name = name.lower()
        return [v for k, v in self.header_list if k == name]

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return "<Response %d %r>" % (self.status, self.body[:80])


class Incomplete(Exception):
    """More bytes are needed to finish the response."""


def _bodiless(status, head_only):
    return head_only or 100 <= status < 200 or status in (204, 304)


def _parse_head(buf):
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        raise Incomplete()
    lines = buf[:end].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError("bad status line %r" % lines[0])
    headers, header_list = {}, []
    for line in lines[1:]:
        k, sep, v = line.partition(":")
        if not sep:
            raise ValueError("bad header line %r" % line)
        k, v = k.strip().lower(), v.strip()
        headers[k] = v
        header_list.append((k, v))
    return parts[0], int(parts[1]), parts[2] if len(parts) > 2 else "", headers, header_list, end + 4


def _parse_chunked(buf, pos):
    """Returns (body, trailers, end offset) of a chunked body starting at pos."""
    body = bytearray()
    while True:
        nl = buf.find(b"\r\n", pos)
        if nl < 0:
            raise Incomplete()
        size_text = buf[pos:nl].split(b";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ValueError("bad chunk size %r" % size_text)
        pos = nl + 2
        if size == 0:
            break
        if len(buf) < pos + size + 2:
            raise Incomplete()
        if buf[pos + size:pos + size + 2] != b"\r\n":
            raise ValueError("chunk of %d bytes not followed by CRLF" % size)
        body += buf[pos:pos + size]
        pos += size + 2
    trailers = {}
    while True:  # trailer fields, then an empty line
        nl = buf.find(b"\r\n", pos)
        if nl < 0:
            raise Incomplete()
        line = buf[pos:nl]
        pos = nl + 2
        if not line:
            return bytes(body), trailers, pos
        k, _, v = line.decode("latin-1").partition(":")
        trailers[k.strip().lower()] = v.strip()


def parse_response(buf, head_only=False, eof=False):
    """Parses the first response in buf. Returns (Response, rest).
    Raises Incomplete when buf does not hold all of it yet (eof=True: the
    peer closed, so a body without a length ends at the end of buf) and
    ValueError on bytes that are not HTTP."""
    version, status, reason, headers, header_list, pos = _parse_head(buf)
    trailers = {}
    if _bodiless(status, head_only):
        body = b""
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        body, trailers, pos = _parse_chunked(buf, pos)
    elif "content-length" in headers:
        n = int(headers["content-length"])
        if len(buf) < pos + n:
            raise Incomplete()
        body, pos = buf[pos:pos + n], pos + n
    elif eof:
        body, pos = buf[pos:], len(buf)
    else:
        raise Incomplete()
    return Response(status, headers, bytes(body), reason, version, header_list, trailers), buf[pos:]


def parse_responses(buf, head=(), interim=False):
    """Splits bytes holding any number of complete responses (the bytes
    a server sent before closing). head: indexes of final responses that
    answer HEAD requests. interim: keep 1xx responses (they never count
    as an index). Raises ValueError if bytes are left that are not a
    complete response."""
    out, final = [], 0
    buf = bytes(buf)
    while buf:
        try:
            r, buf = parse_response(buf, head_only=final in head, eof=True)
        except Incomplete:
            raise ValueError("truncated response after %d complete ones: %r" % (len(out), buf[:200]))
        if 100 <= r.status < 200 and r.status != 101:
            if interim:
                out.append(r)
            continue
        out.append(r)
        final += 1
    return out


def _parse_one(buf, head_only):
    """Returns (Response, rest) or (None, buf) when incomplete (kept for
    older tests)."""
    try:
        return parse_response(buf, head_only)
    except Incomplete:
        return None, buf


def connect(port, timeout=5.0, host="127.0.0.1"):
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_until_close(sock, timeout=5.0):
    """(bytes, closed): everything the peer sends until it closes (closed:
    EOF or a reset) or `timeout` seconds pass (in total, not per read)."""
    out = bytearray()
    deadline = time.time() + timeout
    while True:
        left = deadline - time.time()
        if left <= 0:
            return bytes(out), False
        sock.settimeout(max(0.01, left))
        try:
            c = sock.recv(65536)
        except socket.timeout:
            return bytes(out), False
        except ConnectionResetError:
            return bytes(out), True
        if not c:
            return bytes(out), True
        out += c


def read_until_close(sock, timeout=5.0):
    """Everything the peer sends until it closes or `timeout` seconds pass."""
    return recv_until_close(sock, timeout)[0]


def raw_request(port, data, timeout=5.0, host="127.0.0.1"):
    """Sends bytes on a new connection and returns everything the server
    sends until it closes the connection or `timeout` seconds pass. A
    server that resets the connection ends the read too."""
    s = connect(port, timeout, host)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed early (e.g. 413 before the body)
        return read_until_close(s, timeout)
    finally:
        s.close()


send_raw = raw_request  # the name older tests use


def recv_responses(sock, n, timeout=5.0, initial=b"", head_first=False, head=()):
    """Reads exactly n final responses from a socket (pipelining-aware;
    1xx interim responses are skipped). head_first: the first response
    answers a HEAD request; head: indexes of responses that answer HEAD.
    Bytes after the n-th response stay unread in the kernel or are lost,
    so ask for every response the socket will carry."""
    head = set(head) | ({0} if head_first else set())
    buf = bytes(initial)
    out = []
    eof = False
    deadline = time.time() + timeout
    while len(out) < n:
        try:
            r, buf = parse_response(buf, head_only=len(out) in head, eof=eof)
        except Incomplete:
            r = None
        if r is not None:
            if 100 <= r.status < 200 and r.status != 101:
                continue
            out.append(r)
            continue
        if eof:
            raise ConnectionError("closed after %d of %d responses (%d bytes left: %r)"
                                  % (len(out), n, len(buf), buf[:200]))
        left = deadline - time.time()
        if left <= 0:
            raise TimeoutError("got %d of %d responses (%d bytes pending: %r)" % (len(out), n, len(buf), buf[:200]))
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("got %d of %d responses (%d bytes pending: %r)" % (len(out), n, len(buf), buf[:200]))
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            eof = True
        buf += chunk
    return out


def request_bytes(method, path, headers=None, body=b"", host="127.0.0.1"):
    """Builds one HTTP/1.1 request. headers: dict or list of pairs; a
    Content-Length is added for a body unless given (or chunked)."""
    if isinstance(body, str):
        body = body.encode()
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    names = {k.lower() for k, _ in pairs}
    if "host" not in names:
        pairs.insert(0, ("Host", host))
    if body and "content-length" not in names and "transfer-encoding" not in names:
        pairs.append(("Content-Length", str(len(body))))
    head = "%s %s HTTP/1.1\r\n" % (method, path) + "".join("%s: %s\r\n" % kv for kv in pairs) + "\r\n"
    return head.encode("latin-1") + body
