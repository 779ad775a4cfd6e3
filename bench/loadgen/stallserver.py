#!/usr/bin/python3
"""A tiny keep-alive HTTP/1.1 server for loadgen's tests (127.0.0.1 only).

Answers every request at once with 200 "ok", except during one stall window:
a response due between --stall-after and --stall-after + --stall-ms (seconds
counted from the first request received) is held until the window ends, as if
the server had frozen (a GC pause, a lock, a full disk).

  stallserver.py [--stall-after S] [--stall-ms MS] [--close] [--dump FILE] [--log FILE]

--close answers with "Connection: close" and closes after each response;
--dump writes the first request that has a body (head and body) to FILE;
--log appends one line per request: its request line and header lines
joined by "|". HEAD requests get the headers of a GET and no body.
Prints the port it listens on, then serves until stdin closes or it is killed.
"""
import argparse
import asyncio
import sys
import time


class Server:
    def __init__(self, args):
        self.args = args
        self.first = None  # monotonic time of the first request
        self.dumped = False
        self.log = open(args.log, "a", buffering=1) if args.log else None

    def stall_delay(self):
        now = time.monotonic()
        if self.first is None:
            self.first = now
        if self.args.stall_ms <= 0:
            return 0.0
        start = self.first + self.args.stall_after
        end = start + self.args.stall_ms / 1000.0
        return end - now if start <= now < end else 0.0

    async def handle(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                body = await reader.readexactly(length) if length else b""
                if self.log:
                    self.log.write(head.rstrip(b"\r\n").decode("latin-1").replace("\r\n", "|") + "\n")
                if body and self.args.dump and not self.dumped:
                    self.dumped = True
                    with open(self.args.dump, "wb") as f:
                        f.write(head + body)
                delay = self.stall_delay()
                if delay > 0:
                    await asyncio.sleep(delay)
                resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                resp += b"Connection: close\r\n\r\n" if self.args.close else b"\r\n"
                if not head.startswith(b"HEAD "):
                    resp += b"ok"
                writer.write(resp)
                await writer.drain()
                if self.args.close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stall-after", type=float, default=1.0)
    ap.add_argument("--stall-ms", type=float, default=0.0)
    ap.add_argument("--close", action="store_true")
    ap.add_argument("--dump")
    ap.add_argument("--log")
    args = ap.parse_args()
    srv = Server(args)
    server = await asyncio.start_server(srv.handle, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    # serve until the parent closes our stdin (or kills us)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
