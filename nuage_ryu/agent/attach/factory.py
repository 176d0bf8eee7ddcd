"""The one way to build the attach service and its agent socket from an agent's settings.

Used by the VRS agent app (``apps/vrs_agent.py``, settings from ``[vrs]``) and by
the standalone daemon (agentd.py, settings from its command line).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from nuage_ryu.agent.attach.directory_pool import PooledDirectory
from nuage_ryu.agent.attach.links import LinkOps
from nuage_ryu.agent.attach.server import AgentApiServer
from nuage_ryu.agent.attach.service import AttachService
from nuage_ryu.agent.attach.timing import PhaseObserver
from nuage_ryu.directory.client import DirectoryClient
from nuage_ryu.hostovs.host import HostOVS

DIRECTORY_TIMEOUT = 10.0  # seconds per directory request: a CNI ADD must answer within the runtime's timeout


@dataclass(frozen=True)
class AgentApiSettings:
    """What the attach service of one host needs to know."""

    socket_path: str                      # the agent socket the plugins call
    directory_api: str                    # http://HOST:PORT or unix:/path of the directory REST API
    token_file: str                       # bearer token for directory_api
    host_name: str
    bridge: str = "br-int"
    underlay_mtu: int = 1500
    host_netns: str | None = None         # namespace of the switch's ports (lab hosts); None: our own
    up_timeout: float = 10.0
    tx_checksum_offload: bool | None = None   # None: off on a netdev bridge (see LinkOps)
    ca_file: str | None = None            # https directory_api: the CA its certificate must chain to


def read_token(path: str) -> str:
    """The bearer token in ``path``; RuntimeError with a one-line reason when unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError as exc:
        raise RuntimeError(f"agent API: cannot read the directory token {path}: {exc.strerror}") from None


def build_attach_service(settings: AgentApiSettings, ovs: HostOVS,
                         wait_vport_up: Callable[[str, float], bool] | None = None, *,
                         flows_confirmed_at: Callable[[str], float | None] | None = None,
                         observe: PhaseObserver | None = None) -> AttachService:
    """An AttachService over the directory REST API and ``ovs`` (the host's ``HostOVS``).

    ``wait_vport_up``: the agent's own "flows installed" signal; None polls the vport's status.
    ``flows_confirmed_at``, ``observe``: the agent's side of the phase timings (timing.py).
    """
    # The socket server calls the service from many threads at once: a pool of kept-alive
    # connections, one per concurrent call (no TLS handshake per call; directory_pool.py).
    token = read_token(settings.token_file)
    directory = PooledDirectory(lambda: DirectoryClient(settings.directory_api, token, timeout=DIRECTORY_TIMEOUT,
                                                        keep_alive=True, ca_file=settings.ca_file))
    return AttachService(directory, ovs, LinkOps(settings.host_netns, settings.tx_checksum_offload),
                         bridge=settings.bridge, host_name=settings.host_name,
                         underlay_mtu=settings.underlay_mtu, wait_vport_up=wait_vport_up,
                         up_timeout=settings.up_timeout, flows_confirmed_at=flows_confirmed_at,
                         observe=observe)


def start_agent_api(settings: AgentApiSettings, ovs: HostOVS,
                    wait_vport_up: Callable[[str, float], bool] | None = None, *,
                    flows_confirmed_at: Callable[[str], float | None] | None = None,
                    observe: PhaseObserver | None = None) -> AgentApiServer:
    """The attach service behind its agent socket, serving; ``stop()`` it on shutdown."""
    service = build_attach_service(settings, ovs, wait_vport_up, flows_confirmed_at=flows_confirmed_at,
                                   observe=observe)
    return AgentApiServer(service, settings.socket_path).start()
