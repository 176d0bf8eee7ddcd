"""Configuration options (oslo.config), declared once.

Every option of DESIGN.md section 5 lives here. ``register_opts`` puts them on
a ConfigOpts object (the framework's shared CONF in the launcher, a private
one in tests). ``check_config_files`` turns oslo.config's silent acceptance of
unknown options into a clear error, because a typo in an INI file should never
be silently ignored on a network controller.
"""

from __future__ import annotations

import configparser
import os

from oslo_config import cfg

DEFAULT_STATE_DIR = "/var/lib/nuage-ryu"
DEFAULT_AGENT_SOCKET = "/run/nuage-ryu/agent.sock"

ROLE_APPS = {
    "directory": ["nuage_ryu.apps.directory_api"],
    "vrs": ["nuage_ryu.apps.vrs_agent", "nuage_ryu.apps.vrs_dhcp", "nuage_ryu.apps.vrs_verdicts"],
    "all": ["nuage_ryu.apps.directory_api", "nuage_ryu.apps.vrs_agent", "nuage_ryu.apps.vrs_dhcp",
            "nuage_ryu.apps.vrs_verdicts"],
    "monitor": ["nuage_ryu.apps.datapath_monitor"],
}

DEFAULT_OPTS = [
    cfg.StrOpt("state-dir", default=DEFAULT_STATE_DIR,
               help="Directory for databases, sockets, tokens and logs of this node."),
    cfg.StrOpt("role", default="all", choices=sorted(ROLE_APPS),
               help="Which standard set of apps nuage-ryu-manager runs when no app is named."),
]

DIRECTORY_OPTS = [
    cfg.StrOpt("connection", default="",
               help="OVSDB remote(s) of the directory database, comma separated "
                    "(e.g. 'tcp:10.0.0.1:6641,tcp:10.0.0.2:6641' for a Raft cluster). "
                    "Empty: start an embedded ovsdb-server under state_dir."),
    cfg.StrOpt("listen", default="",
               help="Extra OVSDB listener of the embedded directory database for agents "
                    "on other machines, e.g. 'ptcp:6641:0.0.0.0' or 'pssl:6641'."),
    cfg.StrOpt("host_listen", default="",
               help="Listener(s) of the embedded directory database for VRS agents, comma separated, "
                    "pssl: only (e.g. 'pssl:6641:192.0.2.10'): each host's certificate is its identity "
                    "there, and ovsdb-server RBAC lets it write only its own host, liveness, counters and "
                    "vport status rows (see docs/security.md). Needs [tls]."),
    cfg.StrOpt("api_host", default="127.0.0.1", help="Address the REST API listens on."),
    cfg.PortOpt("api_port", default=8080, help="TCP port of the REST API."),
    cfg.StrOpt("api_socket", default="",
               help="Also (or, with api_port 0, only) serve the REST API on this unix socket."),
    cfg.FloatOpt("api_header_timeout", default=10.0, min=0.1,
                 help="Seconds a client has to send a request line and headers, in total; past it: 408 and "
                      "the connection is closed (a half-sent request holds no worker meanwhile)."),
    cfg.FloatOpt("api_body_timeout", default=30.0, min=0.1,
                 help="Seconds a client has to send a request body, in total, after the headers; past it: "
                      "JSON 408 request_timeout. A slow body holds one worker for at most this long."),
    cfg.IntOpt("api_max_connections", default=1024, min=1,
               help="Connections the REST API keeps open at once (idle ones included); one more is closed "
                    "at accept, the open ones are still served."),
    cfg.StrOpt("api_token_file", default="",
               help="File with the admin bearer token; default <state_dir>/api-token, "
                    "created with mode 0600 if missing."),
    cfg.StrOpt("floating_ip_pool", default="",
               help="External addresses vports may get as floating IPs (1:1 NAT on their host), as CIDRs "
                    "separated by commas, e.g. '198.51.100.0/24'. Empty: no floating IPs (docs/external.md)."),
    cfg.IntOpt("verdict_retention", default=10000, min=100, max=100000,
               help="Verdict records the directory keeps for GET /api/v1/verdicts and 'nuage-ctl flows' "
                    "(the newest ones; older are deleted). Each host's agent log keeps them all (docs/policy.md)."),
    cfg.IntOpt("verdict_waiters", default=8, min=0, max=64,
               help="Long-polls of GET /api/v1/verdicts that may wait at the same time; more are answered at "
                    "once (Retry-After), so that followers never hold every REST worker."),
]

