"""Run the attach service and its socket on their own: ``python -m nuage_ryu.agent.attach.agentd ...``.

The VRS agent app normally hosts the service (see docs/agent-api.md); this
standalone form serves tests, benchmarks and hosts whose agent runs elsewhere.
``--up-mode ofport`` treats "OVS assigned an ofport" as up (no agent needed);
``--up-mode directory`` (default) waits for the vport's status in the directory.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from nuage_ryu.agent.attach.factory import AgentApiSettings, start_agent_api
from nuage_ryu.hostovs.host import HostOVS
from nuage_ryu.plugins.agent_client import DEFAULT_AGENT_SOCKET


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m nuage_ryu.agent.attach.agentd",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--socket", default=DEFAULT_AGENT_SOCKET)
    parser.add_argument("--ovsdb", required=True, help="OVSDB remote of the host's Open_vSwitch database")
    parser.add_argument("--bridge", default="br-int")
    parser.add_argument("--host-name", required=True)
    parser.add_argument("--directory", required=True, help="http://HOST:PORT or unix:/path of the REST API")
    parser.add_argument("--token-file", required=True)
    parser.add_argument("--underlay-mtu", type=int, default=1500)
    parser.add_argument("--host-netns", default=None, help="namespace of the switch's ports (lab hosts)")
    parser.add_argument("--up-mode", choices=("directory", "ofport"), default="directory")
    parser.add_argument("--up-timeout", type=float, default=10.0)
    parser.add_argument("--no-tx-checksum-offload", action="store_true",
                        help="turn TX checksum offload off on container interfaces (default: off "
                             "when the bridge is a netdev bridge)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = AgentApiSettings(
        socket_path=args.socket, directory_api=args.directory, token_file=args.token_file,
        host_name=args.host_name, bridge=args.bridge, underlay_mtu=args.underlay_mtu,
        host_netns=args.host_netns, up_timeout=args.up_timeout,
        tx_checksum_offload=False if args.no_tx_checksum_offload else None)
    ovs = HostOVS(args.ovsdb)
    wait = (lambda vport_id, timeout: True) if args.up_mode == "ofport" else None
    try:
        server = start_agent_api(settings, ovs, wait)
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *a: stop.set())
        print(f"nuage agent API listening on {args.socket}", flush=True)
        stop.wait()
        server.stop()
    finally:
        ovs.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
