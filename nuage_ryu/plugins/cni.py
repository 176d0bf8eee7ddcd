"""nuage-cni: the CNI plugin (spec 1.0/1.1; ADD, DEL, CHECK, VERSION, GC, STATUS).

A thin client: every operation is one call to the host's nuage agent over its
unix socket (docs/agent-api.md), which does the veth, namespace, OVSDB and
directory work. Standard library only, and only its cheapest parts (lean.py), so that a
CNI call starts fast; ``python -m nuage_ryu.plugins.launcher`` writes the ``-I -S``
entry point that runs it without ``site`` (docs/cni.md, "Start-up").

Network configuration (stdin)::

    {"cniVersion": "1.0.0", "name": "nuage", "type": "nuage-cni",
     "agent_socket": "/run/nuage-ryu/agent.sock",          # optional
     "enterprise": "acme", "domain": "prod", "zone": "web", "subnet": "web-net",
     "policygroups": ["web"]}                                # optional

Per-container policy groups: ``CNI_ARGS=NUAGE_POLICYGROUPS=a,b`` or
``runtimeConfig: {"policygroups": [...]}`` (capability ``policygroups``); they
replace the network's list. Published ports: ``runtimeConfig: {"portMappings": [{"hostPort",
"containerPort", "protocol", "hostIP"}]}`` (capability ``portMappings``), stored with the vport, so
DEL (which deletes it) leaves nothing behind (docs/external.md).
"""

from __future__ import annotations

import os
import stat
import sys

from nuage_ryu import __version__
from nuage_ryu.plugins import lean
from nuage_ryu.plugins.agent_client import DEFAULT_AGENT_SOCKET, AgentClient, AgentError, AgentUnavailable

SUPPORTED_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
LATEST = "1.1.0"
COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "GC", "STATUS")

# Error codes of the CNI spec, and ours (100+).
ERR_INCOMPATIBLE_VERSION = 1
ERR_UNSUPPORTED_FIELD = 2
ERR_UNKNOWN_CONTAINER = 3
ERR_INVALID_ENV = 4
ERR_IO = 5
ERR_DECODE = 6
ERR_INVALID_CONFIG = 7
ERR_TRY_AGAIN = 11
ERR_NOT_AVAILABLE = 50
ERR_ATTACH_FAILED = 100
ERR_CHECK_FAILED = 101
ERR_CONFLICT = 102

NETWORK_KEYS = ("enterprise", "domain", "zone", "subnet")
# Same rules as the agent's (nuage_ryu.agent.attach: request.py, links.py), repeated to keep this module light.
# Plain character sets, not regular expressions: importing ``re`` costs more than this
# whole plugin's work (the runtime starts a process per call).
_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_CONTAINER_ID_CHARS = _ALNUM | frozenset("_.-")
_IFNAME_CHARS = _ALNUM | frozenset("_.:@-")


def valid_container_id(value: str) -> bool:
    """``[A-Za-z0-9][A-Za-z0-9_.-]{0,127}``."""
    return 1 <= len(value) <= 128 and value[0] in _ALNUM and set(value) <= _CONTAINER_ID_CHARS


def valid_ifname(value: str) -> bool:
    """``[A-Za-z0-9_.:@-]{1,15}``, not ``.`` or ``..``."""
    return 1 <= len(value) <= 15 and set(value) <= _IFNAME_CHARS and value not in (".", "..")


class CniError(Exception):
    def __init__(self, code: int, msg: str, details: str = ""):
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def parse_cni_args(raw: str) -> dict[str, str]:
    """``K1=V1;K2=V2`` -> dict; a malformed pair is an invalid environment."""
    result = {}
    for pair in filter(None, (raw or "").split(";")):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CniError(ERR_INVALID_ENV, f"CNI_ARGS: malformed pair {pair!r} (expected KEY=VALUE)")
        result[key] = value
    return result


def _names(value, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",")]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CniError(ERR_INVALID_CONFIG, f"{where} must be a list of policy group names")
    return [v for v in value if v]


def load_config(raw: bytes | str) -> dict:
    """Decode and validate the network configuration from stdin."""
    try:
        conf = lean.loads(raw or b"")
    except ValueError as exc:
        raise CniError(ERR_DECODE, "network configuration on stdin is not valid JSON", str(exc)) from None
    if not isinstance(conf, dict):
        raise CniError(ERR_DECODE, "network configuration on stdin must be a JSON object")
    version = conf.get("cniVersion")
    if not isinstance(version, str) or not version:
        raise CniError(ERR_INVALID_CONFIG, "network configuration lacks cniVersion")
    if version not in SUPPORTED_VERSIONS:
        raise CniError(ERR_INCOMPATIBLE_VERSION, f"cniVersion {version} is not supported",
                       f"supported versions: {', '.join(SUPPORTED_VERSIONS)}")
    return conf


