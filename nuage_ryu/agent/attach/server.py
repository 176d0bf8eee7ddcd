"""HTTP/1.1 + JSON server of the agent's local API on a unix socket.

``factory.start_agent_api`` (used by the VRS agent app and by agentd.py) creates an
``AgentApiServer`` around an ``AttachService`` and starts it; each request runs
in its own thread and calls one service method. Errors are
``{"error": {"code", "message"}}`` with the status of ``AttachError.STATUS``.
The protocol is documented in docs/agent-api.md.
"""

from __future__ import annotations

import logging
import os
import re

from nuage_ryu import json_input
from nuage_ryu.agent.attach.errors import AttachError
from nuage_ryu.agent.attach.request import AttachRequest
from nuage_ryu.agent.attach.service import AttachService
from nuage_ryu.plugins import cni, lean
from nuage_ryu.plugins.agent_client import AgentClient, AgentError
from nuage_ryu.unix_server import JSONRequestHandler, UnixHTTPServer

LOG = logging.getLogger(__name__)
MAX_BODY = 1 << 20


def _fields(body: dict, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
    if not isinstance(body, dict):
        raise AttachError("invalid", "request body must be a JSON object")
    unknown = sorted(set(body) - set(required) - set(optional))
    if unknown:
        raise AttachError("invalid", f"unknown field(s): {', '.join(unknown)}")
    for name in required:
        if name not in body:
            raise AttachError("invalid", f"missing field {name!r}")
    for name, value in body.items():
        if name not in ("valid", "port_mappings") and not isinstance(value, str):
            raise AttachError("invalid", f"{name} must be a string")
    return body


class CniOutput:
    """The answer of ``/v1/cni``: a CNI plugin's stdout (the body) and exit status (X-CNI-Exit)."""

    def __init__(self, stdout: str, code: int) -> None:
        self.stdout, self.code = stdout, code


class _InProcessAgent(AgentClient):
    """The CNI code's agent client when its socket is this very agent's: the routes are called
    directly, not through a second request on the socket, with the same JSON in and out and
    the same errors as over the socket."""

    def __init__(self, routes: _Routes, socket_path: str) -> None:
        super().__init__(socket_path)
        self._routes = routes

    def call(self, method: str, path: str, body: dict | None = None):
        request = json_input.loads(lean.dumps(body)) if body is not None else {}
        try:
            result = self._routes.dispatch(method, path, request)
        except AttachError as exc:
            raise AgentError(exc.status, exc.kind, exc.message) from None
        except Exception as exc:  # what the socket answers as 500 (see _Handler._handle)
            LOG.exception("agent api (in-process): %s %s failed", method, path)
            raise AgentError(500, "failed", f"{type(exc).__name__}: {exc}") from None
        return lean.loads(lean.dumps(result if result is not None else {}))


def run_cni(body, routes: _Routes | None = None) -> CniOutput:
    """``POST /v1/cni``: one CNI call handed over by the compiled ``nuage-cni`` (plugins/cni_fast.c).

    ``{"env": {CNI_* variables}, "stdin": the configuration, one character per byte}``: run in
    this process by the same code as the Python plugin (``cni.execute``). Its calls to this
    agent (the configuration's ``agent_socket`` is this socket) go straight to ``routes``;
    another socket is called as the plugin would.
    """
    if not isinstance(body, dict) or set(body) != {"env", "stdin"} or not isinstance(body["stdin"], str) \
            or not isinstance(body["env"], dict) \
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in body["env"].items()):
        raise AttachError("invalid", "/v1/cni takes {env: {name: value}, stdin: string}")
    try:
        stdin = body["stdin"].encode("latin-1")
    except UnicodeEncodeError:
        raise AttachError("invalid", "stdin must carry one byte per character (latin-1)") from None
    try:  # the plugin's bytes, as Python decodes os.environ (UTF-8, undecodable bytes kept)
        env = {_environ_str(k): _environ_str(v) for k, v in body["env"].items() if k.startswith("CNI_")}
    except UnicodeEncodeError:
        raise AttachError("invalid", "env values must carry one byte per character (latin-1)") from None

    def agent_for(socket_path: str) -> AgentClient:
        if routes is not None and routes.socket_path and _same_socket(socket_path, routes.socket_path):
            return _InProcessAgent(routes, socket_path)
        return AgentClient(socket_path)

    return CniOutput(*cni.execute(env, stdin, agent_for))


def _environ_str(value: str) -> str:
    return value.encode("latin-1").decode("utf-8", "surrogateescape")


