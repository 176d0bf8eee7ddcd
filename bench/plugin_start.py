"""Benchmark: start-up cost of one ``nuage-cni`` call (what a runtime pays per ADD/DEL/VERSION).

Compares, in the same run, N execs of ``CNI_COMMAND=VERSION`` (no agent needed, so
this is pure start-up + argument handling) for:

* ``console-script``: the entry point pip generated (``site``, and for an
  editable install its import finder) -- the reference;
* ``launcher``: the ``-I -S`` launcher script of ``nuage_ryu.plugins.launcher``;
* ``python -I -S -c pass``: the interpreter alone (the floor of a Python plugin);
* ``compiled (C) VERSION``: bench/exec_floor.c, when a C compiler is there: the floor of
  any exec'd plugin (process creation and exec only).

Per variant: wall-clock p50/p90 and CPU time (user+sys of the child, from
``wait4``) p50. On a shared machine the CPU time is the steadier figure; the
load average is recorded with the results. Also prints the Docker plugin's
per-request time (a daemon: no process start per call).

    .venv/bin/python bench/plugin_start.py [--count 200] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nuage_ryu.plugins import launcher  # noqa: E402

STDIN = b'{"cniVersion": "1.0.0"}'


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def one_exec(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, child CPU seconds) of one run with the VERSION environment."""
    read_in, write_in = os.pipe()
    os.write(write_in, STDIN)
    os.close(write_in)
    devnull = os.open(os.devnull, os.O_WRONLY)
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, {"CNI_COMMAND": "VERSION"},
                         file_actions=[(os.POSIX_SPAWN_DUP2, read_in, 0), (os.POSIX_SPAWN_DUP2, devnull, 1)])
    _pid, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    os.close(read_in)
    os.close(devnull)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{argv} failed")
    return wall, usage.ru_utime + usage.ru_stime


def measure(variants: dict[str, list[str]], count: int) -> dict:
    """Interleaved runs (one of each variant per round), so that load changes hit all alike."""
    samples: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in variants}
    for _ in range(count):
        for name, argv in variants.items():
            wall, cpu = one_exec(argv)
            samples[name][0].append(wall)
            samples[name][1].append(cpu)
    return {name: {"wall_p50_ms": round(percentile(w, 50) * 1000, 1),
                   "wall_p90_ms": round(percentile(w, 90) * 1000, 1),
                   "cpu_p50_ms": round(percentile(c, 50) * 1000, 1)}
            for name, (w, c) in samples.items()}


def docker_plugin_request_ms(count: int) -> float | None:
    """p50 of one libnetwork call (NetworkDriver.GetCapabilities) on a running nuage-docker-plugin."""
    from nuage_ryu.plugins.agent_client import AgentClient

    with tempfile.TemporaryDirectory(prefix="nr-pstart-") as tmp:
        sock = os.path.join(tmp, "nuage.sock")
        proc = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "nuage-docker-plugin"),
                                 "--socket", sock, "--spec-file", "", "--agent-socket",
                                 os.path.join(tmp, "agent.sock")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while not os.path.exists(sock):
                if proc.poll() is not None or time.monotonic() > deadline:
                    return None
                time.sleep(0.02)
            client = AgentClient(sock)
            times = []
            for _ in range(count):
                start = time.perf_counter()
                client.call("POST", "/NetworkDriver.GetCapabilities", {})
                times.append(time.perf_counter() - start)
            return round(percentile(times, 50) * 1000, 2)
        finally:
            proc.terminate()
            proc.wait(10)


def compile_floor(tmp: str) -> str | None:
    """bench/exec_floor.c compiled into ``tmp`` (None without a C compiler)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    binary = os.path.join(tmp, "exec-floor")
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "exec_floor.c")
    proc = subprocess.run([cc, "-O2", "-o", binary, source], capture_output=True)
    return binary if proc.returncode == 0 else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    bin_dir = os.path.dirname(sys.executable)
    with tempfile.TemporaryDirectory(prefix="nr-pstart-") as tmp:
        os.mkdir(os.path.join(tmp, "s"))
        launcher.install(os.path.join(tmp, "s"), ["nuage-cni"])
        reference = os.path.join(tmp, "console-script")
        # What pip writes for the console script (the venv's own may already be the launcher).
        with open(reference, "w") as out:
            out.write(f"#!{sys.executable}\nimport sys\nfrom nuage_ryu.plugins.cni import main\n"
                      "sys.exit(main())\n")
        os.chmod(reference, 0o755)
        variants = {
            "console-script": [reference],
            "launcher": [os.path.join(tmp, "s", "nuage-cni")],
            "python -I -S -c pass": [sys.executable, "-I", "-S", "-c", "pass"],
        }
        compiled = compile_floor(tmp)
        if compiled:
            variants["compiled (C) VERSION"] = [compiled]
        load_before = os.getloadavg()[0]
        results = {"count": args.count, "cpus": os.cpu_count(), "loadavg_before": load_before,
                   "variants": measure(variants, args.count)}
    results["installed"] = os.path.realpath(os.path.join(bin_dir, "nuage-cni"))
    results["docker_plugin_request_p50_ms"] = docker_plugin_request_ms(min(args.count, 200))
    results["loadavg_after"] = os.getloadavg()[0]
    ref = results["variants"]["console-script"]["cpu_p50_ms"]
    for row in results["variants"].values():
        row["cpu_vs_console_script"] = round(row["cpu_p50_ms"] / ref, 2) if ref else None
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
