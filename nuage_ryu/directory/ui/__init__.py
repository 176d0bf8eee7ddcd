"""The web console: static pages served by the directory under ``/ui/``, built on the REST API only.

No build step and no run-time fetch: ``static/`` holds plain HTML, CSS and an ES module
that call ``/api/v1`` with the bearer token the operator logs in with (kept in the
browser's session storage). The server side is this file: it serves those files and
nothing else, so the console has exactly the powers of its token — a tenant token sees
only its enterprise, as in the API.
"""

from __future__ import annotations

import mimetypes
import os

STATIC = os.path.join(os.path.dirname(__file__), "static")
PREFIX = "/ui"
_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml"}
# The console is same-origin only; no framing (clickjacking), no inline script.
_HEADERS = [("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"),
            ("X-Content-Type-Options", "nosniff"), ("Cache-Control", "no-cache")]


class ConsoleApp:
    """WSGI app for ``/ui/...``: the console's files; ``/ui`` itself redirects to ``/ui/``."""

    def __init__(self, static_dir: str = STATIC) -> None:
        self.static_dir = os.path.realpath(static_dir)
        self.files = {name: os.path.join(self.static_dir, name) for name in os.listdir(self.static_dir)}

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return self._answer(start_response, "405 Method Not Allowed", b"GET only\n", "text/plain",
                                [("Allow", "GET, HEAD")])
        if path == PREFIX:
            start_response("301 Moved Permanently", [("Location", PREFIX + "/"), *_HEADERS])
            return [b""]
        name = path[len(PREFIX) + 1:] or "index.html"
        # Only the files that ship with the console: no path is ever joined from the request.
        full = self.files.get(name)
        if full is None:
            return self._answer(start_response, "404 Not Found", b"not found\n", "text/plain")
        with open(full, "rb") as f:
            body = f.read()
        ctype = _TYPES.get(os.path.splitext(name)[1]) or mimetypes.guess_type(name)[0] or "application/octet-stream"
        return self._answer(start_response, "200 OK", body, ctype,
                            head=environ.get("REQUEST_METHOD") == "HEAD")

    @staticmethod
    def _answer(start_response, status: str, body: bytes, ctype: str, extra=(), head: bool = False):
        charset = "; charset=utf-8" if ctype.startswith("text/") else ""
        start_response(status, [("Content-Type", ctype + charset), ("Content-Length", str(len(body))),
                                *_HEADERS, *extra])
        return [b"" if head else body]


def mount(api, console: ConsoleApp | None = None):
    """One WSGI app: ``/ui`` and ``/ui/...`` to the console, everything else to ``api``."""
    console = console or ConsoleApp()

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == PREFIX or path.startswith(PREFIX + "/"):
            return console(environ, start_response)
        return api(environ, start_response)

    return app
