"""A new user's walk through the lab with its control plane (issue 14, item 4), every step a command:

``nuage-lab up --plane`` -> ``nuage-ctl`` (no option, no NUAGE_* variable) applies
docs/examples/3tier.yaml -> ``nuage-lab attach`` containers through the real nuage-cni ->
ping/TCP between them exactly as the policy says -> ``nuage-lab status`` shows the connections
and the counts -> ``detach`` -> ``nuage-lab down`` leaves no namespace, process, veth, file or
nuage-ctl context behind.

The nuage-ctl client config lives in the test's own directory (``XDG_CONFIG_HOME``, as a user's
``~/.config``), so that the context nuage-lab writes is the one nuage-ctl finds.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time

import pytest

from nuage_ryu.hostovs.process import pid_alive
from tests.lab_helpers import CLIENT_SCRIPT, SERVER_SCRIPT

pytestmark = pytest.mark.integration

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
EXAMPLE = os.path.join(REPO, "docs", "examples", "3tier.yaml")


def _env(config_home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUAGE_")}
    env["XDG_CONFIG_HOME"] = config_home
    return env


class User:
    """Runs the commands a user types, in a shell of their own."""

    def __init__(self, state: str, prefix: str, config_home: str) -> None:
        self.state, self.prefix, self.env = state, prefix, _env(config_home)

    def run(self, tool: str, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess:
        proc = subprocess.run([os.path.join(BIN, tool), *args], capture_output=True, text=True, env=self.env,
                              timeout=timeout, cwd=REPO)
        if check:
            assert proc.returncode == 0, f"{tool} {' '.join(args)}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc

    def lab(self, command: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run("nuage-lab", command, "--state-dir", self.state, *args, check=check)

    def ctl(self, *args: str) -> subprocess.CompletedProcess:
        return self.run("nuage-ctl", *args)

    def in_container(self, name: str, argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run([os.path.join(BIN, "nuage-lab"), "exec", "--state-dir", self.state, name, "--",
                               *argv], capture_output=True, text=True, env=self.env, timeout=timeout)

    def serve(self, name: str, port: int, seconds: float = 90) -> subprocess.Popen:
        return subprocess.Popen([os.path.join(BIN, "nuage-lab"), "exec", "--state-dir", self.state, name, "--",
                                 sys.executable, "-c", SERVER_SCRIPT, str(port), str(seconds)],
                                env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def tcp(self, src: str, ip: str, port: int) -> bool:
        return self.in_container(src, [sys.executable, "-c", CLIENT_SCRIPT, ip, str(port), "1.5"]).returncode == 0

    def ping(self, src: str, ip: str) -> bool:
        return self.in_container(src, ["ping", "-n", "-q", "-c", "1", "-W", "1", ip]).returncode == 0


def _eventually(check, timeout: float = 20.0) -> bool:
    """True as soon as ``check`` is (flows of a new vport reach the other host a moment later)."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


def _netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _root_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


@pytest.fixture
def user(tmp_path):
    prefix = f"uxl{os.getpid() % 100000}"
    config_home = tmp_path / "config"
    person = User(str(tmp_path / "lab"), prefix, str(config_home))
    links_before = _root_links()
    servers: list[subprocess.Popen] = []
    person.servers = servers
    try:
        yield person
    finally:
        for server in servers:
            server.kill()
            server.wait()
        # Also when the test failed half-way: down removes what the records name (by pid and name).
        subprocess.run([os.path.join(BIN, "nuage-lab"), "down", "--state-dir", person.state], env=person.env,
                       capture_output=True, timeout=180)
    assert not {n for n in _netns_names() if n.startswith(prefix + "-")}
    assert _root_links() - links_before == set()


