"""Traffic tools for the external-connectivity tests and bench (docs/external.md): run inside namespaces.

``ECHO_SERVER``: an asyncio TCP server that answers every line with "<line> <peer address>", for
thousands of connections at once. ``CONCURRENT_CLIENT``: opens N connections at once to a server,
sends one line on each, and prints JSON {"ok": replies that came back right, "failed": ..., "seconds"}.
"""

from __future__ import annotations

import json
import subprocess
import sys

# Thousands of sockets at once: raise the soft descriptor limit to the hard one first.
_FDS = ("import resource\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)\n")

ECHO_SERVER = _FDS + r"""
import asyncio, sys
async def handle(reader, writer):
    peer = writer.get_extra_info("peername")[0]
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            writer.write(line.rstrip(b"\n") + b" " + peer.encode() + b"\n")
            await writer.drain()
    finally:
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "0.0.0.0", int(sys.argv[1]), backlog=4096)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""

CONCURRENT_CLIENT = _FDS + r"""
import asyncio, json, sys, time
host, port, count, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
bind = sys.argv[5] if len(sys.argv) > 5 else None
async def one(i):
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, local_addr=(bind, 0) if bind else None), timeout)
        writer.write(b"hello-%d\n" % i)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        writer.close()
        return line.split()[0] == b"hello-%d" % i, line.split()[-1].decode() if line else ""
    except (OSError, asyncio.TimeoutError):
        return False, ""
async def main():
    started = time.monotonic()
    results = await asyncio.gather(*(one(i) for i in range(count)))
    seen = sorted({peer for ok, peer in results if ok})
    print(json.dumps({"ok": sum(ok for ok, _ in results), "failed": sum(not ok for ok, _ in results),
                      "seconds": time.monotonic() - started, "peers": seen}))
asyncio.run(main())
"""


def start_echo_server(netns: str, port: int) -> subprocess.Popen:
    """The echo server in ``netns``, started and ready (stop it with ``.kill()``)."""
    proc = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c", ECHO_SERVER, str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise RuntimeError(f"echo server in {netns} did not start")
    return proc


def concurrent_connections(netns: str, host: str, port: int, count: int, timeout: float = 10.0) -> dict:
    """Open ``count`` connections at once from ``netns``; the client's JSON summary."""
    proc = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", CONCURRENT_CLIENT, host,
                           str(port), str(count), str(timeout)], capture_output=True, text=True,
                          timeout=timeout * 3 + 30)
    if proc.returncode != 0:
        raise RuntimeError(f"client failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)
