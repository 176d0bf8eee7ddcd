"""A minimal OpenFlow controller end for tests and benches: accepts, says HELLO, answers echoes.

ovs-vswitchd calls a controller connection up once the HELLO exchange is done; that is all a
test of the switch's *connecting* needs (no features request, no flows). Each accepted
connection prints one line ``accepted <time.time()>`` on stdout.
"""

from __future__ import annotations

import subprocess
import sys

SCRIPT = r"""
import select, socket, struct, sys, time
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1]))); srv.listen(8)
print("listening", flush=True)
conns = []
while True:
    ready, _, _ = select.select([srv] + conns, [], [], 1.0)
    for s in ready:
        if s is srv:
            c, _ = srv.accept(); conns.append(c)
            print("accepted", time.time(), flush=True)
            c.sendall(struct.pack("!BBHI", 4, 0, 8, 1))  # OFPT_HELLO, OpenFlow 1.3
            continue
        data = s.recv(65536)
        if not data:
            conns.remove(s); continue
        while len(data) >= 8:
            version, kind, length, xid = struct.unpack("!BBHI", data[:8])
            if kind == 2:  # ECHO_REQUEST -> ECHO_REPLY with the same xid and body
                s.sendall(struct.pack("!BBHI", version, 3, length, xid) + data[8:length])
            data = data[length:]
"""


def start_listener(instance, port: int) -> subprocess.Popen:
    """Start the listener on 127.0.0.1:``port`` in ``instance``'s netns; returns once it listens."""
    proc = subprocess.Popen(instance.wrap([sys.executable, "-c", SCRIPT, str(port)]), stdout=subprocess.PIPE,
                            text=True)
    line = proc.stdout.readline()
    if line.strip() != "listening":
        proc.kill()
        raise RuntimeError("the OpenFlow listener did not start")
    return proc