VRS_OPTS = [
    cfg.StrOpt("host_name", default="", help="Name of this host in the directory; default: hostname."),
    cfg.StrOpt("tunnel_ip", default="", help="Local VXLAN tunnel endpoint address."),
    cfg.StrOpt("ovsdb_connection", default="unix:/var/run/openvswitch/db.sock",
               help="OVSDB remote of the local Open_vSwitch database."),
    cfg.StrOpt("bridge", default="br-int", help="Integration bridge name."),
    cfg.StrOpt("datapath_type", default="system", choices=["system", "netdev"],
               help="'system' (kernel datapath) or 'netdev' (userspace datapath)."),
    cfg.ListOpt("controller", default=["tcp:127.0.0.1:6653"],
                help="OpenFlow controller target(s) set on the integration bridge."),
    cfg.StrOpt("directory_connection", default="",
               help="OVSDB remote(s) of the directory database; default: the embedded "
                    "directory's unix socket under state_dir."),
    cfg.StrOpt("agent_socket", default=DEFAULT_AGENT_SOCKET,
               help="Unix socket of the local agent API that the CNI and Docker plugins call; "
                    "empty disables it."),
    cfg.StrOpt("directory_api", default="http://127.0.0.1:8080",
               help="REST API of the directory (http://HOST:PORT or unix:/path), used by the "
                    "agent API to create and delete vports (IPAM) on behalf of the plugins."),
    cfg.StrOpt("directory_token_file", default="",
               help="Bearer token for directory_api: this host's own token (written by 'nuage-ctl host "
                    "enroll HOST' as HOST-token; it may read the directory and write only this host's vports). "
                    "Default: the directory's api_token_file (the admin token; only for a node that runs the "
                    "directory too)."),
    cfg.MultiStrOpt("managed_hosts", default=[],
                    help="Central mode: program these hosts' bridges instead of the local one; each "
                         "value 'HOST_NAME TUNNEL_IP OVSDB_REMOTE' (repeat the option per host)."),
    cfg.FloatOpt("stats_interval", default=5.0, min=0.2,
                 help="Seconds between two reads of the policy counters from the bridge."),
    cfg.StrOpt("metrics_listen", default="127.0.0.1:9100",
               help="HOST:PORT of the agent's Prometheus /metrics endpoint; empty disables it."),
    cfg.IntOpt("underlay_mtu", default=1500, min=1280,
               help="MTU of the underlay; container interfaces get this minus 50 (VXLAN)."),
    cfg.StrOpt("external_bridge", default="br-phy",
               help="The physical bridge that carries tunnel_ip and the uplink: external connectivity "
                    "(egress NAT, floating IPs, published ports) goes through a patch to it and its "
                    "management socket next to the OVSDB socket. Empty disables (docs/external.md)."),
    cfg.StrOpt("nat_port_range", default="61000-65535",
               help="Source ports of egress NAT on the host's address, FIRST-LAST; keep it outside "
                    "net.ipv4.ip_local_port_range so NAT never takes a port of the host's own connections."),
    cfg.IntOpt("verdict_log_rate", default=100, min=1, max=1000000,
               help="Packets per second the bridge's verdict-log meter lets through to the agent (logged "
                    "rules, audit rules, log_default); copies beyond it are dropped in the datapath and "
                    "counted (nuage_verdict_meter_dropped_packets_total). Forwarding is never metered."),
    cfg.IntOpt("verdict_log_burst", default=0, min=0, max=1000000,
               help="Burst size of the verdict-log meter, in packets; 0 = verdict_log_rate."),
    cfg.IntOpt("verdict_export_rate", default=50, min=0, max=10000,
               help="Verdict records per second this agent sends to the directory (for nuage-ctl flows); "
                    "the rest are only in the agent's log. 0: none."),
]

TLS_OPTS = [
    cfg.StrOpt("key_file", default="",
               help="PEM private key of this node's identity (issued by 'nuage-ctl pki issue' or "
                    "'nuage-ctl host enroll'). With cert_file and ca_file set, everything this process "
                    "serves or connects to over TCP uses TLS: the REST API (HTTPS), the directory "
                    "database (pssl:/ssl: remotes), OpenFlow between br-int and the agent."),
    cfg.StrOpt("cert_file", default="", help="PEM certificate of key_file; its CN is the identity."),
    cfg.StrOpt("ca_file", default="", help="PEM certificate of the CA that peers' certificates must chain to."),
]