def network_of(conf: dict) -> dict:
    """The enterprise/domain/zone/subnet of the config, validated."""
    net = {}
    for key in NETWORK_KEYS:
        value = conf.get(key, "")
        if not isinstance(value, str):
            raise CniError(ERR_INVALID_CONFIG, f"network configuration key {key!r} must be a string")
        net[key] = value.strip()
    if not net["subnet"]:
        raise CniError(ERR_INVALID_CONFIG, "network configuration lacks 'subnet' (a subnet name or id)")
    missing = [k for k in ("enterprise", "domain", "zone") if not net[k]]
    if missing and not _looks_like_id(net["subnet"]):
        raise CniError(ERR_INVALID_CONFIG,
                       f"network configuration lacks {', '.join(repr(m) for m in missing)} "
                       "(needed unless 'subnet' is a subnet id)")
    agent_socket = conf.get("agent_socket", DEFAULT_AGENT_SOCKET)
    if not isinstance(agent_socket, str) or not agent_socket.startswith("/"):
        raise CniError(ERR_INVALID_CONFIG, "agent_socket must be an absolute path")
    return net


def network_name(conf: dict) -> str:
    """The config's network ``name`` (required by the spec): GC is scoped to it."""
    name = conf.get("name")
    if not isinstance(name, str) or not name:
        raise CniError(ERR_INVALID_CONFIG, "network configuration lacks 'name'")
    return name


def _looks_like_id(value: str) -> bool:
    return len(value) == 36 and value.count("-") == 4


def policygroups_of(conf: dict, cni_args: dict[str, str]) -> list[str]:
    """Per-container groups (CNI_ARGS, then runtimeConfig) replace the network's list."""
    if "NUAGE_POLICYGROUPS" in cni_args:
        return _names(cni_args["NUAGE_POLICYGROUPS"], "CNI_ARGS NUAGE_POLICYGROUPS")
    runtime = conf.get("runtimeConfig")
    runtime = {} if runtime is None else runtime
    if not isinstance(runtime, dict):
        raise CniError(ERR_INVALID_CONFIG, "runtimeConfig must be an object")
    for key in ("policygroups", "policyGroups"):
        if key in runtime:
            return _names(runtime[key], f"runtimeConfig.{key}")
    return _names(conf.get("policygroups"), "policygroups")


ALL_ADDRESSES = ("", "0.0.0.0", "::")


def port_mappings_of(conf: dict) -> list[dict]:
    """``runtimeConfig.portMappings`` (capability ``portMappings``: containerd, CRI-O, Kubernetes
    hostPort) -> the vport's ``port_mappings`` (docs/external.md). One entry per protocol + host port
    (runtimes list a mapping once per address family); a hostIP other than "all" is refused."""
    runtime = conf.get("runtimeConfig") or {}
    if not isinstance(runtime, dict):
        raise CniError(ERR_INVALID_CONFIG, "runtimeConfig must be an object")
    entries = runtime.get("portMappings") or []
    if not isinstance(entries, list):
        raise CniError(ERR_INVALID_CONFIG, "runtimeConfig.portMappings must be a list")
    out: dict[tuple[str, int], dict] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise CniError(ERR_INVALID_CONFIG, "runtimeConfig.portMappings entries must be objects")
        host_port, port = entry.get("hostPort"), entry.get("containerPort")
        protocol = str(entry.get("protocol") or "tcp").lower()
        if not all(isinstance(p, int) and not isinstance(p, bool) for p in (host_port, port)):
            raise CniError(ERR_INVALID_CONFIG, f"port mapping {entry}: hostPort and containerPort must be integers")
        if (entry.get("hostIP") or "") not in ALL_ADDRESSES:
            raise CniError(ERR_INVALID_CONFIG, f"port mapping {entry}: ports are published on the host's "
                                               "underlay address; hostIP must be empty")
        out[(protocol, host_port)] = {"protocol": protocol, "host_port": host_port, "container_port": port}
    return [out[key] for key in sorted(out)]


