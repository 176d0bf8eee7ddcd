"""How soon a br-int whose controller target ovs-vswitchd has retried for long gets its controller.

    .venv/bin/python bench/controller_renew.py [--runs 3]

A private OVS (own netns, userspace datapath); br-int with fail_mode=secure, a flow, and a
controller target nobody listens on, left until ovs-vswitchd logs that it reached its maximum
back-off (8 s in 3.1). Then an OpenFlow listener starts (``tests/of_listener.py``) and the
bridge is ensured as the agent does it at start, ``renew_controllers`` on (the row gets the
other spelling of its target: ``nuage_ryu/hostovs/controller_target.py``) or off (as before).
Figure: seconds from the listener being up to ovs-vswitchd's connection, per run, the two
situations alternating on fresh bridges; the flow must still be there. Load average and the
bench's CPU seconds are printed beside them (bench/cpu_meter.py is for processes it starts; here
the work is ovs-vswitchd's and negligible).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from nuage_ryu.hostovs.host import HostOVS  # noqa: E402
from tests.of_listener import start_listener  # noqa: E402
from tests.ovs_fixtures import private_ovs, wait_until  # noqa: E402

MAX_BACKOFF_LOG = "continuing to retry connections in the background"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_run(instance, host: HostOVS, bridge: str, renew: bool) -> float:
    port = free_port()
    target = f"tcp:127.0.0.1:{port}"
    log_path = instance.logfile("ovs-vswitchd")
    with open(log_path) as f:
        start_at = len(f.read())

    def log_since() -> str:
        with open(log_path) as f:
            return f.read()[start_at:]

    host.ensure_integration_bridge(bridge, "netdev", [target], 0xC3)
    wait_until(lambda: instance.run(["ovs-ofctl", "-O", "OpenFlow13", "show", bridge], check=False).returncode == 0,
               20, message="the bridge")
    instance.ofctl("-O", "OpenFlow13", "add-flow", bridge, "priority=7,actions=drop")
    wait_until(lambda: MAX_BACKOFF_LOG in log_since(), 40, 0.2, "the maximum back-off")
    listener = start_listener(instance, port)
    try:
        up = time.time()
        host.ensure_integration_bridge(bridge, "netdev", [target], 0xC3, renew_controllers=renew)
        line = listener.stdout.readline()
        connected = float(line.split()[1]) - up
        assert "priority=7 actions=drop" in instance.ofctl("-O", "OpenFlow13", "dump-flows", bridge)
    finally:
        listener.kill()
        listener.wait()
    instance.vsctl("del-br", bridge)
    return connected


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    load0, cpu0 = os.getloadavg(), time.process_time()
    out: dict[str, list[float]] = {"renewed": [], "as before": []}
    with private_ovs(vswitchd=True, prefix="hs-ctl-") as instance:
        instance.run(["ip", "link", "set", "lo", "up"])
        with HostOVS(instance.db_remote, timeout=10) as host:
            host.wait_for_vswitchd()
            for i in range(args.runs):
                for name, renew in (("renewed", True), ("as before", False)):
                    secs = one_run(instance, host, f"br-int{i}{int(renew)}", renew)
                    out[name].append(round(secs, 3))
                    print(f"{name}: {secs:.3f} s", flush=True)
    summary = {name: {"runs": v, "median_s": statistics.median(v), "max_s": max(v)} for name, v in out.items()}
    summary["load_avg"] = [round(x, 2) for x in load0] + [round(x, 2) for x in os.getloadavg()]
    summary["bench_cpu_s"] = round(time.process_time() - cpu0, 2)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