GROUPS = {
    "DEFAULT": DEFAULT_OPTS,
    "directory": DIRECTORY_OPTS,
    "vrs": VRS_OPTS,
    "tls": TLS_OPTS,
}


class ConfigError(Exception):
    """A configuration file or option is invalid."""


def register_opts(conf: cfg.ConfigOpts) -> cfg.ConfigOpts:
    """Register every nuage-ryu option on ``conf`` (idempotent).

    The [DEFAULT] options are also command-line options (``--state-dir``,
    ``--role``); must be called before ``conf`` parses its arguments.
    """
    for group, opts in GROUPS.items():
        if group == "DEFAULT":
            conf.register_cli_opts(opts)
        else:
            conf.register_opts(opts, group=group)
    return conf


def known_options(conf: cfg.ConfigOpts) -> dict[str, set[str]]:
    """Map of section name -> option names registered on ``conf``."""
    known: dict[str, set[str]] = {"DEFAULT": set()}
    for name in conf:  # iterating a ConfigOpts yields option names and group names
        if isinstance(getattr(conf, name, None), cfg.ConfigOpts.GroupAttr):
            known[name] = set(conf[name])
        else:
            known["DEFAULT"].add(name)
    return known


def check_config_files(conf: cfg.ConfigOpts, paths: list[str]) -> None:
    """Raise ConfigError naming the first unknown section or option in ``paths``."""
    known = known_options(conf)
    for path in paths:
        if not os.path.exists(path):
            raise ConfigError(f"config file {path} does not exist")
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            parser.read(path)
        except configparser.Error as exc:
            raise ConfigError(f"{path}: {exc.message.splitlines()[0]}") from None
        sections = [("DEFAULT", parser.defaults().keys())]
        sections += [(s, [k for k in parser[s] if k not in parser.defaults()]) for s in parser.sections()]
        for section, keys in sections:
            if section not in known:
                raise ConfigError(f"{path}: unknown section [{section}]")
            for key in keys:
                if key.replace("-", "_") not in known[section]:
                    raise ConfigError(f"{path}: unknown option '{key}' in section [{section}]")


def state_path(conf: cfg.ConfigOpts, *parts: str) -> str:
    """A path under the configured state_dir."""
    return os.path.join(conf.state_dir, *parts)


def api_token_file(conf: cfg.ConfigOpts) -> str:
    return conf.directory.api_token_file or state_path(conf, "api-token")


def directory_socket(conf: cfg.ConfigOpts) -> str:
    """Unix socket path of the embedded directory database."""
    return state_path(conf, "directory", "db.sock")


def parse_managed_host(entry: str) -> tuple[str, str, str]:
    """'HOST_NAME TUNNEL_IP OVSDB_REMOTE' -> the three parts; ConfigError when malformed."""
    parts = entry.split()
    if len(parts) != 3:
        raise ConfigError(f"[vrs] managed_hosts entry {entry!r}: expected 'HOST_NAME TUNNEL_IP OVSDB_REMOTE'")
    return parts[0], parts[1], parts[2]


def directory_token_file(conf: cfg.ConfigOpts) -> str:
    """Token file the VRS agent uses for the directory REST API."""
    return conf.vrs.directory_token_file or api_token_file(conf)


def tls_credentials(conf: cfg.ConfigOpts):
    """The [tls] identity (a ``pki.Credentials``), None when [tls] is not configured.

    All three files or none: a half-configured [tls] is a ConfigError, never a silent
    fall-back to plain TCP.
    """
    files = {name: getattr(conf.tls, name) for name in ("key_file", "cert_file", "ca_file")}
    given = [name for name, path in files.items() if path]
    if not given:
        return None
    if len(given) != len(files):
        missing = ", ".join(sorted(set(files) - set(given)))
        raise ConfigError(f"[tls] needs key_file, cert_file and ca_file together; missing: {missing}")
    for name, path in files.items():
        if not os.access(path, os.R_OK):
            raise ConfigError(f"[tls] {name} {path} is not readable")
    from nuage_ryu.pki import Credentials  # config stays importable without the cryptography library

    return Credentials(files["key_file"], files["cert_file"], files["ca_file"])


def directory_remote(conf: cfg.ConfigOpts) -> str:
    """OVSDB remote(s) the VRS agent uses to follow the directory."""
    return conf.vrs.directory_connection or conf.directory.connection or "unix:" + directory_socket(conf)
