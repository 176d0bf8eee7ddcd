"""`make demo` keeps working: the whole demo runs, every verdict as expected, nothing left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from nuage_ryu.hostovs.process import pid_alive

pytestmark = pytest.mark.integration

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _prefix(tag: str) -> str:
    """Unique per run: two test runs (or a test and a 'make demo') that overlap never share a namespace."""
    return f"{tag}{os.getpid() % 100000}"


def test_demo_runs_clean(tmp_path):
    state = tmp_path / "demo-state"
    prefix = _prefix("tdemo")
    code = ("import sys; from nuage_ryu.lab.demo import run; "
            f"sys.exit(run(state_dir={str(state)!r}, prefix={prefix!r}))")
    before = set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split())
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "verdicts as expected" in proc.stdout and "MISMATCH" not in proc.stdout, proc.stdout
    after = set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split())
    assert not {n for n in after - before if n.startswith(prefix)}
    assert not state.exists()


def test_demo_keep_leaves_everything_up_for_nuage_lab_and_nuage_ctl_then_down_removes_it(tmp_path):
    """make demo KEEP=1 PREFIX=...: the lab, the plane and the endpoints stay; the printed next
    steps work; 'nuage-lab down' removes it all (processes by pid, namespaces by name)."""
    state = tmp_path / "demo-state"
    prefix = _prefix("tkeep")
    bin_dir = os.path.dirname(sys.executable)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("NUAGE_")},
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    try:
        proc = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "demo.py"), "--keep", "--prefix", prefix,
                               "--state-dir", str(state)], capture_output=True, text=True, timeout=300, cwd=REPO,
                              env=env)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "kept running (KEEP=1)" in proc.stdout and f"nuage-lab down --state-dir {state}" in proc.stdout
        status = subprocess.run([os.path.join(bin_dir, "nuage-lab"), "status", "--json", "--state-dir", str(state)],
                                capture_output=True, text=True, env=env, timeout=60)
        plane = json.loads(status.stdout)["plane"]
        assert all(h["openflow"]["connected"] and h["directory"]["connected"] for h in plane["hosts"]), plane
        assert {"web1", "app1", "vm1", "db2", "web3"} <= {c["name"] for c in plane["containers"]}
        # the next steps as printed: nuage-ctl with no option, exec in a kept container
        listed = subprocess.run([os.path.join(bin_dir, "nuage-ctl"), "-o", "json", "enterprise", "list"],
                                capture_output=True, text=True, env=env, timeout=60)
        assert {e["name"] for e in json.loads(listed.stdout)} == {"acme", "globex"}, listed.stderr
        g2 = next(c for c in plane["containers"] if c["name"] == "g2")["ip"]
        ping = subprocess.run([os.path.join(bin_dir, "nuage-lab"), "exec", "--state-dir", str(state), "g1", "--",
                               "ping", "-c1", "-W2", g2], capture_output=True, text=True, env=env, timeout=60)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        pids = plane["processes"]
    finally:
        down = subprocess.run([os.path.join(bin_dir, "nuage-lab"), "down", "--state-dir", str(state)],
                              capture_output=True, text=True, env=env, timeout=180)
    assert down.returncode == 0, down.stderr
    assert "process docker-plugin-h3" in down.stdout
    after = set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split())
    assert not {n for n in after if n.startswith(prefix)}
    assert not any(pid_alive(p["pid"]) for p in pids.values())  # gone, or a zombie its new parent reaps
    assert not state.exists()
