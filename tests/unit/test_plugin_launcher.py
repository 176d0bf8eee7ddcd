"""The fast plugin entry points: ``-I -S`` launcher scripts, their import closure, lean JSON."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading

import pytest

from nuage_ryu.agent.attach import server
from nuage_ryu.agent.attach.errors import AttachError
from nuage_ryu.plugins import launcher, lean
from nuage_ryu.unix_server import UnixHTTPServer

# Modules whose import costs as much as the interpreter start (see lean.py): never on the per-call path.
EXPENSIVE = ("re", "json", "socket", "enum", "functools", "collections", "selectors", "importlib.util")


def _modules_loaded_by(module: str) -> dict[str, str]:
    """{module: file ('' if builtin/frozen)} of what importing ``module`` under ``-I -S`` loads."""
    code = (f"import sys; sys.path.insert(0, {launcher.package_root()!r}); before = set(sys.modules); "
            f"import {module}\n"
            "for name in sorted(set(sys.modules) - before):\n"
            "    print(name, getattr(sys.modules[name], '__file__', None) or '')")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True)
    return dict((line.split(" ", 1) + [""])[:2] for line in out.stdout.splitlines())


def test_the_cni_entry_imports_only_its_declared_modules_and_no_expensive_stdlib():
    loaded = _modules_loaded_by("nuage_ryu.plugins.cni")
    ours = {m for m in loaded if m.split(".")[0] == "nuage_ryu"}
    assert ours == set(launcher.ENTRIES["nuage-cni"].modules)
    assert not set(loaded) & set(EXPENSIVE), set(loaded) & set(EXPENSIVE)
    stdlib = os.path.dirname(os.__file__)
    for name in set(loaded) - ours:  # the rest is the standard library (builtin, frozen or in its directory)
        assert not loaded[name] or loaded[name].startswith(stdlib), (name, loaded[name])


def test_the_docker_plugin_entry_imports_only_its_declared_nuage_modules():
    loaded = _modules_loaded_by("nuage_ryu.plugins.docker")
    assert {m for m in loaded if m.split(".")[0] == "nuage_ryu"} == set(launcher.ENTRIES["nuage-docker-plugin"].modules)


def test_launcher_script_runs_isolated_without_site():
    script = launcher.launcher_script(launcher.ENTRIES["nuage-cni"], "/usr/bin/python3", "/opt/x")
    first, *rest = script.splitlines()
    assert first == "#!/usr/bin/python3 -IS"  # one shebang argument: Linux passes the rest as one
    assert "sys.path.insert(0, '/opt/x')" in rest and "from nuage_ryu.plugins.cni import main" in rest


@pytest.fixture
def installed(tmp_path):
    paths = launcher.install(str(tmp_path))
    return {os.path.basename(p): p for p in paths}


def test_installed_entry_point_works_from_an_empty_environment(installed):
    """A runtime may exec it with nothing but the CNI_* variables: no PATH, no PYTHON*, no HOME."""
    binary = installed["nuage-cni"]
    assert os.access(binary, os.X_OK)
    proc = subprocess.run([binary], input=b'{"cniVersion": "0.4.0"}', env={"CNI_COMMAND": "VERSION"},
                          capture_output=True, check=True)
    assert json.loads(proc.stdout) == {"cniVersion": "0.4.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0",
                                                                                       "1.0.0", "1.1.0"]}
    # PYTHONPATH pointing at something broken changes nothing (-I).
    proc = subprocess.run([binary], input=b"not json", capture_output=True,
                          env={"CNI_COMMAND": "ADD", "PYTHONPATH": "/nonexistent", "PYTHONSTARTUP": "/x"})
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["code"] == 6  # decoding failure, as CNI error JSON on stdout
    proc = subprocess.run([binary], input=b'{"cniVersion": "1.0.0", "name": "n"}', capture_output=True,
                          env={"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0"})
    assert proc.returncode == 1 and json.loads(proc.stdout)["code"] == 11  # no agent: try again later


def test_install_replaces_an_existing_file_atomically(installed, tmp_path):
    before = os.stat(installed["nuage-cni"]).st_ino
    launcher.install(str(tmp_path), ["nuage-cni"])
    assert os.stat(installed["nuage-cni"]).st_ino != before
    assert sorted(os.listdir(tmp_path)) == ["nuage-cni", "nuage-docker-plugin"]


def test_cli_rejects_an_unknown_name(tmp_path, capsys):
    with pytest.raises(SystemExit):
        launcher.main(["install", "--bin", str(tmp_path), "nuage-nope"])
    assert "unknown entry point" in capsys.readouterr().err


@pytest.mark.parametrize("value", [
    {}, [], {"a": [1, 2.5, -3e-7, True, False, None]}, "é\u2028\"\\\n", 12345678901234567890,
    {"nested": {"deep": [{"x": ""}]}}, 0.1, -0.0, [1e308],
])
def test_lean_json_matches_the_json_package(value):
    text = json.dumps(value)
    assert lean.dumps(value) == text
    assert lean.loads(text) == value and lean.loads(text.encode()) == value
    assert lean.loads(f" \n\t{text}\r\n") == value


@pytest.mark.parametrize("text", ["", "   ", "{", '{"a": 1} x', "[1,]", "nul", '"\x01"', b"\xff"])
def test_lean_json_rejects_what_the_json_package_rejects(text):
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        lean.loads(text)


def test_lean_json_refuses_what_json_cannot_encode():
    with pytest.raises(TypeError):
        lean.dumps({"x": object()})
    # and refuses what every other surface refuses (nuage_ryu/json_input.py): NaN, repeated keys, depth
    for bad in ("[NaN]", '{"a": 1, "a": 2}', "[" * 40 + "]" * 40):
        with pytest.raises(ValueError):
            lean.loads(bad)


# -- the compiled nuage-cni (install --compiled, plugins/cni_fast.c) ---------------------------------------

needs_cc = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                              reason="no C compiler for the compiled nuage-cni")


@pytest.fixture
def compiled(tmp_path):
    paths = launcher.install(str(tmp_path), ["nuage-cni"], compiled=True)
    return {os.path.basename(p): p for p in paths}


class _CniOnly:
    """The agent socket's real handler and /v1/cni, without an attach service behind it (a DEL
    finds nothing to detach); records each call and the thread it ran in."""

    def __init__(self) -> None:
        self.calls = []
        self.threads = []
        self.socket_path = ""

    def dispatch(self, method, path, body):
        self.calls.append((method, path))
        self.threads.append(threading.get_ident())
        if (method, path) == ("POST", "/v1/cni"):
            return server.run_cni(body, self)
        if (method, path) == ("POST", "/v1/detach"):
            return {"detached": [], "timings": {}}
        raise AttachError("not_found", f"no such API path {path}")


@pytest.fixture
def agent_socket(tmp_path):
    routes = _CniOnly()
    path = str(tmp_path / "agent.sock")
    routes.socket_path = path
    srv = UnixHTTPServer.start(path, server._Handler, routes, name="test-agent-api")
    try:
        yield path, routes
    finally:
        srv.stop()


def _run(binary, stdin: bytes, env: dict) -> tuple[int, bytes]:
    proc = subprocess.run([binary], input=stdin, env=env, capture_output=True, timeout=60)
    return proc.returncode, proc.stdout


@needs_cc
def test_compiled_install_is_an_executable_with_its_python_fallback_beside_it(compiled):
    with open(compiled["nuage-cni"], "rb") as f:
        assert f.read(4) == b"\x7fELF"
    with open(compiled[launcher.COMPILED_FALLBACK]) as f:
        assert f.readline().endswith(" -IS\n")  # the Python launcher, as without --compiled
    rc, out = _run(compiled["nuage-cni"], b'{"cniVersion": "0.4.0"}', {"CNI_COMMAND": "VERSION"})
    assert rc == 0 and json.loads(out)["cniVersion"] == "0.4.0"  # no agent here: the fallback answered


CASES = [  # (stdin, env): answered before the agent is needed, so both must print the same bytes
    (b'{"cniVersion": "1.0.0"}', {"CNI_COMMAND": "VERSION"}),
    (b'{"cniVersion": "9.9.9"}', {"CNI_COMMAND": "VERSION"}),
    (b"not json", {"CNI_COMMAND": "ADD"}),
    (b'{"cniVersion": "1.0.0", "name": "caf\xc3\xa9", "subnet": "s"}', {"CNI_COMMAND": "ADD"}),
    (b'{"cniVersion": "1.0.0", "name": "n", "zone": "z"}',
     {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0", "CNI_NETNS": "/nonexistent"}),
    (b'{"cniVersion": "1.0.0", "name": "n"}', {"CNI_COMMAND": "BOGUS"}),
    (b'{"cniVersion": "0.3.1", "name": "n"}', {"CNI_COMMAND": "GC"}),
    (b'\xff\xfe{}', {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0"}),
    (b'{"cniVersion": "1.0.0", "name": "n"}',  # a non-ASCII environment, decoded as Python decodes os.environ
     {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0", "CNI_ARGS": "caf\u00e9;x"}),
    (b'{"cniVersion": "1.0.0", "name": "n"}',
     {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c\u00e9", "CNI_IFNAME": "eth0"}),
]


@needs_cc
@pytest.mark.parametrize("stdin,env", CASES)
def test_compiled_through_the_agent_prints_what_the_python_plugin_prints(compiled, agent_socket, stdin, env):
    path, routes = agent_socket
    # Point the configuration at the test's agent socket (top-level key), keeping the rest as it is.
    if stdin.startswith(b"{") and stdin != b"{}":
        stdin = b'{"agent_socket": "' + path.encode() + b'", ' + stdin[1:]
    python_rc, python_out = _run(compiled[launcher.COMPILED_FALLBACK], stdin, env)
    before = len(routes.calls)
    rc, out = _run(compiled["nuage-cni"], stdin, env)
    assert (rc, out) == (python_rc, python_out)
    if stdin.startswith(b'{"agent_socket"'):
        assert routes.calls[before:] == [("POST", "/v1/cni")]  # it went through the agent


@needs_cc
def test_a_nested_agent_socket_is_not_the_configuration_s(compiled, agent_socket):
    path, routes = agent_socket
    stdin = b'{"cniVersion": "1.0.0", "runtimeConfig": {"agent_socket": "' + path.encode() + b'"}}'
    rc, out = _run(compiled["nuage-cni"], stdin, {"CNI_COMMAND": "VERSION"})
    assert rc == 0 and json.loads(out)["cniVersion"] == "1.0.0"
    assert routes.calls == []  # the default socket was tried (absent here), then the fallback answered


def test_the_agent_refuses_a_malformed_cni_body():
    for body in ({}, {"env": {}}, {"env": [], "stdin": ""}, {"env": {"CNI_COMMAND": 1}, "stdin": ""},
                 {"env": {}, "stdin": "\u0100"}, {"env": {}, "stdin": "", "more": 1}):
        with pytest.raises(AttachError):
            server.run_cni(body)


@needs_cc
def test_the_cni_code_in_the_agent_calls_the_agent_in_process(compiled, agent_socket):
    path, routes = agent_socket
    stdin = b'{"cniVersion": "1.0.0", "name": "n", "agent_socket": "' + path.encode() + b'"}'
    env = {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0"}
    rc, out = _run(compiled["nuage-cni"], stdin, env)
    assert (rc, out) == (0, b"")
    assert routes.calls == [("POST", "/v1/cni"), ("POST", "/v1/detach")]
    assert routes.threads[0] == routes.threads[1]  # no second request on the socket: the same thread
    rc, out = _run(compiled[launcher.COMPILED_FALLBACK], stdin, env)  # the Python plugin: over the socket
    assert (rc, out) == (0, b"") and routes.calls[2:] == [("POST", "/v1/detach")]


@needs_cc
def test_compiled_leaves_command_line_arguments_to_the_python_plugin(compiled):
    python = subprocess.run([compiled[launcher.COMPILED_FALLBACK], "--version"], capture_output=True, env={})
    fast = subprocess.run([compiled["nuage-cni"], "--version"], capture_output=True, env={})
    assert (fast.returncode, fast.stdout) == (python.returncode, python.stdout) == (0, python.stdout)
    assert python.stdout.startswith(b"nuage-cni ")
