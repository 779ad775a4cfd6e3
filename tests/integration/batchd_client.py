"""Helpers for black-box tests: raw HTTP/1.1 over sockets and a tiny
response parser that splits pipelined responses exactly."""
import socket
import time


class Response:
    def __init__(self, status, headers, body):
        self.status = status      # int
        self.headers = headers    # dict, lower-case names (last value wins)
        self.body = body          # bytes

    def __repr__(self):
        return "<Response %d %r>" % (self.status, self.body[:80])


def send_raw(port, data, timeout=5.0):
    """Sends bytes and returns everything until the server closes or the timeout."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    out = b""
    s.settimeout(timeout)
    try:
        while True:
            c = s.recv(65536)
            if not c:
                break
            out += c
    except socket.timeout:
        pass
    s.close()
    return out


def _parse_one(buf, head_only):
    """Returns (Response, rest) or (None, buf) when incomplete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None, buf
    head = buf[:end].decode("latin-1").split("\r\n")
    status = int(head[0].split(" ")[1])
    headers = {}
    for line in head[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    rest = buf[end + 4:]
    if head_only or status in (100, 204, 304):
        return Response(status, headers, b""), rest
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        pos = 0
        while True:
            nl = rest.find(b"\r\n", pos)
            if nl < 0:
                return None, buf
            size = int(rest[pos:nl].split(b";")[0], 16)
            if len(rest) < nl + 2 + size + 2:
                return None, buf
            body += rest[nl + 2:nl + 2 + size]
            pos = nl + 2 + size + 2
            if size == 0:
                return Response(status, headers, body), rest[pos:]
    n = int(headers.get("content-length", "0"))
    if len(rest) < n:
        return None, buf
    return Response(status, headers, rest[:n]), rest[n:]


def recv_responses(sock, n, timeout=5.0, initial=b"", head_first=False):
    """Reads exactly n responses from a socket (pipelining-aware).
    head_first: the first response answers a HEAD request (no body)."""
    buf = initial
    out = []
    deadline = time.time() + timeout
    while len(out) < n:
        r, buf = _parse_one(buf, head_first and not out)
        if r is not None:
            if r.status == 100:
                continue
            out.append(r)
            continue
        left = deadline - time.time()
        if left <= 0:
            raise TimeoutError("got %d of %d responses" % (len(out), n))
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("got %d of %d responses" % (len(out), n))
        if not chunk:
            if len(out) < n:
                raise ConnectionError("closed after %d of %d responses" % (len(out), n))
        buf += chunk
    return out
