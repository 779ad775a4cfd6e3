"""A real SMTP server for the tests (aiosmtpd, in a thread of the test
process): it records every message it accepted (250 to the end of DATA)
with its envelope, and can refuse recipients (550 at RCPT), defer them
(451 at RCPT), hold DATA without answering (a message in flight that is
never accepted), require STARTTLS with a self-signed certificate made by
openssl, and be started late (a server that is down at first)."""
import asyncio
import email
import email.policy
import os
import socket
import ssl
import subprocess
import threading
import time

from aiosmtpd.controller import Controller


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def self_signed(dirpath):
    """(cert.pem, key.pem) for CN/SAN 127.0.0.1 and localhost, made by openssl."""
    cert, key = os.path.join(dirpath, "smtp-cert.pem"), os.path.join(dirpath, "smtp-key.pem")
    if not os.path.exists(cert):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                        "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                        "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


class _Handler:
    def __init__(self, sink):
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        s = self.sink
        with s.lock:
            s.rcpt_seen.append(address)
            if address in s.refuse:
                return s.refuse[address]
            if address in s.defer:
                return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        s = self.sink
        if s.holding.is_set() or (s.hold_after is not None and s.accepted_count() >= s.hold_after):
            with s.lock:
                s.held += 1
            # never answered while held: the client is killed meanwhile, or
            # gets a 451 once released; either way the message is not accepted
            while s.holding.is_set() or (s.hold_after is not None and s.accepted_count() >= s.hold_after):
                await asyncio.sleep(0.05)
            return "451 4.3.0 Released, try again"
        with s.lock:
            s.messages.append({"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos),
                               "data": envelope.original_content or envelope.content,
                               "tls": session.ssl is not None, "peer": session.peer})
        return "250 2.0.0 Message accepted for delivery"


class SmtpSink:
    def __init__(self, port=None, tls_cert=None, require_starttls=False):
        self.port = port or free_port()
        self.lock = threading.Lock()
        self.messages = []
        self.rcpt_seen = []
        self.refuse = {}        # address -> reply (e.g. "550 5.1.1 ...")
        self.defer = set()      # addresses answered 451 at RCPT
        self.hold_after = None  # accepted messages after which DATA is held
        self.holding = threading.Event()
        self.release_all = False
        self.held = 0
        self.tls_cert = tls_cert
        self.require_starttls = require_starttls
        self.controller = None

    def start(self):
        kw = {}
        if self.tls_cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls_cert)
            kw["tls_context"] = ctx
            kw["require_starttls"] = self.require_starttls
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, **kw)
        self.controller.start()
        return self

    def stop(self):
        if self.controller:
            self.controller.stop()
            self.controller = None

    @property
    def url(self):
        return "smtp://127.0.0.1:%d" % self.port

    def accepted_count(self):
        with self.lock:
            return len(self.messages)

    def wait_count(self, n, timeout=120):
        deadline = time.time() + timeout
        while self.accepted_count() < n:
            assert time.time() < deadline, "SMTP server got %d of %d messages" % (self.accepted_count(), n)
            time.sleep(0.1)

    def parsed(self):
        """[(envelope rcpt list, email.message.EmailMessage)] of what was accepted."""
        with self.lock:
            msgs = list(self.messages)
        return [(m["rcpt_tos"], email.message_from_bytes(m["data"], policy=email.policy.default)) for m in msgs]

    def clear(self):
        with self.lock:
            self.messages.clear()
            self.rcpt_seen.clear()
