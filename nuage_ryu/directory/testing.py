"""Test support: run the directory under nuage-ryu-manager as a real process.

Used by the directory's integration tests and benchmarks, and available to other
components' tests that need a live directory. Everything listens on 127.0.0.1
or unix sockets; processes are stopped by pid, also when a test fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from nuage_ryu.directory.client import CannotConnect, DirectoryClient


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc)."""
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def wait_until(predicate, timeout: float, interval: float = 0.02, what: str = "condition"):
    """Poll ``predicate`` until it returns a true value (returned) or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)


class ManagerProcess:
    """``nuage-ryu-manager --config-file F nuage_ryu.apps.directory_api`` with a private state dir."""

    def __init__(self, state_dir: str, port: int | None = None, connection: str = "", extra: str = ""):
        self.state_dir = state_dir
        os.makedirs(state_dir, exist_ok=True)
        self.port = port or free_port()
        self.config_file = os.path.join(state_dir, "nuage-ryu.conf")
        self.api_socket = os.path.join(state_dir, "api.sock")
        with open(self.config_file, "w") as f:
            f.write(f"[DEFAULT]\nstate_dir = {state_dir}\nrole = directory\n\n"
                    f"[directory]\nconnection = {connection}\napi_host = 127.0.0.1\n"
                    f"api_port = {self.port}\napi_socket = {self.api_socket}\n{extra}")
        self.proc: subprocess.Popen | None = None
        self.children: list[int] = []
        self.log_path = os.path.join(state_dir, "manager.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        with open(os.path.join(self.state_dir, "api-token")) as f:
            return f.read().strip()

    @property
    def db_socket(self) -> str:
        return os.path.join(self.state_dir, "directory", "db.sock")

    def client(self, token: str | None = None) -> DirectoryClient:
        return DirectoryClient(self.url, token=token if token is not None else self.token)

    def start(self, timeout: float = 30.0) -> ManagerProcess:
        manager = os.path.join(os.path.dirname(sys.executable), "nuage-ryu-manager")
        cmd = [manager, "--config-file", self.config_file, "nuage_ryu.apps.directory_api"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(self._ready, timeout, 0.05, "the directory API to answer")
        except BaseException:
            self.stop()
            raise
        self.children = child_pids(self.proc.pid)
        return self

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            with open(self.log_path, errors="replace") as f:
                tail = f.read()[-2000:]
            raise RuntimeError(f"nuage-ryu-manager exited with {self.proc.returncode}:\n{tail}")
        client = DirectoryClient(self.url, timeout=2)
        try:
            status, _h, _b = client.raw("GET", "/api/v1/openapi.json")
            return status == 200
        except CannotConnect:
            return False
        finally:
            client.close()

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM by pid, then SIGKILL; also kills children (embedded ovsdb-server) left behind."""
        if self.proc is None:
            return None
        children = set(self.children) | set(child_pids(self.proc.pid))
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        for pid in children:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        code = self.proc.returncode
        self.proc = None
        return code
