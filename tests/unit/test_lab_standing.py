"""The standing plane's records: stopped by recorded pid (never a recycled one), its nuage-ctl context.

Real processes (a sleeping Python) stand in for the plane's: what is checked is which pids get
signalled, from the records alone, as a later ``nuage-lab down`` sees them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from nuage_ryu.directory.ctl.context import ConfigFile
from nuage_ryu.hostovs.process import pid_alive
from nuage_ryu.lab import containers, standing
from nuage_ryu.lab.cli import main as lab_main
from nuage_ryu.lab.lab import Lab
from nuage_ryu.lab.netns import LabError
from tests.ovs_fixtures import wait_until

SLEEPER = "import time; time.sleep(60)"


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


@pytest.fixture
def sleepers():
    procs = []

    def start(*marker: str) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", SLEEPER, *marker])
        procs.append(proc)
        # Until the child has exec'd, /proc/PID/cmdline is still pytest's: what the plane's
        # records are checked against must be the sleeper's own command line.
        wanted = "\0".join([SLEEPER, *marker]).encode()
        wait_until(lambda: wanted in _cmdline(proc.pid), timeout=10, message=f"sleeper {proc.pid} to start")
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def _record_plane(lab: Lab, pids: dict[str, int], ctl_config: str, **extra) -> str:
    root = os.path.join(lab.state_dir, "plane")
    os.makedirs(root)
    with open(os.path.join(root, "pids.json"), "w") as f:
        json.dump(pids, f)
    with open(standing.record_path(lab), "w") as f:
        json.dump({"tls": True, "root": root, "context": standing.context_name(lab), "ctl_config": ctl_config,
                   **extra}, f)
    return root


def test_stop_plane_stops_the_recorded_processes_and_leaves_a_recycled_pid_alone(tmp_path, sleepers):
    lab = Lab(str(tmp_path / "lab"), "uxlu")
    root = os.path.join(lab.state_dir, "plane")
    agent = sleepers("--config-file", os.path.join(root, "agent-h1.ini"))
    directory = sleepers("--config-file", os.path.join(root, "directory.ini"))
    stranger = sleepers("--config-file", "/etc/somebody-else.ini")  # the pid 'directory' had, reused
    os.makedirs(lab.state_dir)
    _record_plane(lab, {"agent-h1": agent.pid, "directory": directory.pid, "relay-1": stranger.pid},
                  str(tmp_path / "ctl.ini"))
    removed = standing.stop_plane(lab, timeout=5)
    assert removed[:2] == [f"process agent-h1 {agent.pid}", f"process directory {directory.pid}"]
    assert agent.wait(5) is not None and directory.wait(5) is not None
    assert pid_alive(stranger.pid), "a pid whose command line does not name the plane is never signalled"
    assert not os.path.exists(root) and standing.read_record(lab) is None
    assert standing.stop_plane(lab) == []  # a second down finds nothing to do


def test_adopted_processes_are_stopped_with_the_plane(tmp_path, sleepers):
    lab = Lab(str(tmp_path / "lab"), "uxlu")
    os.makedirs(lab.state_dir)
    root = _record_plane(lab, {}, str(tmp_path / "ctl.ini"))
    plugin = sleepers("--socket", os.path.join(root, "docker-h3.sock"))
    standing.adopt_process(lab, "docker-plugin-h3", plugin.pid)
    assert standing.stop_plane(lab, timeout=5)[0] == f"process docker-plugin-h3 {plugin.pid}"
    assert plugin.wait(5) is not None


def test_the_nuage_ctl_context_is_added_as_current_when_none_is_and_removed_on_stop(tmp_path):
    lab = Lab(str(tmp_path / "lab"), "uxlu")
    os.makedirs(lab.state_dir)
    config = str(tmp_path / "ctl.ini")
    other = ConfigFile(config)
    other.set("prod", {"url": "https://vsd.example.net:8443"})
    other.save()
    _record_plane(lab, {}, config)

    class Plane:
        api_socket = os.path.join(lab.state_dir, "plane", "api.sock")
        token_file = os.path.join(lab.state_dir, "plane", "directory", "api-token")

    standing._add_context(standing.read_record(lab), Plane)
    cfg = ConfigFile(config)
    assert cfg.get("lab-uxlu") == {"socket": Plane.api_socket, "token-file": Plane.token_file}
    assert cfg.current == "lab-uxlu"  # the file had no current context
    standing.stop_plane(lab)
    cfg = ConfigFile(config)
    assert set(cfg.contexts()) == {"prod"} and cfg.current is None


def test_a_context_made_current_by_the_user_stays_current(tmp_path):
    lab = Lab(str(tmp_path / "lab"), "uxlu")
    os.makedirs(lab.state_dir)
    config = str(tmp_path / "ctl.ini")
    mine = ConfigFile(config)
    mine.set("prod", {"url": "https://vsd.example.net:8443"})
    mine.current = "prod"
    mine.save()
    _record_plane(lab, {}, config)

    class Plane:
        api_socket, token_file, tls = "/x/api.sock", "/x/api-token", True

    standing._add_context(standing.read_record(lab), Plane)
    assert ConfigFile(config).current == "prod"
    steps = "\n".join(standing.next_steps(lab, Plane))
    assert "the current context is prod" in steps and "nuage-ctl --context lab-uxlu host list" in steps


@pytest.mark.parametrize("name", ["h1", "ctl", "inet", "Web", "1web", "a" * 16, "web-1", ""])
def test_container_names_that_attach_refuses(tmp_path, name):
    lab = Lab(str(tmp_path / "lab"), "uxlu")
    with pytest.raises(LabError, match="invalid container name"):
        containers.attach(lab, None, "h1", name, "front")


def test_up_plane_refuses_a_controller_of_its_own(tmp_path, capsys):
    code = lab_main(["up", "--hosts", "1", "--plane", "--controller", "tcp:192.0.2.2:6653",
                     "--state-dir", str(tmp_path / "lab")])
    assert code == 1
    assert "leave --controller at its default" in capsys.readouterr().err


def test_attach_without_a_plane_says_how_to_start_one(tmp_path, capsys):
    assert lab_main(["attach", "--state-dir", str(tmp_path / "lab"), "h1", "web1", "--subnet", "front"]) == 1
    assert "runs no control plane (nuage-lab plane, or up --plane)" in capsys.readouterr().err


def test_every_tool_option_has_help():
    from nuage_ryu.lab.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, command in sub.choices.items():
        for action in command._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"nuage-lab {name} {action.option_strings[0]} has no help"


def test_the_plane_part_of_status_reads_as_a_table(capsys):
    from nuage_ryu.lab.cli import _print_plane

    host = {"openflow": {"connected": True}, "directory": {"registered": True, "connected": True},
            "agent": {"pid": 101, "alive": True, "reachable": True, "ready": True, "problems": []},
            "vports": {"directory": 2, "up": 2, "agent": 2, "ovs": 2}}
    _print_plane({
        "tls": True, "api_socket": "/tmp/l/plane/api.sock", "context": "lab-nlab",
        "processes": {"agent-h1": {"pid": 101, "alive": True}, "agent-h2": {"pid": 102, "alive": False},
                      "directory": {"pid": 100, "alive": True}},
        "directory": {"answers": True, "error": None},
        "hosts": [{"name": "h1", **host},
                  {"name": "h2", "openflow": {"connected": False},
                   "directory": {"registered": True, "connected": False},
                   "agent": {"pid": 102, "alive": False, "reachable": False, "error": "agent socket gone"},
                   "vports": {"directory": 1, "up": 0, "agent": None, "ovs": 1}}],
        "containers": [{"name": "web1", "host": "h1", "address": "10.0.1.2/24", "subnet": "acme/prod/web/front",
                        "policygroups": ["web"], "netns": "nlab-c-web1"}]})
    assert capsys.readouterr().out.splitlines() == [
        "control plane (TLS): agent-h1 101 alive, agent-h2 102 DEAD, directory 100 alive",
        "  directory API unix:/tmp/l/plane/api.sock answers; nuage-ctl context lab-nlab",
        "  host br-int<->agent  agent                  agent<->directory  vports: directory (up) / agent / ovs",
        "  h1   connected       101 ready              connected          2 (2) / 2 / 2",
        "  h2   NOT CONNECTED   102 DEAD               NOT CONNECTED      1 (0) / - / 1",
        "       agent: agent socket gone",
        "  container web1 on h1: 10.0.1.2/24 subnet acme/prod/web/front groups web netns nlab-c-web1",
    ]
