"""Containers on a lab host, attached through the real CNI plugin (``nuage-lab attach`` / ``detach``).

A container is a network namespace ``<prefix>-c-<name>``. ``attach`` runs the ``nuage-cni``
executable exactly as a container runtime on that host would: inside the host's network
namespace, with the CNI environment (``CNI_COMMAND=ADD``, ``CNI_CONTAINERID``, ``CNI_NETNS``,
``CNI_IFNAME``, ``CNI_PATH``, per-container policy groups in ``CNI_ARGS``) and the network
configuration as JSON on stdin; the plugin asks the host's agent over its socket, which makes
the veth, the OVS port and the directory's vport. ``detach`` is the runtime's ``DEL`` with the
same configuration, then the namespace goes.

Every container is recorded in ``<state>/containers.json`` before its namespace exists (the
CNI configuration is kept, since DEL must get the one ADD got), so ``detach`` and ``nuage-lab
down`` find it after a crash too. A blocking lock (``containers.lock``) serialises the commands.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator

from nuage_ryu.hostovs.process import OvsError, kill_pid
from nuage_ryu.lab import netns
from nuage_ryu.lab.lab import Lab
from nuage_ryu.lab.netns import LabError
from nuage_ryu.lab.plane import ControlPlane

RECORD_FILE = "containers.json"
LOCK_FILE = "containers.lock"
IFNAME = "eth0"
CNI_VERSION = "1.0.0"
CNI_TIMEOUT = 90.0
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,14}$")
# Names the lab's own nodes use on the command line (exec): a container may not shadow them.
RESERVED = re.compile(r"^(h\d+|ctl|ul|rtr|inet)$")


def _path(lab: Lab, name: str) -> str:
    return os.path.join(lab.state_dir, name)


@contextlib.contextmanager
def _locked(lab: Lab) -> Iterator[None]:
    with open(_path(lab, LOCK_FILE), "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second attach waits its turn
        yield


def read(lab: Lab) -> dict[str, dict]:
    """Name -> record of every container of the lab (``{}`` when none)."""
    try:
        with open(_path(lab, RECORD_FILE), encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise LabError(f"unreadable container record {_path(lab, RECORD_FILE)}: {exc}") from None


def _write(lab: Lab, records: dict[str, dict]) -> None:
    path = _path(lab, RECORD_FILE)
    if not records:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(records, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(path + ".tmp", path)


def cni_executable() -> str:
    """The ``nuage-cni`` next to this interpreter (the venv's, maybe the fast launcher), else on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "nuage-cni")
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which("nuage-cni")
    if not found:
        raise LabError("the nuage-cni executable is not installed (pip install nuage-ryu)")
    return found


def network_config(plane: ControlPlane, lab: Lab, host_name: str, path: list[str]) -> dict:
    """The CNI network configuration a runtime on that host would hold for this subnet."""
    enterprise, domain, zone, subnet = path
    return {"cniVersion": CNI_VERSION, "name": f"nuage-{enterprise}-{domain}", "type": "nuage-cni",
            "agent_socket": plane.agent_socket(lab.host(host_name)),
            "enterprise": enterprise, "domain": domain, "zone": zone, "subnet": subnet}


def run_cni(lab: Lab, record: dict, command: str) -> dict:
    """Run ``nuage-cni`` for ``command`` in the record's host namespace; its JSON answer ({} when none)."""
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "CNI_COMMAND": command,
           "CNI_CONTAINERID": record["container_id"], "CNI_NETNS": f"/var/run/netns/{record['netns']}",
           "CNI_IFNAME": record["ifname"], "CNI_PATH": os.path.dirname(cni_executable())}
    if record.get("policygroups"):
        env["CNI_ARGS"] = "IgnoreUnknown=1;NUAGE_POLICYGROUPS=" + ",".join(record["policygroups"])
    argv = ["ip", "netns", "exec", lab.host(record["host"]).netns, cni_executable()]
    try:
        proc = subprocess.run(argv, input=json.dumps(record["cni_config"]), capture_output=True, text=True,
                              env=env, timeout=CNI_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise LabError(f"nuage-cni {command} {record['name']}: no answer in {CNI_TIMEOUT:g}s") from None
    try:
        answer = json.loads(proc.stdout) if proc.stdout.strip() else {}
    except ValueError:
        answer = {"msg": proc.stdout.strip()}
    if proc.returncode != 0:
        message = answer.get("msg") or proc.stderr.strip() or f"exit status {proc.returncode}"
        details = f" ({answer['details']})" if answer.get("details") else ""
        raise LabError(f"nuage-cni {command} {record['name']}: {message}{details}")
    return answer


def resolve_subnet(plane: ControlPlane, ref: str) -> list[str]:
    """``[enterprise, domain, zone, subnet]`` names of a subnet reference as nuage-ctl takes it
    (a path such as ``acme/prod/web/front``, a unique name, or an id prefix)."""
    from nuage_ryu.directory.client import CannotConnect
    from nuage_ryu.directory.ctl.resolve import Resolver, UsageError
    from nuage_ryu.directory.errors import DirectoryError

    try:
        resolver = Resolver(plane.client())
        return resolver.path_of("subnet", resolver.resolve("subnet", ref)).split("/")
    except (UsageError, DirectoryError) as exc:
        raise LabError(f"subnet {ref!r}: {exc}") from None
    except (CannotConnect, OSError) as exc:
        raise LabError(f"the lab's directory does not answer ({exc}); see nuage-lab status") from None


def attach(lab: Lab, plane: ControlPlane, host: str, name: str, subnet: str,
           policygroups: list[str] | None = None) -> dict:
    """Make container ``name`` on ``host`` in ``subnet`` (through nuage-cni ADD); its record with ip and mac."""
    if not NAME_RE.match(name) or RESERVED.match(name):
        raise LabError(f"invalid container name {name!r}: 1-15 lower-case letters, digits or '_', starting "
                       "with a letter, and none of the lab's node names (h1.., ctl, ul, rtr, inet)")
    lab_host = lab.host(host)
    path = resolve_subnet(plane, subnet)
    with _locked(lab):
        records = read(lab)
        if name in records:
            raise LabError(f"container {name} already exists (on {records[name]['host']}); "
                           f"nuage-lab detach {name} first")
        record = {"name": name, "host": lab_host.name, "netns": f"{lab.prefix}-c-{name}",
                  "container_id": f"{lab.prefix}-{name}", "ifname": IFNAME,
                  "subnet": "/".join(path), "policygroups": list(policygroups or []),
                  "cni_config": network_config(plane, lab, lab_host.name, path)}
        if netns.exists(record["netns"]):
            raise LabError(f"network namespace {record['netns']} already exists")
        records[name] = record
        _write(lab, records)  # before the namespace: a crash leaves something 'down' can find
        try:
            netns.add(record["netns"])
            result = run_cni(lab, record, "ADD")
        except BaseException:
            _remove(lab, record)
            records.pop(name)
            _write(lab, records)
            raise
        address = (result.get("ips") or [{}])[0].get("address", "")
        interface = next((i for i in result.get("interfaces", []) if i.get("sandbox")), {})
        record.update({"ip": address.split("/")[0], "address": address, "mac": interface.get("mac", "")})
        _write(lab, records)
        return record


def adopt(lab: Lab, name: str, host: str, netns_name: str, address: str = "", subnet: str = "",
          policygroups: list[str] | None = None) -> dict:
    """Record an endpoint made by other means (the demo's VM, bare-metal server, Docker container),
    so that ``exec``, ``status`` and ``down`` know it; it has no CNI configuration, so ``down``
    only ends its processes and deletes its namespace."""
    with _locked(lab):
        records = read(lab)
        record = {"name": name, "host": lab.host(host).name, "netns": netns_name, "container_id": "",
                  "ifname": IFNAME, "subnet": subnet, "policygroups": list(policygroups or []),
                  "cni_config": None, "address": address, "ip": address.split("/")[0], "mac": ""}
        records[name] = record
        _write(lab, records)
        return record


def _remove(lab: Lab, record: dict) -> list[str]:
    """CNI DEL (best effort: the agent may be gone), processes in the namespace, the namespace."""
    removed, errors = [], []
    try:
        if record.get("cni_config"):
            run_cni(lab, record, "DEL")
            removed.append(f"vport of container {record['name']} (CNI DEL)")
    except LabError as exc:
        errors.append(str(exc))
    for pid, command in sorted(netns.processes_in([record["netns"]]).items()):
        with contextlib.suppress(OvsError):
            kill_pid(pid)
        removed.append(f"process {command} {pid} (in container {record['name']})")
    if netns.delete(record["netns"]):
        removed.append(f"netns {record['netns']}")
    removed += [f"warning: {e}" for e in errors]
    return removed


def detach(lab: Lab, name: str) -> list[str]:
    """Remove container ``name`` (CNI DEL, then its namespace); what was removed."""
    with _locked(lab):
        records = read(lab)
        if name not in records:
            known = ", ".join(sorted(records)) or "none"
            raise LabError(f"no container {name!r} in this lab (containers: {known})")
        removed = _remove(lab, records.pop(name))
        _write(lab, records)
        return removed


def detach_all(lab: Lab) -> list[str]:
    """Remove every recorded container (before the agents stop, so DEL still reaches them)."""
    if not os.path.isdir(lab.state_dir):
        return []
    with _locked(lab):
        records = read(lab)
        removed = []
        for name in sorted(records):
            try:
                removed += _remove(lab, records[name])
            except LabError as exc:  # an unknown host in a damaged record: still delete the namespace
                removed.append(f"warning: {exc}")
                if netns.delete(records[name]["netns"]):
                    removed.append(f"netns {records[name]['netns']}")
        _write(lab, {})
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_path(lab, LOCK_FILE))
    return removed


def netns_of(lab: Lab, name: str) -> str | None:
    """The namespace of container ``name`` (for ``nuage-lab exec``), None if there is none."""
    record = read(lab).get(name)
    return record["netns"] if record else None
