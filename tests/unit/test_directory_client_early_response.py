"""The directory client reads an answer the server sent before reading the whole request body.

A server refusing an oversized body (413) answers and closes without reading it; the client's
send then fails with a broken pipe. The answer is already in the socket buffer and must be returned,
not turned into "connection lost" (this made an API test flaky).
"""

import socket
import threading

from nuage_ryu.directory.client import DirectoryClient

RESPONSE = (b"HTTP/1.1 413 Request Entity Too Large\r\nContent-Type: application/json\r\n"
            b"Content-Length: 58\r\nConnection: close\r\n\r\n"
            b'{"error": {"code": "payload_too_large", "message": "big"}}')


def refusing_server():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def serve():
        conn, _ = srv.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:  # read the headers only, never the body
                data += conn.recv(4096)
            conn.sendall(RESPONSE)
            conn.shutdown(socket.SHUT_RDWR)
        srv.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return srv.getsockname()[1], thread


def test_413_sent_before_the_body_was_read_is_returned():
    port, thread = refusing_server()
    client = DirectoryClient(f"http://127.0.0.1:{port}", token="t")
    status, _headers, data = client.raw("POST", "/api/v1/enterprises", b'{"name": "' + b"x" * (8 << 20) + b'"}')
    thread.join(10)
    assert status == 413 and b"payload_too_large" in data
