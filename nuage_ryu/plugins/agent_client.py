"""Client of the agent's local API (HTTP/1.1 + JSON over a unix socket); stdlib only.

Imported by ``nuage-cni`` and ``nuage-docker-plugin``, so it must stay light:
no os-ken, ovsdbapp or pyroute2 here, and not even ``json`` or ``socket`` (lean.py says why).
"""

from __future__ import annotations

import time

from nuage_ryu.plugins import lean

DEFAULT_AGENT_SOCKET = "/run/nuage-ryu/agent.sock"  # same as nuage_ryu.config, without importing oslo


class AgentError(Exception):
    """The agent answered with an error: ``code`` is the AttachError kind, ``status`` the HTTP status."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class AgentUnavailable(AgentError):
    """Nobody answers on the agent socket (agent not running or restarting): try again later."""

    def __init__(self, message: str):
        super().__init__(0, "unavailable", message)


def _recv_all(sock) -> bytes:
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _parse_response(raw: bytes) -> tuple[int, bytes]:
    """(status, body) of a complete HTTP/1.1 response read until EOF."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("truncated response")
    lines = head.split(b"\r\n")
    parts = lines[0].split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise ValueError(f"bad status line {lines[0][:80]!r}")
    status = int(parts[1])
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
            if len(body) < length:
                raise ValueError("truncated body")
            body = body[:length]
    return status, body


class AgentClient:
    """HTTP/1.1 over the unix socket with ``Connection: close``.

    Written on a plain socket rather than http.client, whose imports (email,
    ssl) would double the start time of a CNI call.
    """

    def __init__(self, socket_path: str = DEFAULT_AGENT_SOCKET, timeout: float = 60.0):
        self.socket_path = socket_path or DEFAULT_AGENT_SOCKET
        self.timeout = timeout

    def _connect(self, sock) -> None:
        """Connect; a full listen backlog (EAGAIN on unix sockets) is retried for up to a second."""
        for attempt in range(50):
            try:
                sock.connect(self.socket_path)
                return
            except BlockingIOError:
                if attempt == 49:
                    raise
                time.sleep(0.02)

    def call(self, method: str, path: str, body: dict | None = None):
        data = lean.dumps(body).encode() if body is not None else b""
        request = (f"{method} {path} HTTP/1.1\r\nHost: nuage-agent\r\nConnection: close\r\n"
                   f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n").encode() + data
        sock = lean.unix_stream_socket()
        sock.settimeout(self.timeout)
        try:
            try:
                self._connect(sock)
            except OSError as exc:
                raise AgentUnavailable(f"cannot reach the nuage agent at {self.socket_path}: "
                                       f"{exc.strerror or exc} (is the VRS agent running on this host?)"
                                       ) from None
            try:
                sock.sendall(request)
                status, raw = _parse_response(_recv_all(sock))
            except (OSError, ValueError) as exc:
                raise AgentUnavailable(
                    f"nuage agent at {self.socket_path} dropped the request: {exc}") from None
        finally:
            sock.close()
        try:
            payload = lean.loads(raw) if raw else {}
        except ValueError:
            raise AgentError(status, "failed", f"agent sent non-JSON (HTTP {status})") from None
        if status >= 400:
            err = payload.get("error", {}) if isinstance(payload, dict) else {}
            raise AgentError(status, err.get("code", "failed"),
                             err.get("message", f"HTTP {status}"))
        return payload

    # Convenience wrappers
    def status(self) -> dict:
        return self.call("GET", "/v1/status")

    def attach(self, **request) -> dict:
        return self.call("POST", "/v1/attach", request)

    def detach(self, container_id: str, ifname: str = "") -> dict:
        body = {"container_id": container_id}
        if ifname:
            body["ifname"] = ifname
        return self.call("POST", "/v1/detach", body)

    def check(self, container_id: str, ifname: str, netns: str = "") -> dict:
        body = {"container_id": container_id, "ifname": ifname, "netns": netns}
        return self.call("POST", "/v1/check", body)

    def gc(self, valid: list[dict], owner: str = "cni", network: str | None = None) -> dict:
        body = {"valid": valid, "owner": owner}
        if network is not None:
            body["network"] = network
        return self.call("POST", "/v1/gc", body)

    def set_port_mappings(self, container_id: str, ifname: str, port_mappings: list[dict]) -> dict:
        """Publish an attachment's ports on the host's address ([] withdraws them)."""
        return self.call("POST", "/v1/ports", {"container_id": container_id, "ifname": ifname,
                                               "port_mappings": port_mappings})

    def attachments(self) -> list[dict]:
        return self.call("GET", "/v1/attachments")["attachments"]