def test_a_new_user_runs_the_plane_applies_a_policy_attaches_containers_and_removes_it_all(user):
    # 1. the lab with its control plane
    up = user.lab("up", "--hosts", "2", "--plane", "--prefix", user.prefix)
    assert "control plane up" in up.stdout
    assert f"nuage-ctl needs no option: context lab-{user.prefix}" in up.stdout
    assert f"nuage-lab down --state-dir {user.state}" in up.stdout
    with open(os.path.join(user.state, "plane", "pids.json")) as f:
        pids = json.load(f)
    assert set(pids) == {"directory", "agent-h1", "agent-h2"}
    assert all(pid_alive(pid) for pid in pids.values())

    # 2. nuage-ctl finds the directory by itself: the context nuage-lab wrote is the current one
    shown = json.loads(user.ctl("config", "show", "-o", "json").stdout)
    assert shown["using"]["context"] == f"lab-{user.prefix}"
    assert shown["using"]["endpoint"] == f"unix:{os.path.join(user.state, 'plane', 'api.sock')}"
    assert "16 changes made" in user.ctl("apply", "-f", EXAMPLE).stdout
    hosts = {h["name"]: h for h in json.loads(user.ctl("-o", "json", "host", "list").stdout)}
    assert {f"{user.prefix}-h1", f"{user.prefix}-h2"} <= set(hosts)

    # 3. containers through the real CNI plugin; subnets by path, by unique name
    attached = {}
    for host, name, subnet, group in (("h1", "web1", "acme/prod/web/front", "web"), ("h2", "app1", "mid", "app"),
                                      ("h1", "db1", "back", "db")):
        out = user.lab("attach", host, name, "--subnet", subnet, "--policygroup", group, "--json")
        attached[name] = json.loads(out.stdout)
        assert attached[name]["host"] == host and attached[name]["policygroups"] == [group]
    web1, app1, db1 = (attached[n]["ip"] for n in ("web1", "app1", "db1"))
    assert app1.startswith("10.0.2.") and db1.startswith("10.0.3.") and web1.startswith("10.0.1.")
    vports = json.loads(user.ctl("-o", "json", "vport", "list").stdout)
    assert sorted(v["ip"] for v in vports) == sorted([web1, app1, db1])
    assert all(v["status"] == "up" for v in vports), vports

    # bad input: one line on stderr, exit 1, nothing made
    for args, message in ((("h9", "x1", "--subnet", "front"), "unknown host"),
                          (("h1", "ctl", "--subnet", "front"), "invalid container name"),
                          (("h1", "web1", "--subnet", "front"), "already exists"),
                          (("h1", "x2", "--subnet", "nosuchsubnet"), "nosuchsubnet")):
        bad = user.lab("attach", *args, check=False)
        assert bad.returncode == 1 and message in bad.stderr and len(bad.stderr.splitlines()) == 1, bad.stderr

    # 4. traffic as the policy says (docs/examples/3tier.yaml)
    for name, port in (("app1", 8080), ("db1", 5432), ("web1", 8080)):
        user.servers.append(user.serve(name, port))
    assert _eventually(lambda: user.tcp("web1", app1, 8080)), "web -> app tcp/8080 (rule 200) must pass"
    assert _eventually(lambda: user.tcp("app1", db1, 5432)), "app -> db tcp/5432 (rule 300) must pass"
    assert _eventually(lambda: user.ping("app1", db1)), "zone app -> subnet back icmp (rule 400) must pass"
    assert not user.tcp("web1", db1, 5432), "web -> db is denied (rule 900)"
    assert not user.tcp("app1", web1, 8080), "app -> web tcp/8080: no rule, default deny"
    assert not user.ping("web1", app1), "web -> app icmp: no rule, default deny"

    # 5. status: the connections and the counts, from the agents and the directory
    report = json.loads(user.lab("status", "--json").stdout)["plane"]
    assert report["directory"]["answers"] and report["context"] == f"lab-{user.prefix}"
    by_host = {h["name"]: h for h in report["hosts"]}
    for name, count in (("h1", 2), ("h2", 1)):
        host = by_host[name]
        assert host["openflow"]["connected"], host
        assert host["agent"]["alive"] and host["agent"]["ready"], host
        assert host["directory"]["connected"], host
        assert host["vports"] == {"directory": count, "up": count, "agent": count, "ovs": count}, host
    text = user.lab("status").stdout
    assert "h1   connected       " in text and "2 (2) / 2 / 2" in text and "1 (1) / 1 / 1" in text
    # a closed pipe ends quietly
    piped = subprocess.run(["bash", "-o", "pipefail", "-c",
                            f"{BIN}/nuage-lab status --json --state-dir {user.state} | head -1"],
                           capture_output=True, text=True, env=user.env, timeout=60)
    assert piped.returncode == 0 and piped.stdout == "{\n" and piped.stderr == "", piped.stderr

    # 6. detach: CNI DEL, the namespace goes, the counts follow
    detached = user.lab("detach", "db1").stdout
    assert "CNI DEL" in detached and f"netns {user.prefix}-c-db1" in detached
    report = json.loads(user.lab("status", "--json").stdout)["plane"]
    assert {h["name"]: h["vports"]["directory"] for h in report["hosts"]} == {"h1": 1, "h2": 1}
    assert f"{user.prefix}-c-db1" not in _netns_names()

    # 7. down: containers, plane (by pid), context, hosts
    down = user.lab("down").stdout
    for name in ("agent-h1", "agent-h2", "directory"):
        assert f"process {name} {pids[name]}" in down
    assert not any(pid_alive(pid) for pid in pids.values())
    assert not os.path.exists(user.state)
    contexts = json.loads(user.ctl("config", "show", "-o", "json").stdout)["contexts"]
    assert f"lab-{user.prefix}" not in contexts


def test_the_plane_needs_a_lab_and_down_after_a_killed_up_removes_everything(user):
    missing = user.lab("plane", check=False)
    assert missing.returncode == 1 and "no lab" in missing.stderr
    # 'up --plane' killed while the plane starts: its pids are recorded as they appear
    proc = subprocess.Popen([os.path.join(BIN, "nuage-lab"), "up", "--state-dir", user.state, "--hosts", "1",
                             "--plane", "--prefix", user.prefix], env=user.env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    pids_file = os.path.join(user.state, "plane", "pids.json")

    def directory_started() -> bool:
        with contextlib.suppress(OSError, ValueError), open(pids_file) as f:
            return "directory" in json.load(f)
        return False

    assert _eventually(directory_started, 60)
    proc.kill()
    proc.wait()
    with open(pids_file) as f:
        pids = json.load(f)
    down = user.lab("down").stdout
    assert f"process directory {pids['directory']}" in down
    assert not any(pid_alive(pid) for pid in pids.values())
    assert not os.path.exists(user.state)
