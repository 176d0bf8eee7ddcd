"""DirectoryClient.list walks the pages of a list, and still works with a directory from before pages."""

import http.server
import json
import threading
import urllib.parse

import pytest

from nuage_ryu.directory.client import DirectoryClient

ITEMS = [{"id": f"{i:04d}", "name": f"n{i}"} for i in range(7)]


class Paged(http.server.BaseHTTPRequestHandler):
    """Pages of 3 whatever limit is asked (a server may send fewer); ``legacy`` refuses the parameter."""

    legacy = False
    seen: list = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        self.seen.append(query)
        headers = {}
        if self.legacy and "limit" in query:
            status, body = 400, {"error": {"code": "bad_request",
                                           "message": "unknown query parameter 'limit'; allowed: name"}}
        elif self.legacy:
            status, body = 200, ITEMS
        else:
            start = int(query.get("page_token", "0"))
            status, body = 200, ITEMS[start:start + 3]
            if start + 3 < len(ITEMS):
                headers["X-Next-Page-Token"] = str(start + 3)
        raw = json.dumps(body).encode()
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args):
        pass


@pytest.fixture(params=[False, True], ids=["paged", "legacy"])
def server(request):
    handler = type("H", (Paged,), {"legacy": request.param, "seen": []})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv, handler
    srv.shutdown()
    srv.server_close()


def test_list_returns_every_item_once(server):
    srv, handler = server
    client = DirectoryClient(f"http://127.0.0.1:{srv.server_address[1]}", token="t")
    try:
        assert client.list("/hosts", name="x") == ITEMS
    finally:
        client.close()
    assert all(q.get("name") == "x" for q in handler.seen)
    if not handler.legacy:
        assert [q.get("page_token") for q in handler.seen] == [None, "3", "6"]
        assert all(q["limit"] == "500" for q in handler.seen)
