"""Client of the agent's local API (HTTP/1.1 + JSON over a unix socket); stdlib only.

Imported by ``nuage-cni`` and ``nuage-docker-plugin``, so it must stay light:
no os-ken, ovsdbapp or pyroute2 here.
"""

from __future__ import annotations

import http.client
import json
import socket

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


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.unix_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class AgentClient:
    def __init__(self, socket_path: str = DEFAULT_AGENT_SOCKET, timeout: float = 60.0):
        self.socket_path = socket_path or DEFAULT_AGENT_SOCKET
        self.timeout = timeout

    def call(self, method: str, path: str, body: dict | None = None):
        conn = _UnixConnection(self.socket_path, self.timeout)
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        try:
            try:
                conn.connect()
            except OSError as exc:
                raise AgentUnavailable(f"cannot reach the nuage agent at {self.socket_path}: "
                                       f"{exc.strerror or exc} (is the VRS agent running on this host?)"
                                       ) from None
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                raise AgentUnavailable(
                    f"nuage agent at {self.socket_path} dropped the request: {exc}") from None
        finally:
            conn.close()
        try:
            payload = json.loads(raw) if raw else {}
        except ValueError:
            raise AgentError(resp.status, "failed", f"agent sent non-JSON (HTTP {resp.status})") from None
        if resp.status >= 400:
            err = payload.get("error", {}) if isinstance(payload, dict) else {}
            raise AgentError(resp.status, err.get("code", "failed"),
                             err.get("message", f"HTTP {resp.status}"))
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

    def gc(self, valid: list[dict], owner: str = "cni") -> dict:
        return self.call("POST", "/v1/gc", {"valid": valid, "owner": owner})

    def attachments(self) -> list[dict]:
        return self.call("GET", "/v1/attachments")["attachments"]
