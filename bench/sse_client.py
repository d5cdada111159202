"""The clients of bench/bench_serve.py: streaming completions over kept-alive HTTP/1.1 connections, any
number of them read in ONE thread through a selector.

Why not http.client in a thread per stream (what bench_serve.py used before): the clients share the 2
cores with the server they measure, and 32 threads parsing headers with http.client (and trading one
GIL) took half a core -- 0.4-0.6 CPU seconds a second at 32 names-sized streams, against 0.1-0.2
here -- so the figure was partly the clients' speed. Students' clients run on their own machines.

What it reads is the wire as the server writes it: a status line and headers, then the body in chunked
transfer encoding (uvicorn's for a response without a length), whose server-sent events are counted:
an event with logprobs' "tokens" key is one token (found without parsing the JSON).
"""

import selectors
import socket
import time

MARK = b'"tokens"'


class Conn:
    """One kept-alive connection to 127.0.0.1:port (opened at its first request, again where the server closed it)."""

    def __init__(self, port):
        self.port, self.sock = port, None

    def send(self, request):
        for attempt in (1, 2):
            if self.sock is None:
                self.sock = socket.create_connection(("127.0.0.1", self.port))
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                self.sock.sendall(request)
                return
            except (BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt == 2:
                    raise

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class Response:
    """One streaming response as it arrives: feed() the bytes read; tokens, first (seconds), done, and
    chunks (the body's HTTP chunks: one per socket write of the server)."""

    def __init__(self, t0):
        self.t0, self.buf, self.body, self.head, self.chunks = t0, b"", b"", None, []
        self.tokens, self.first, self.done, self.seconds = 0, None, False, None

    def feed(self, data):
        self.buf += data
        if self.head is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            self.head, self.buf = self.buf[:end].decode("latin-1"), self.buf[end + 4:]
            if not self.head.startswith("HTTP/1.1 200"):
                raise RuntimeError(f"the server answered {self.head.splitlines()[0]!r}: {self.buf[:300]!r}")
            if "transfer-encoding: chunked" not in self.head.lower():
                raise RuntimeError(f"a stream without chunked encoding: {self.head!r}")
        while not self.done:  # the chunks that are whole: "<size hex>\r\n<size bytes>\r\n"
            line = self.buf.find(b"\r\n")
            if line < 0:
                return
            size = int(self.buf[:line], 16)
            if len(self.buf) < line + 2 + size + 2:
                return
            chunk, self.buf = self.buf[line + 2:line + 2 + size], self.buf[line + 2 + size + 2:]
            if size == 0:  # (the last chunk: the response is whole)
                self.done, self.seconds = True, time.perf_counter() - self.t0
                break
            self.chunks.append(chunk)
            self.body += chunk
            *events, self.body = self.body.split(b"\n\n")
            n = sum(MARK in e for e in events)
            if n and self.first is None:
                self.first = time.perf_counter() - self.t0
            self.tokens += n


def request_bytes(port, body):
    return (b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (port, len(body))) + body


def many(conns, body, each=1):
    """The same request (JSON bytes, "stream": true) `each` times on every connection, one after another on
    each (a connection sends its next request when its last ended: as many streams as connections all
    along), all read in this thread: -> ([(tokens, seconds to the first token, seconds in all)] for
    every request, seconds until the last ended)."""
    sel, live, left = selectors.DefaultSelector(), {}, dict.fromkeys(conns, each)
    t0 = time.perf_counter()

    def start(conn):
        t = time.perf_counter()
        conn.send(request_bytes(conn.port, body))
        live[conn] = Response(t)
        sel.register(conn.sock, selectors.EVENT_READ, conn)
    for conn in conns:
        start(conn)
    results = []
    while live:
        for key, _ in sel.select():
            conn, got = key.data, live[key.data]
            try:
                data = conn.sock.recv(1 << 16)
            except ConnectionResetError:
                data = b""
            if not data:  # closed: by the server's keep-alive timeout before it read the request, else a fault
                sel.unregister(conn.sock)
                conn.close()
                if got.head is not None:
                    raise RuntimeError("the server closed a stream before its end")
                start(conn)
                continue
            got.feed(data)
            if got.done:
                sel.unregister(conn.sock)
                results.append((got.tokens, got.first, got.seconds))
                del live[conn]
                left[conn] -= 1
                if left[conn]:
                    start(conn)
    sel.close()
    return results, time.perf_counter() - t0


def stream(conn, body):
    """(tokens, seconds to the first token, seconds in all) of one streaming request."""
    return many([conn], body)[0][0]
