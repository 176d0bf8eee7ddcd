"""The built wheel works without a checkout (issue 14, item 5).

A copy of the source tree is built into a wheel (``pip wheel``, as ``python -m build`` would:
an isolated build with setuptools), the wheel is ``pip install``ed into a fresh venv with its
dependencies from the configured package index, and everything then runs from that venv with
the working directory elsewhere and no ``PYTHONPATH``: every package of the source tree is
installed, the console scripts answer ``--version`` with ``nuage_ryu.__version__``, the
directory starts under ``nuage-ryu-manager`` with the packaged OVSDB schema and serves the
console's packaged static files, ``nuage-ctl`` talks to it, the os-ken apps import, and the
fast plugin launchers written by ``python -m nuage_ryu.plugins.launcher install`` run the
installed code, and ``nuage-lab up --plane`` runs the directory and a VRS agent from it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import nuage_ryu

pytestmark = pytest.mark.integration

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# What setup.cfg builds from: the package, the two folders installed under it, the metadata.
SOURCES = ("nuage_ryu", "apps", "ovsdb", "setup.cfg", "pyproject.toml", "README.md")
CONSOLE_SCRIPTS = ("nuage-ryu-manager", "nuage-lab", "nuage-ctl", "nuage-cni", "nuage-docker-plugin")
PIP_TIMEOUT = 300


def _source_packages() -> set[str]:
    """Every package of the checkout, named as installed (apps/ -> nuage_ryu.apps, ovsdb/ -> nuage_ryu.db)."""
    found = set()
    for top, installed in (("nuage_ryu", "nuage_ryu"), ("apps", "nuage_ryu.apps"), ("ovsdb", "nuage_ryu.db")):
        for dirpath, _dirs, files in os.walk(os.path.join(REPO, top)):
            if "__init__.py" in files:
                rel = os.path.relpath(dirpath, os.path.join(REPO, top))
                found.add(installed if rel == "." else f"{installed}.{rel.replace(os.sep, '.')}")
    return found


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: no venv or checkout on the import path."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSAFEPATH")}
    return {**env, **extra}


def _run(argv, cwd, env=None, timeout=60, input_text=None) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, cwd=cwd, env=env or _clean_env(), capture_output=True, text=True,
                          timeout=timeout, input=input_text)
    assert proc.returncode == 0, f"{argv}: {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv dir, workdir): the wheel built from a copy of the tree, installed into a fresh venv."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for name in SOURCES:
        path = os.path.join(REPO, name)
        if os.path.isdir(path):
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    dist = root / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(src)], cwd=str(root),
         timeout=PIP_TIMEOUT)
    (wheel,) = [p for p in dist.iterdir() if p.suffix == ".whl"]
    assert wheel.name.startswith(f"nuage_ryu-{nuage_ryu.__version__}-")
    shutil.rmtree(src)  # from here on there is no source tree anywhere the venv could see

    venv = root / "venv"
    base_python = getattr(sys, "_base_executable", None) or shutil.which("python3")
    # A venv of the machine's Python; this pip installs into it (--python), without compiling every
    # dependency to bytecode (that alone is most of an install's time on a loaded machine).
    _run([base_python, "-m", "venv", "--without-pip", str(venv)], cwd=str(root))
    _run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q", "--no-compile",
          str(wheel)], cwd=str(root), timeout=PIP_TIMEOUT)
    work = root / "work"
    work.mkdir()
    return venv, work


def _site_packages(venv) -> str:
    (lib,) = (venv / "lib").iterdir()
    return str(lib / "site-packages")


def test_the_wheel_installs_every_package_with_its_data(installed):
    venv, work = installed
    code = ("import json, os, pkgutil, nuage_ryu\n"
            "root = os.path.dirname(nuage_ryu.__file__)\n"
            "pkgs = ['nuage_ryu'] + [m.name for m in pkgutil.walk_packages([root], 'nuage_ryu.') if m.ispkg]\n"
            "print(json.dumps({'file': nuage_ryu.__file__, 'version': nuage_ryu.__version__, 'packages': pkgs,"
            " 'schema': os.path.isfile(os.path.join(root, 'db', 'nuage_directory.ovsschema')),"
            " 'static': sorted(os.listdir(os.path.join(root, 'directory', 'ui', 'static')))}))\n")
    info = json.loads(_run([str(venv / "bin" / "python"), "-c", code], cwd=str(work)).stdout)
    assert info["file"].startswith(_site_packages(venv) + os.sep), info["file"]
    assert info["version"] == nuage_ryu.__version__
    missing = _source_packages() - set(info["packages"])
    assert not missing, f"packages of the source tree not in the wheel (setup.cfg [options] packages): {missing}"
    assert info["schema"], "the OVSDB schema is not installed (package data of nuage_ryu.db)"
    expected_static = sorted(os.listdir(os.path.join(REPO, "nuage_ryu", "directory", "ui", "static")))
    assert info["static"] == expected_static
    # The os-ken apps import from the installed package (what nuage-ryu-manager loads by name).
    _run([str(venv / "bin" / "python"), "-c",
          "import nuage_ryu.apps.directory_api, nuage_ryu.apps.vrs_agent, nuage_ryu.apps.vrs_dhcp, "
          "nuage_ryu.apps.datapath_monitor"], cwd=str(work))


def test_every_console_script_prints_the_version(installed):
    venv, work = installed
    for script in CONSOLE_SCRIPTS:
        path = venv / "bin" / script
        assert path.exists(), f"console script {script} not installed"
        out = _run([str(path), "--version"], cwd=str(work))
        assert nuage_ryu.__version__ in (out.stdout + out.stderr).split(), (script, out.stdout, out.stderr)
    man = _run([str(venv / "bin" / "nuage-ctl"), "man"], cwd=str(work)).stdout
    assert f"nuage-ryu {nuage_ryu.__version__}" in man


def _unix_get(sock_path: str, path: str, token: str | None = None) -> tuple[int, bytes]:
    class Conn(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(10)
            self.sock.connect(sock_path)

    conn = Conn("localhost")
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


def _wait(condition, timeout: float, what: str, proc=None, log=None):
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: exited with {proc.returncode}: {Path(log).read_text()[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_the_directory_runs_from_the_wheel_and_nuage_ctl_talks_to_it(installed, tmp_path):
    venv, work = installed
    state = tmp_path / "directory"
    api_socket = tmp_path / "api.sock"
    conf = tmp_path / "directory.ini"
    # REST only on a unix socket: no port of this machine is used.
    conf.write_text(f"[DEFAULT]\nstate_dir = {state}\n[directory]\napi_port = 0\napi_socket = {api_socket}\n")
    log = tmp_path / "directory.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(venv / "bin" / "nuage-ryu-manager"), "--config-file", str(conf),
                                 "--role", "directory"], cwd=str(work), env=_clean_env(), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        token_file = state / "api-token"
        _wait(lambda: api_socket.exists() and token_file.exists() and (state / "directory.json").exists(),
              60, "the directory API", proc, str(log))
        # The console's static files come from the installed package data.
        status, body = _unix_get(str(api_socket), "/ui/")
        assert status == 200 and b"<html" in body.lower()
        # nuage-ctl, pointed at that directory by its state dir alone (its published record).
        env = _clean_env(NUAGE_CTL_CONFIG=str(tmp_path / "ctl.ini"))
        ctl = str(venv / "bin" / "nuage-ctl")
        _run([ctl, "config", "set", "wheel", "--state-dir", str(state)], cwd=str(work), env=env)
        _run([ctl, "enterprise", "create", "acme", "--description", "from the wheel"], cwd=str(work), env=env)
        listed = json.loads(_run([ctl, "-o", "json", "enterprise", "list"], cwd=str(work), env=env).stdout)
        assert [e["name"] for e in listed] == ["acme"]
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_the_plugin_launchers_run_the_installed_code(installed, tmp_path):
    venv, work = installed
    bin_dir = tmp_path / "cni-bin"
    bin_dir.mkdir()
    written = _run([str(venv / "bin" / "python"), "-m", "nuage_ryu.plugins.launcher", "install",
                    "--bin", str(bin_dir)], cwd=str(work)).stdout.split()
    assert sorted(os.path.basename(p) for p in written) == ["nuage-cni", "nuage-docker-plugin"]
    cni = str(bin_dir / "nuage-cni")
    assert repr(_site_packages(venv)) in Path(cni).read_text()  # the launcher runs the installed package
    answer = json.loads(_run([cni], cwd=str(work), env=_clean_env(CNI_COMMAND="VERSION"),
                             input_text='{"cniVersion": "1.0.0"}').stdout)
    assert "1.1.0" in answer["supportedVersions"]
    assert nuage_ryu.__version__ in _run([cni, "--version"], cwd=str(work)).stdout
    assert nuage_ryu.__version__ in _run([str(bin_dir / "nuage-docker-plugin"), "--version"],
                                         cwd=str(work)).stdout


def test_the_lab_runs_its_plane_from_the_wheel(installed, tmp_path):
    """The VRS agent app and the directory app, started by nuage-lab from the installed package."""
    venv, work = installed
    lab_bin = str(venv / "bin" / "nuage-lab")
    state = str(tmp_path / "lab")
    env = _clean_env(XDG_CONFIG_HOME=str(tmp_path / "config"))
    try:
        _run([lab_bin, "up", "--hosts", "1", "--plane", "--state-dir", state, "--prefix",
              f"uxw{os.getpid() % 100000}"], cwd=str(work), env=env, timeout=180)
        report = json.loads(_run([lab_bin, "status", "--json", "--state-dir", state], cwd=str(work),
                                 env=env).stdout)["plane"]
        (host,) = report["hosts"]
        assert host["openflow"]["connected"] and host["agent"]["ready"] and host["directory"]["connected"], host
        # the agent runs the installed code, not a checkout
        with open(f"/proc/{host['agent']['pid']}/cmdline", "rb") as f:
            assert f.read().split(b"\0")[0].decode().startswith(str(venv))
    finally:
        subprocess.run([lab_bin, "down", "--state-dir", state], cwd=str(work), env=env, capture_output=True,
                       timeout=180)
    assert not os.path.exists(state)
