"""What ``nuage-lab status`` shows of a standing control plane, asked of the parts themselves.

Per host, three links and the vport counts:

* ``openflow``: br-int's controller connection (the host's OVSDB ``Controller.is_connected``);
* ``agent``: the agent process (recorded pid) and its socket's ``GET /v1/status`` (ready, problems:
  it checks its bridge and that the directory's REST API answers);
* ``directory``: the directory's own view of the host (``/hosts``: ``connected``, ``last_seen``,
  kept by the agent's liveness over the directory database);
* ``vports``: bound to the host in the directory (and how many of them are ``up``), the agent's
  attachments (``GET /v1/attachments``, from its OVSDB), and the vport ports on br-int.
"""

from __future__ import annotations

from nuage_ryu.directory.client import CannotConnect
from nuage_ryu.directory.errors import DirectoryError
from nuage_ryu.lab import containers, standing
from nuage_ryu.lab.lab import INTEGRATION_BRIDGE, Lab
from nuage_ryu.lab.plane import ControlPlane
from nuage_ryu.plugins.agent_client import AgentClient, AgentError

AGENT_TIMEOUT = 5.0


def _directory_view(plane: ControlPlane) -> tuple[dict, dict[str, list[dict]], str | None]:
    """(hosts by name, vports by host name, error) as the directory sees them."""
    try:
        client = plane.client()
        hosts = {h["name"]: h for h in client.list("/hosts")}
        vports: dict[str, list[dict]] = {}
        for enterprise in client.list("/enterprises"):
            for domain in client.list(f"/enterprises/{enterprise['id']}/domains"):
                for zone in client.list(f"/domains/{domain['id']}/zones"):
                    for subnet in client.list(f"/zones/{zone['id']}/subnets"):
                        for vport in client.list(f"/subnets/{subnet['id']}/vports"):
                            vports.setdefault(vport.get("host") or "", []).append(vport)
        return hosts, vports, None
    except (DirectoryError, CannotConnect, OSError) as exc:
        return {}, {}, str(exc) or type(exc).__name__


def _agent_view(plane: ControlPlane, host) -> dict:
    agent = AgentClient(plane.agent_socket(host), timeout=AGENT_TIMEOUT)
    try:
        status = agent.status()
        attachments = agent.attachments()
    except (AgentError, OSError) as exc:
        return {"reachable": False, "error": str(exc)}
    return {"reachable": True, "ready": bool(status.get("ready")), "problems": status.get("problems", []),
            "attachments": len(attachments)}


def plane_status(lab: Lab, lab_report: dict) -> dict | None:
    """The plane part of ``status`` (None when the lab runs no standing plane).

    ``lab_report``: ``lab.status()``, whose bridges give the OpenFlow connections and OVS ports."""
    record = standing.read_record(lab)
    plane = standing.recorded_plane(lab)
    if record is None or plane is None:
        return None
    pids = standing.recorded_pids(lab)
    processes = {name: {"pid": pid, "alive": standing.is_plane_process(pid, plane.root)}
                 for name, pid in sorted(pids.items())}
    hosts, vports, error = _directory_view(plane)
    report = {"tls": plane.tls, "api_socket": plane.api_socket, "token_file": plane.token_file,
              "context": record.get("context"), "ctl_config": record.get("ctl_config"),
              "processes": processes, "directory": {"answers": error is None, "error": error},
              "hosts": [], "containers": sorted(containers.read(lab).values(), key=lambda c: c["name"])}
    by_name = {h["name"]: h for h in lab_report["hosts"]}
    for host in lab.hosts:
        bridges = by_name.get(host.name, {}).get("bridges", {})
        br_int = bridges.get(INTEGRATION_BRIDGE, {})
        mine = vports.get(host.host_name, [])
        seen = hosts.get(host.host_name, {})
        agent = _agent_view(plane, host)
        report["hosts"].append({
            "name": host.name, "host_name": host.host_name,
            "openflow": {"connected": any(c.get("is_connected") for c in br_int.get("controllers", [])),
                         "targets": [c.get("target") for c in br_int.get("controllers", [])]},
            "agent": {"pid": processes.get(f"agent-{host.name}", {}).get("pid"),
                      "alive": processes.get(f"agent-{host.name}", {}).get("alive", False), **agent},
            "directory": {"registered": bool(seen), "connected": bool(seen.get("connected")),
                          "last_seen": seen.get("last_seen")},
            "vports": {"directory": len(mine), "up": sum(v.get("status") == "up" for v in mine),
                       "agent": agent.get("attachments"), "ovs": len(br_int.get("vports", []))},
        })
    return report
