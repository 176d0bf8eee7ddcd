"""nuage-ryu-manager: bad input gives one clear line and a non-zero exit."""

import os
import socket
import subprocess
import sys

import pytest

MANAGER = [sys.executable, "-m", "nuage_ryu.cmd.manager"]
TIMEOUT = 30


def run_manager(*args, cwd=None):
    return subprocess.run(MANAGER + list(args), capture_output=True, text=True, timeout=TIMEOUT, cwd=cwd)


def assert_one_line_error(proc, fragment):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("nuage-ryu-manager: error:")]
    assert len(lines) == 1, proc.stderr
    assert fragment in lines[0]


def test_unknown_config_option(tmp_path):
    ini = tmp_path / "bad.ini"
    ini.write_text("[vrs]\nbrdige = br-int\n")
    proc = run_manager("--config-file", str(ini), "--state-dir", str(tmp_path))
    assert_one_line_error(proc, "unknown option 'brdige' in section [vrs]")


def test_bad_option_value(tmp_path):
    ini = tmp_path / "bad.ini"
    ini.write_text("[directory]\napi_port = eighty\n")
    proc = run_manager("--config-file", str(ini), "--state-dir", str(tmp_path))
    assert_one_line_error(proc, "api_port")


def test_missing_config_file(tmp_path):
    proc = run_manager("--config-file", str(tmp_path / "absent.ini"))
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr


def test_unknown_app(tmp_path):
    proc = run_manager("--state-dir", str(tmp_path), "nuage_ryu.apps.no_such_app")
    assert_one_line_error(proc, "cannot load app 'nuage_ryu.apps.no_such_app'")


def test_module_without_app(tmp_path):
    proc = run_manager("--state-dir", str(tmp_path), "nuage_ryu.config")
    assert_one_line_error(proc, "defines no os-ken app class")


def test_openflow_port_in_use(tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        proc = run_manager(
            "--state-dir", str(tmp_path), "--ofp-listen-host", "127.0.0.1",
            "--ofp-tcp-listen-port", str(port), "nuage_ryu.apps.datapath_monitor",
        )
    finally:
        busy.close()
    assert_one_line_error(proc, f"cannot listen for OpenFlow on 127.0.0.1:{port}")


@pytest.mark.parametrize("sig", ["TERM", "INT"])
def test_clean_shutdown_on_signal(tmp_path, sig):
    """Starts, serves, and exits 0 on SIGTERM/SIGINT without a traceback."""
    import signal
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        MANAGER + ["--state-dir", str(tmp_path), "--ofp-listen-host", "127.0.0.1",
                   "--ofp-tcp-listen-port", str(port), "nuage_ryu.apps.datapath_monitor"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:  # wait until the OpenFlow port accepts
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read()
                time.sleep(0.05)
        else:
            pytest.fail("manager never listened")
        proc.send_signal(getattr(signal, "SIG" + sig))
        _, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
        assert "stopped" in err
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def test_unreachable_ovsdb(tmp_path):
    ini = tmp_path / "agent.ini"
    ini.write_text(f"[vrs]\novsdb_connection = unix:{tmp_path}/no-such-db.sock\nmetrics_listen =\n"
                   "agent_socket =\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = run_manager("--config-file", str(ini), "--state-dir", str(tmp_path), "--ofp-listen-host", "127.0.0.1",
                       "--ofp-tcp-listen-port", str(port), "nuage_ryu.apps.vrs_agent")
    assert_one_line_error(proc, "cannot reach OVSDB at unix:")
