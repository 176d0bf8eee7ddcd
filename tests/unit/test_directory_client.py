"""The one directory client: the server's error classes, the connection policy, unreachable endpoints."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from nuage_ryu.agent.attach.errors import as_attach_error
from nuage_ryu.directory import errors
from nuage_ryu.directory.client import CannotConnect, DirectoryClient, error_from_answer


@pytest.mark.parametrize("cls", [errors.BadRequest, errors.PayloadTooLarge, errors.Unauthorized,
                                 errors.Forbidden, errors.NotFound, errors.Conflict, errors.ValidationError,
                                 errors.Unavailable])
def test_an_error_answer_raises_the_class_the_server_raised(cls):
    err = error_from_answer(cls.status, cls.code, "why")
    assert type(err) is cls and (err.status, err.code, err.message) == (cls.status, cls.code, "why")


def test_unknown_codes_fall_back_to_the_status_then_to_the_base_class():
    assert type(error_from_answer(404, "", "gone")) is errors.NotFound
    err = error_from_answer(500, "internal_error", "boom")
    assert type(err) is errors.DirectoryError and (err.status, err.code) == (500, "internal_error")
    allowed = error_from_answer(405, "method_not_allowed", "no", ["GET", "PUT"])
    assert isinstance(allowed, errors.MethodNotAllowed) and allowed.allowed == ["GET", "PUT"]


def test_the_attach_service_maps_directory_errors_in_one_place():
    kinds = {errors.NotFound("x"): "not_found", errors.Conflict("x"): "conflict",
             errors.BadRequest("x"): "invalid", errors.ValidationError("x"): "invalid",
             errors.PayloadTooLarge("x"): "failed", errors.Unavailable("x"): "unavailable",
             error_from_answer(500, "internal_error", "x"): "unavailable", CannotConnect("x"): "unavailable"}
    assert {type(e).__name__: as_attach_error(e).kind for e in kinds} == \
        {type(e).__name__: k for e, k in kinds.items()}
    assert "unreachable" in as_attach_error(CannotConnect("refused")).message


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        if self.path.endswith("/missing"):
            status, body = 404, {"error": {"code": "not_found", "message": "no such thing"}}
        else:
            status, body = 200, {"path": self.path}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("keep_alive", [True, False])
def test_both_connection_policies_answer_and_raise_alike(server, keep_alive):
    client = DirectoryClient(server, token="t", keep_alive=keep_alive)
    assert client.get("/things", name="a b") == {"path": "/api/v1/things?name=a+b"}
    assert client.find("things", "missing") is None
    with pytest.raises(errors.NotFound):
        client.get("/missing")
    assert (client._conn is None) == (not keep_alive)  # per-request mode keeps nothing between calls
    client.close()


def test_a_per_request_client_can_be_shared_by_threads(server):
    client = DirectoryClient(server, token="t", keep_alive=False)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: client.get(f"/n/{i}")["path"], range(200)))
    assert answers == [f"/api/v1/n/{i}" for i in range(200)]


def test_an_absent_unix_socket_is_cannot_connect(tmp_path):
    client = DirectoryClient(f"unix:{tmp_path}/none.sock", keep_alive=False)
    with pytest.raises(CannotConnect, match="cannot connect"):
        client.get("/hosts")
