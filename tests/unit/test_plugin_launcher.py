"""The fast plugin entry points: ``-I -S`` launcher scripts, their import closure, lean JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from nuage_ryu.plugins import launcher, lean

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
