"""Run the attach service and its socket on their own: ``python -m nuage_ryu.plugins.agentd ...``.

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

from nuage_ryu.plugins.agent_client import DEFAULT_AGENT_SOCKET
from nuage_ryu.plugins.agent_server import AgentApiServer
from nuage_ryu.plugins.attach import AttachService
from nuage_ryu.plugins.directory_client import DirectoryClient
from nuage_ryu.plugins.links import LinkOps


def build_service(directory_url: str, token: str, ovsdb: str, host_name: str, bridge: str = "br-int",
                  underlay_mtu: int = 1500, host_netns: str | None = None, up_mode: str = "directory",
                  up_timeout: float = 10.0, ovs=None, tx_checksum_offload: bool | None = None,
                  ) -> AttachService:
    """An AttachService over the real directory REST API and the host's OVSDB."""
    if ovs is None:
        from nuage_ryu.hostovs.host import HostOVS
        ovs = HostOVS(ovsdb)
    directory = DirectoryClient(directory_url, token)
    wait = (lambda vport_id, timeout: True) if up_mode == "ofport" else None
    return AttachService(directory, ovs, LinkOps(host_netns, tx_checksum_offload), bridge=bridge,
                         host_name=host_name,
                         underlay_mtu=underlay_mtu, wait_vport_up=wait, up_timeout=up_timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nuage_ryu.plugins.agentd",
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
    with open(args.token_file, encoding="utf-8") as fh:
        token = fh.read().strip()
    service = build_service(args.directory, token, args.ovsdb, args.host_name, args.bridge, args.underlay_mtu,
                            args.host_netns, args.up_mode, args.up_timeout,
                            tx_checksum_offload=False if args.no_tx_checksum_offload else None)
    server = AgentApiServer(service, args.socket).start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *a: stop.set())
    print(f"nuage agent API listening on {args.socket}", flush=True)
    stop.wait()
    server.stop()
    service.ovs.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
