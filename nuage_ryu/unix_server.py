"""A threaded HTTP server on a unix socket (stdlib only).

Serves the agent socket (nuage_ryu/agent/attach/server.py) and the Docker
plugin's socket (nuage_ryu/plugins/docker.py): one thread per connection, a
stale socket of a previous run replaced, the socket file removed on stop.
"""

from __future__ import annotations

import contextlib
import json
import os
import socketserver
import threading
from http.server import BaseHTTPRequestHandler


class JSONRequestHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 handler base with one way to answer: a JSON body of ``content_type``."""

    protocol_version = "HTTP/1.1"
    content_type = "application/json"

    def reply_json(self, status: int, payload) -> None:
        """Send ``payload`` as the answer; an error answer also closes the connection."""
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(data)))
        if status >= 400:
            # The request body may not have been read: never reuse this connection.
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """``handler`` instances reach ``routes`` as ``self.server.routes``."""

    daemon_threads = True
    request_queue_size = 128  # listen backlog: a burst of CNI calls must not see EAGAIN

    def __init__(self, path: str, handler: type[BaseHTTPRequestHandler], routes: object) -> None:
        self.routes = routes
        super().__init__(path, handler)

    @classmethod
    def start(cls, path: str, handler: type[BaseHTTPRequestHandler], routes: object, *, name: str,
              mode: int | None = None, dir_mode: int = 0o777) -> UnixHTTPServer:
        """Bind ``path`` (its folder made with ``dir_mode``, file ``mode`` if given) and serve in a thread."""
        os.makedirs(os.path.dirname(path) or ".", mode=dir_mode, exist_ok=True)
        _unlink(path)  # a stale socket of a previous run
        server = cls(path, handler, routes)
        if mode is not None:
            os.chmod(path, mode)
        threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
        return server

    def stop(self, *also_remove: str) -> None:
        """Stop serving, close, remove the socket file (and ``also_remove``)."""
        self.shutdown()
        self.server_close()
        for path in (self.server_address, *also_remove):
            if path:
                _unlink(path)