def build_result(version: str, att: dict) -> dict:
    """The CNI result for an attachment, in the format of ``version``."""
    host_if = {"name": att["host_ifname"], "mac": att.get("host_mac", "")}
    cont_if = {"name": att["ifname"], "mac": att["mac"], "sandbox": att["netns"]}
    if _version_tuple(version) >= (1, 1, 0):
        host_if["mtu"] = cont_if["mtu"] = att.get("mtu", 0)
    ip = {"address": att["address"], "gateway": att["gateway"], "interface": 1}
    if _version_tuple(version) < (1, 0, 0):
        ip["version"] = "4"
    result = {"cniVersion": version, "interfaces": [host_if, cont_if], "ips": [ip],
              "routes": [{"dst": "0.0.0.0/0", "gw": att["gateway"]}] if att.get("gateway") else []}
    dns = att.get("dns") or {}
    result["dns"] = {k: v for k, v in dns.items() if k in ("nameservers", "domain", "search", "options")}
    return result


def _agent_error(exc: AgentError, what: str) -> CniError:
    if isinstance(exc, AgentUnavailable) or exc.code in ("unavailable", "timeout"):
        return CniError(ERR_TRY_AGAIN, f"{what}: {exc.message}", "temporary; the runtime should retry")
    if exc.code in ("not_found", "invalid"):
        return CniError(ERR_INVALID_CONFIG, f"{what}: {exc.message}",
                        "check enterprise/domain/zone/subnet/policygroups in the network configuration")
    if exc.code == "conflict":
        return CniError(ERR_CONFLICT, f"{what}: {exc.message}")
    if exc.code == "check_failed":
        return CniError(ERR_CHECK_FAILED, f"{what}: {exc.message}")
    return CniError(ERR_ATTACH_FAILED, f"{what}: {exc.message}")


def _require_env(env: dict, *names: str) -> list[str]:
    values = []
    for name in names:
        value = env.get(name, "")
        if not value:
            raise CniError(ERR_INVALID_ENV, f"environment variable {name} is not set")
        values.append(value)
    return values


def requested_version(stdin: bytes) -> str:
    """The ``cniVersion`` of the configuration on stdin when it is one we speak, else the latest."""
    try:
        requested = lean.loads(stdin or b"{}").get("cniVersion")
    except (ValueError, AttributeError):
        return LATEST
    return requested if requested in SUPPORTED_VERSIONS else LATEST


