"""The REST server's body deadline and connection limit, configured small ([directory] api_body_timeout,
api_max_connections): a slow body gets a JSON 408 while others are served; past the limit a new
connection is closed at accept while the open ones are still served. Polls with deadlines."""

from __future__ import annotations

import json
import socket
import time

import pytest

from nuage_ryu.directory.testing import ManagerProcess

pytestmark = pytest.mark.integration

BODY_TIMEOUT = 1.0
MAX_CONNECTIONS = 8


@pytest.fixture(scope="module")
def manager(tmp_path_factory):
    mgr = ManagerProcess(str(tmp_path_factory.mktemp("limits")),
                         extra=f"api_body_timeout = {BODY_TIMEOUT}\napi_max_connections = {MAX_CONNECTIONS}\n")
    mgr.start()
    try:
        yield mgr
    finally:
        mgr.stop()


def _connect(manager) -> socket.socket:
    return socket.create_connection(("127.0.0.1", manager.port), timeout=10)


def _request(manager, sock: socket.socket, path: str = "/api/v1/hosts") -> bytes:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {manager.token}\r\n\r\n".encode())
    return _read_response(sock, deadline=time.monotonic() + 20)


def _read_response(sock: socket.socket, deadline: float) -> bytes:
    """One whole response (headers + Content-Length body), or what came before EOF/the deadline."""
    data = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, min(0.5, deadline - time.monotonic())))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            break
        data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            if len(body) >= length:
                break
    return data


def _closed_by_server(sock: socket.socket, deadline: float) -> bool:
    """True once the server closed ``sock`` (EOF or reset) before ``deadline``."""
    while time.monotonic() < deadline:
        sock.settimeout(0.2)
        try:
            if sock.recv(1) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:
            return True
    return False


def test_a_slow_body_gets_a_408_after_the_body_deadline_while_others_are_served(manager):
    slow = _connect(manager)
    try:
        body = json.dumps({"name": "never-complete"}).encode()
        slow.sendall(b"POST /api/v1/enterprises HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                     + manager.token.encode() + b"\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(body) + 100}\r\n\r\n".encode() + body)  # 100 bytes short
        other = _connect(manager)
        try:
            assert _request(manager, other).startswith(b"HTTP/1.1 200"), "another client was not served"
        finally:
            other.close()
        # The default deadline is 30 s: an answer within this poll shows the configured one applies.
        answer = _read_response(slow, deadline=time.monotonic() + 20)
        head, _, payload = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), answer
        assert json.loads(payload)["error"]["code"] == "request_timeout"
    finally:
        slow.close()
    admin = manager.client()
    try:
        assert "never-complete" not in [e["name"] for e in admin.list("/enterprises")]
    finally:
        admin.close()


def test_past_the_connection_limit_a_new_connection_is_closed_and_open_ones_are_served(manager):
    held = [_connect(manager) for _ in range(MAX_CONNECTIONS)]
    extra: list[socket.socket] = []
    try:
        # The server counts a connection once its accept loop saw it: keep opening until one is
        # refused (closed at once); the limit bounds how many can be open.
        refused = None
        deadline = time.monotonic() + 20
        while refused is None and time.monotonic() < deadline:
            sock = _connect(manager)
            if _closed_by_server(sock, time.monotonic() + 1.0):
                refused = sock
            else:
                extra.append(sock)
        assert refused is not None, "no connection was refused past the limit"
        refused.close()
        assert len(held) + len(extra) <= MAX_CONNECTIONS + 1  # (+1: one may be counted while closing)
        # The open ones are still served.
        assert _request(manager, held[0]).startswith(b"HTTP/1.1 200")
        # Room again once some close: a new connection is served.
        for sock in held[1:4]:
            sock.close()
        deadline = time.monotonic() + 20
        served = False
        while not served and time.monotonic() < deadline:
            sock = _connect(manager)
            try:
                served = _request(manager, sock).startswith(b"HTTP/1.1 200")
            finally:
                sock.close()
        assert served, "no new connection was served after others closed"
    finally:
        for sock in held + extra:
            sock.close()