def _same_socket(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


class _Routes:
    """(method, path regex) -> handler(service, match, body) returning a JSON-able object."""

    def __init__(self, service: AttachService, socket_path: str = "") -> None:
        self.service = service
        self.socket_path = socket_path  # this agent's socket: /v1/cni calls it in-process
        s, d = service, service.docker
        self.table = [
            ("GET", r"/v1/status", lambda m, b: s.status()),
            ("POST", r"/v1/cni", lambda m, b: run_cni(b, self)),
            ("GET", r"/v1/attachments", lambda m, b: {"attachments": s.list_attachments()}),
            ("POST", r"/v1/attach", lambda m, b: s.attach(AttachRequest.from_dict(b))),
            ("POST", r"/v1/detach", lambda m, b: s.detach(**_fields(b, ("container_id",), ("ifname",)))),
            ("POST", r"/v1/check", lambda m, b: s.check(
                **_fields(b, ("container_id", "ifname"), ("netns",)))),
            ("POST", r"/v1/gc", self._gc),
            ("POST", r"/v1/ports", lambda m, b: s.set_port_mappings(
                **_fields(b, ("container_id", "ifname", "port_mappings")))),
            ("POST", r"/v1/resolve", lambda m, b: d.resolve(
                **_fields(b, ("enterprise", "domain", "zone", "subnet")))),
            ("POST", r"/v1/subnets/by-cidr", lambda m, b: {"subnets": d.subnets_by_cidr(
                **_fields(b, ("cidr",)))}),
            ("GET", r"/v1/subnets/(?P<id>[^/]+)", lambda m, b: d.get_subnet(m["id"])),
            ("POST", r"/v1/reservations", lambda m, b: d.reserve(
                **_fields(b, ("subnet_id", "name"), ("ip",)))),
            ("POST", r"/v1/reservations/find", lambda m, b: {"vport": d.find_reservation(
                **_fields(b, ("subnet_id", "ip")))}),
            ("POST", r"/v1/reservations/release", lambda m, b: d.release(**_fields(b, ("subnet_id", "ip")))),
            ("PUT", r"/v1/networks/(?P<id>[^/]+)", self._set_network),
            ("GET", r"/v1/networks/(?P<id>[^/]+)", self._get_network),
            ("DELETE", r"/v1/networks/(?P<id>[^/]+)", lambda m, b: d.delete_network(m["id"]) or {}),
        ]
        self.table = [(meth, re.compile(f"^{pat}$"), fn) for meth, pat, fn in self.table]

    def _gc(self, match, body):
        body = _fields(body, ("valid",), ("owner", "network"))
        if not isinstance(body["valid"], list):
            raise AttachError("invalid", "valid must be a list of {container_id, ifname}")
        return self.service.gc(body["valid"], body.get("owner", "cni"), body.get("network"))

    def _set_network(self, match, body):
        body = _fields(body, ("subnet_id",))
        self.service.docker.set_network(match["id"], body["subnet_id"])
        return {"network_id": match["id"], "subnet_id": body["subnet_id"]}

    def _get_network(self, match, body):
        subnet_id = self.service.docker.get_network(match["id"])
        if subnet_id is None:
            raise AttachError("not_found", f"network {match['id']} is not a nuage network on this host")
        return {"network_id": match["id"], "subnet_id": subnet_id}

    def dispatch(self, method: str, path: str, body):
        allowed = False
        for meth, pattern, fn in self.table:
            match = pattern.match(path)
            if match:
                allowed = True
                if meth == method:
                    return fn(match, body)
        if allowed:
            raise AttachError("invalid", f"method {method} not allowed on {path}")
        raise AttachError("not_found", f"no such API path {path}")


class _Handler(JSONRequestHandler):
    server_version = "nuage-agent/1"

    def log_message(self, fmt, *args):  # route to logging, not stderr
        LOG.debug("agent api: " + fmt, *args)

    def _handle(self) -> None:
        try:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                raise AttachError("invalid", "Content-Length is not a number") from None
            if length < 0 or length > MAX_BODY:
                raise AttachError("invalid", f"request body too large ({length} bytes)")
            raw = self.rfile.read(length) if length else b""
            try:
                body = json_input.loads(raw) if raw else {}
            except json_input.JSONInputError as exc:
                raise AttachError("invalid", f"request body is not acceptable JSON: {exc}") from None
            path = self.path.split("?", 1)[0]
            result = self.server.routes.dispatch(self.command, path, body)
            if isinstance(result, CniOutput):
                self._reply_cni(result)
                return
            self.reply_json(200, result if result is not None else {})
        except AttachError as exc:
            self.reply_json(exc.status, exc.as_dict())
        except Exception as exc:  # never let one request kill the server
            LOG.exception("agent api: %s %s failed", self.command, self.path)
            self.reply_json(500, {"error": {"code": "failed", "message": f"{type(exc).__name__}: {exc}"}})

    def _reply_cni(self, output: CniOutput) -> None:
        data = output.stdout.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-CNI-Exit", str(output.code))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _handle


class AgentApiServer:
    """The agent socket: ``start()`` serves in a background thread, ``stop()`` closes and unlinks it."""

    def __init__(self, service: AttachService, socket_path: str, mode: int = 0o660) -> None:
        self.service = service
        self.socket_path = socket_path
        self.mode = mode
        self._server: UnixHTTPServer | None = None

    def start(self) -> AgentApiServer:
        """Serve in a background thread (a stale socket of a previous run is replaced)."""
        self._server = UnixHTTPServer.start(self.socket_path, _Handler, _Routes(self.service, self.socket_path),
                                            name="nuage-agent-api", mode=self.mode, dir_mode=0o755)
        return self

    def stop(self) -> None:
        """Stop serving and remove the socket; idempotent."""
        if self._server is not None:
            self._server.stop()
            self._server = None