def run(env: dict, stdin: bytes, agent_for=AgentClient) -> dict | None:
    """Execute one CNI command; returns the JSON result (None: no output) or raises CniError.

    ``agent_for(socket_path)``: the agent client to use (the agent's own ``/v1/cni`` hands in
    one that calls it in-process)."""
    command = env.get("CNI_COMMAND", "")
    if command not in COMMANDS:
        raise CniError(ERR_INVALID_ENV, f"CNI_COMMAND must be one of {', '.join(COMMANDS)}, "
                                        f"not {command!r}")
    if command == "VERSION":
        return {"cniVersion": requested_version(stdin), "supportedVersions": SUPPORTED_VERSIONS}
    conf = load_config(stdin)
    version = conf["cniVersion"]
    agent = agent_for(conf.get("agent_socket") or DEFAULT_AGENT_SOCKET)
    if command in ("GC", "STATUS") and _version_tuple(version) < (1, 1, 0):
        raise CniError(ERR_INCOMPATIBLE_VERSION, f"{command} needs cniVersion 1.1.0, config has {version}")
    if command == "CHECK" and _version_tuple(version) < (0, 4, 0):
        raise CniError(ERR_INCOMPATIBLE_VERSION,
                       f"CHECK needs cniVersion 0.4.0 or later, config has {version}")
    if command == "STATUS":
        network_of(conf)
        try:
            status = agent.status()
        except AgentError as exc:
            raise CniError(ERR_NOT_AVAILABLE, f"nuage agent not available: {exc.message}") from None
        if not status.get("ready"):
            raise CniError(ERR_NOT_AVAILABLE,
                           "nuage agent not ready: " + "; ".join(status.get("problems", [])))
        return None
    if command == "GC":
        valid = conf.get("cni.dev/valid-attachments", [])
        if not isinstance(valid, list) or not all(
                isinstance(v, dict) and isinstance(v.get("containerID"), str)
                and isinstance(v.get("ifname"), str) for v in valid):
            raise CniError(ERR_INVALID_CONFIG, "cni.dev/valid-attachments must be a list of "
                                               "{containerID, ifname}")
        try:
            agent.gc([{"container_id": v["containerID"], "ifname": v["ifname"]} for v in valid], "cni",
                     network_name(conf))
        except AgentError as exc:
            raise _agent_error(exc, "GC") from None
        return None
    container_id, ifname = _require_env(env, "CNI_CONTAINERID", "CNI_IFNAME")
    if not valid_container_id(container_id):
        raise CniError(ERR_INVALID_ENV, f"CNI_CONTAINERID {container_id!r} is not a valid container id")
    if not valid_ifname(ifname):
        raise CniError(ERR_INVALID_ENV, f"CNI_IFNAME {ifname!r} is not a valid interface name "
                                        "(1-15 characters)")
    cni_args = parse_cni_args(env.get("CNI_ARGS", ""))
    if command == "DEL":
        try:
            agent.detach(container_id, ifname)
        except AgentError as exc:
            if exc.code == "invalid":
                raise CniError(ERR_INVALID_ENV, f"DEL: {exc.message}") from None
            raise _agent_error(exc, "DEL") from None
        return None
    net = network_of(conf)
    (netns,) = _require_env(env, "CNI_NETNS")
    if not os.path.exists(netns):
        raise CniError(ERR_UNKNOWN_CONTAINER, f"network namespace {netns} does not exist")
    if not stat.S_ISREG(os.stat(netns).st_mode):  # a FIFO, a device, a folder: never opened here
        raise CniError(ERR_INVALID_ENV, f"CNI_NETNS {netns} is not a network namespace")
    groups = policygroups_of(conf, cni_args)
    if command == "ADD":
        published = port_mappings_of(conf)
        extra = {"port_mappings": published} if published else {}
        try:
            att = agent.attach(container_id=container_id, ifname=ifname, netns=netns,
                               policygroups=groups, owner="cni", network=network_name(conf), **net, **extra)
        except AgentError as exc:
            raise _agent_error(exc, "ADD") from None
        return build_result(version, att)
    # CHECK
    prev = conf.get("prevResult")
    if not isinstance(prev, dict):
        raise CniError(ERR_INVALID_CONFIG, "CHECK needs prevResult in the network configuration")
    try:
        att = agent.check(container_id, ifname, netns)
    except AgentError as exc:
        raise _agent_error(exc, "CHECK") from None
    prev_ips = sorted(ip.get("address") for ip in prev.get("ips", []) if isinstance(ip, dict))
    if prev_ips != [att["address"]]:
        raise CniError(ERR_CHECK_FAILED, f"CHECK: prevResult ips {prev_ips} differ from the attachment's "
                                         f"{att['address']}")
    return None


def execute(env: dict, stdin: bytes, agent_for=AgentClient) -> tuple[str, int]:
    """One CNI call: (what goes to stdout, the exit status). ``main`` and the agent's
    ``/v1/cni`` (the compiled fast path, cni_fast.c) both run it."""
    version = LATEST
    try:
        version = requested_version(stdin)
        result = run(env, stdin, agent_for)
    except CniError as exc:
        error = {"cniVersion": version, "code": exc.code, "msg": exc.msg}
        if exc.details:
            error["details"] = exc.details
        return lean.dumps(error) + "\n", 1
    except Exception as exc:  # a bug must still produce a CNI error, never a traceback only
        return lean.dumps({"cniVersion": version, "code": ERR_ATTACH_FAILED,
                           "msg": f"internal error: {type(exc).__name__}: {exc}"}) + "\n", 1
    return ("" if result is None else lean.dumps(result) + "\n"), 0


def main(argv: list[str] | None = None) -> int:
    """The executable: CNI_* environment and stdin in, the result (or a CNI error) on stdout.
    ``nuage-cni --version`` (no CNI environment) prints nuage-ryu's version for a person."""
    if (sys.argv[1:] if argv is None else argv)[:1] == ["--version"]:
        sys.stdout.write(f"nuage-cni {__version__} (CNI spec versions {', '.join(SUPPORTED_VERSIONS)})\n")
        return 0
    env = dict(os.environ)
    try:
        stdin = sys.stdin.buffer.read() if env.get("CNI_COMMAND") != "VERSION" or not sys.stdin.isatty() \
            else b""
    except Exception as exc:  # noqa: BLE001 - reported as a CNI error like any other failure
        sys.stdout.write(lean.dumps({"cniVersion": LATEST, "code": ERR_ATTACH_FAILED,
                                     "msg": f"internal error: {type(exc).__name__}: {exc}"}) + "\n")
        return 1
    out, code = execute(env, stdin)
    sys.stdout.write(out)
    return code


if __name__ == "__main__":
    sys.exit(main())
