"""The REST API's HTTP server: cheroot, hardened so that idle or slow clients cannot starve others.

cheroot hands every newly accepted connection straight to a worker thread, which then blocks
reading the request line for up to ``timeout``: 16 idle connections took all 16 workers and the
17th client waited ~10 s per wave (issue 11). Here:

* a connection goes to a worker only once its request line and headers have arrived complete:
  until it sends anything it waits in cheroot's selector (like a keep-alive connection between
  requests, closed after ``idle_timeout``); with headers begun but not finished it waits in a
  list that a watchdog looks at every 0.25 s (closed after ``header_timeout``) — so neither idle
  nor slowloris clients hold a worker;
* reading the body is bounded in total, not per ``recv``: within ``body_timeout`` after the
  headers; past that the read side of the socket is shut, so the worker's read ends at once
  (the client gets a 408 JSON error);
* at most ``max_connections`` are open; one more is closed at accept.

Malformed chunked bodies and bodies larger than the limit are answered by the API itself
(JSON 400/413), see ``api.DirectoryAPI._body``.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time

from cheroot import errors as cheroot_errors
from cheroot import server as cheroot_server
from cheroot import wsgi

LOG = logging.getLogger(__name__)

HTTP_THREADS = 16
ACCEPT_BACKLOG = 128
IDLE_TIMEOUT_S = 30.0      # an open connection that sends nothing
HEADER_TIMEOUT_S = 10.0    # request line + headers, in total
BODY_TIMEOUT_S = 30.0      # the body, in total, after the headers
MAX_CONNECTIONS = 1024     # open at once (idle ones included)
WATCH_INTERVAL_S = 0.25


class _Deadlines:
    """Read deadlines of the connections that are in a worker now; a watchdog enforces them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._due: dict[int, tuple[float, cheroot_server.HTTPConnection]] = {}

    def set(self, conn, seconds: float | None) -> None:
        with self._lock:
            if seconds is None:
                self._due.pop(id(conn), None)
            else:
                self._due[id(conn)] = (time.monotonic() + seconds, conn)

    def expire(self) -> None:
        now = time.monotonic()
        with self._lock:
            late = [conn for due, conn in self._due.values() if due <= now]
            for conn in late:
                self._due.pop(id(conn), None)
        for conn in late:
            try:
                # Only the read side: a response being written still goes out.
                conn.socket.shutdown(socket.SHUT_RD)
            except OSError:
                pass


class _Request(cheroot_server.HTTPRequest):
    """A request whose reading is bounded in total (see the module docstring)."""

    def parse_request(self):
        srv = self.server
        srv.deadlines.set(self.conn, srv.header_timeout)  # headers are complete already (see above)
        super().parse_request()
        srv.deadlines.set(self.conn, srv.body_timeout if self.ready else None)

    def respond(self):
        try:
            super().respond()
        finally:
            self.server.deadlines.set(self.conn, None)


class _Connection(cheroot_server.HTTPConnection):
    RequestHandlerClass = _Request

    def __init__(self, server, sock, makefile=cheroot_server.MakeFile):
        super().__init__(server, sock, makefile)
        self.fresh = True  # accepted, not yet handed to a worker
        server.count_connection(+1)

    def communicate(self):
        try:
            return super().communicate()
        except TimeoutError:  # a read deadline passed between requests
            return False

    def close(self):
        if not getattr(self, "closed", False):
            self.closed = True
            self.server.count_connection(-1)
            self.server.deadlines.set(self, None)
        super().close()


PEEK_BYTES = 65536


