"""A small stdlib-only client of the directory REST API (TCP or unix socket, keep-alive).

Used by nuage-ctl (which must start fast, so no third-party imports here), the
tests and the benchmarks. One ``ApiClient`` holds one connection: use one per thread.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse


class ApiError(Exception):
    """The API answered with an error status; ``status``, ``code`` and ``message`` tell which."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class CannotConnect(Exception):
    """The API endpoint could not be reached."""


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a unix socket (the REST API's ``api_socket``)."""

    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class ApiClient:
    """``url`` like ``http://127.0.0.1:8080`` or ``socket_path`` for a unix socket."""

    def __init__(self, url: str | None = None, socket_path: str | None = None, token: str | None = None,
                 timeout: float = 30.0):
        if not url and not socket_path:
            raise ValueError("url or socket_path is required")
        self.url = url
        self.socket_path = socket_path
        self.token = token
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        if self.socket_path:
            return UnixHTTPConnection(self.socket_path, self.timeout)
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme == "https":
            return http.client.HTTPSConnection(parts.hostname, parts.port or 443, timeout=self.timeout)
        return http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=self.timeout)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def raw(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
            params: dict | None = None) -> tuple[int, dict, bytes]:
        """Send a request; returns (status, headers, body bytes). Raises CannotConnect."""
        if params:
            path += "?" + urllib.parse.urlencode(params)
        hdrs = {"Accept": "application/json"}
        if self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        for attempt in (1, 2):
            reused = self._conn is not None
            if self._conn is None:
                self._conn = self._connect()
            try:
                try:
                    self._conn.request(method, path, body=body, headers=hdrs)
                except (BrokenPipeError, ConnectionResetError):
                    # The server may answer before it read the whole body (413 for a body over the
                    # limit) and close: its answer is already in the socket buffer, read it.
                    early = self._early_response()
                    if early is not None:
                        return early
                    raise
                resp = self._conn.getresponse()
                data = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    self.close()
                return resp.status, dict(resp.getheaders()), data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self.close()
                # A kept-alive connection the server closed while idle: retry once on a fresh one.
                if not reused or attempt == 2:
                    raise CannotConnect(f"connection to the API lost: {exc}") from None
            except OSError as exc:
                self.close()
                where = self.socket_path or self.url
                raise CannotConnect(f"cannot connect to {where}: {exc.strerror or exc}") from None
        raise CannotConnect("unreachable")  # pragma: no cover

    def _early_response(self) -> tuple[int, dict, bytes] | None:
        """The response the server sent before closing mid-request, if it sent one."""
        try:
            resp = self._conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException):
            return None
        finally:
            self.close()
        return resp.status, dict(resp.getheaders()), data

    def call(self, method: str, path: str, body=None, params: dict | None = None):
        """JSON request under /api/v1; returns the decoded body (None for 204). Raises ApiError."""
        data = None if body is None else json.dumps(body).encode()
        status, _headers, raw = self.raw(method, "/api/v1" + path, data, params=params)
        payload = json.loads(raw) if raw else None
        if status >= 400:
            err = (payload or {}).get("error", {}) if isinstance(payload, dict) else {}
            raise ApiError(status, err.get("code", "error"), err.get("message", raw.decode(errors="replace")))
        return payload

    def get(self, path: str, **params):
        return self.call("GET", path, params=params or None)

    def post(self, path: str, body):
        return self.call("POST", path, body)

    def put(self, path: str, body):
        return self.call("PUT", path, body)

    def delete(self, path: str, **params):
        return self.call("DELETE", path, params=params or None)