def _headers_state(sock) -> str:
    """'none' (nothing sent yet), 'partial' (headers begun), 'ready' (complete, or for the worker
    to judge: EOF, an error, more than PEEK_BYTES), without reading anything off the socket."""
    try:
        ready, _w, _x = select.select([sock], [], [], 0)
        if not ready:
            return "none"
        data = sock.recv(PEEK_BYTES, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return "none"
    except (OSError, ValueError):
        return "ready"
    if not data or len(data) >= PEEK_BYTES or b"\r\n\r\n" in data or b"\n\n" in data:
        return "ready"
    return "partial"


def deferred_handshake(adapter):
    """``adapter`` (cheroot's builtin TLS adapter) with the TLS handshake moved out of accept().

    cheroot does the handshake in its one connection-manager thread, blocking up to the socket
    timeout: one client that connects and sends nothing stopped every other accept. Here the
    socket is wrapped without the handshake; OpenSSL does it on the first read, in a worker,
    once the client has sent something (see ``process_conn``), within the header deadline.
    """
    import ssl

    def wrap(sock):
        try:
            wrapped = adapter.context.wrap_socket(sock, do_handshake_on_connect=False, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            raise cheroot_errors.FatalSSLAlert(*exc.args) from exc
        return wrapped, {"wsgi.url_scheme": "https", "HTTPS": "on"}

    adapter.wrap = wrap
    return adapter


class HardenedServer(wsgi.Server):
    """``cheroot.wsgi.Server`` with the limits of the module docstring."""

    ConnectionClass = _Connection

    def __init__(self, bind, app, *, numthreads: int = HTTP_THREADS, idle_timeout: float = IDLE_TIMEOUT_S,
                 header_timeout: float = HEADER_TIMEOUT_S, body_timeout: float = BODY_TIMEOUT_S,
                 max_connections: int = MAX_CONNECTIONS, **kwargs) -> None:
        # cheroot's ``timeout`` is both the per-recv socket timeout and the idle expiry of
        # connections waiting in its selector.
        super().__init__(bind, app, numthreads=numthreads, timeout=int(max(1, idle_timeout)),
                         request_queue_size=ACCEPT_BACKLOG, **kwargs)
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.max_connections = max_connections
        # Idle connections wait in cheroot's selector too: its keep-alive limit (10 by default)
        # would otherwise turn every client's keep-alive off while they are there.
        self.keep_alive_conn_limit = max_connections
        self.deadlines = _Deadlines()
        self._open = 0
        self._open_lock = threading.Lock()
        self._partial: dict[int, tuple[float, cheroot_server.HTTPConnection]] = {}
        self._partial_lock = threading.Lock()
        self._watch_stop = threading.Event()
        self._watch: threading.Thread | None = None

    @property
    def open_connections(self) -> int:
        """Connections open now (idle ones included)."""
        return self._open

    def count_connection(self, delta: int) -> None:
        with self._open_lock:
            self._open += delta

    def process_conn(self, conn) -> None:
        """Called by cheroot's connection manager thread for a new or a readable connection
        (always at a request boundary)."""
        if getattr(conn, "fresh", False):
            conn.fresh = False
            if self._open > self.max_connections:
                LOG.warning("REST API: %d connections open; closing a new one", self._open)
                conn.close()
                return
        if not conn.rfile.has_data():  # a pipelined request is already buffered: straight on
            state = _headers_state(conn.socket)
            if state == "none":
                # Park it in the selector like a keep-alive connection: no worker until it talks.
                self._connections.put(conn)
                return
            if state == "partial":
                with self._partial_lock:
                    self._partial.setdefault(id(conn), (time.monotonic() + self.header_timeout, conn))
                return
        super().process_conn(conn)

    def _check_partial(self) -> None:
        now = time.monotonic()
        with self._partial_lock:
            waiting = list(self._partial.items())
        for key, (due, conn) in waiting:
            state = _headers_state(conn.socket)
            if state == "partial" and due > now:
                continue
            with self._partial_lock:
                self._partial.pop(key, None)
            if state == "partial":  # headers not complete in time
                try:
                    conn.socket.sendall(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n"
                                        b"Connection: close\r\n\r\n")
                except OSError:
                    pass
                conn.close()
            else:
                super().process_conn(conn)  # the worker queue is thread-safe

    def prepare(self) -> None:
        super().prepare()
        self._watch = threading.Thread(target=self._watchdog, name="directory-http-deadlines", daemon=True)
        self._watch.start()

    def _watchdog(self) -> None:
        while not self._watch_stop.wait(WATCH_INTERVAL_S):
            try:
                self.deadlines.expire()
                self._check_partial()
            except Exception:  # the watchdog must keep running
                LOG.exception("REST API deadline watchdog failed")

    def stop(self) -> None:
        self._watch_stop.set()
        super().stop()
        with self._partial_lock:
            waiting, self._partial = list(self._partial.values()), {}
        for _due, conn in waiting:
            conn.close()
