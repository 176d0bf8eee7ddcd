"""Least privilege for hosts in the directory database: ovsdb-server RBAC, as OVN's southbound does it.

A host connects to a listener whose ``Connection`` row carries the role ``nuage-host``; over
SSL, ovsdb-server takes the client certificate's common name as the client's identity
(``nuage-ctl pki enroll NAME`` issues CN=NAME). For that role it permits exactly the writes
below — on rows whose authorization column holds the identity — and refuses every other
modification with "permission error": a host can keep its own host row, liveness, counters
and its vports' status, and can change nothing of any tenant's policy.

The directory's own connection (the unix socket, no role) is not restricted. Reads are not
restricted by RBAC (ovsdb-server has no read control); agents ask only for their share
(``nuage_ryu/directory/scope.py``) and the token table holds only hashes.

Listeners with a role cannot be command-line ``--remote`` options: they are rows of
``Connection``, referenced by the singleton ``Directory_Global``, read by ovsdb-server through
``--remote=db:Nuage_Directory,Directory_Global,connections`` (``REMOTE_ARG``).
"""

from __future__ import annotations

import json
import subprocess

DATABASE = "Nuage_Directory"
HOST_ROLE = "nuage-host"
REMOTE_ARG = f"--remote=db:{DATABASE},Directory_Global,connections"
# Tables modelled in nuage_ryu.directory.model are replicated by the store; these are the
# database server's own configuration, written here and read by ovsdb-server only.
CONFIG_TABLES = ("Directory_Global", "Connection", "RBAC_Role", "RBAC_Permission")

# table -> (authorization columns, may insert/delete its own rows, columns it may update)
HOST_PERMISSIONS: dict[str, tuple[tuple[str, ...], bool, tuple[str, ...]]] = {
    "Host": (("name",), True, ("tunnel_ip", "datapath_id", "agent_version", "liveness", "counters")),
    "HostLiveness": (("name",), True, ("connected", "last_seen")),
    "HostCounters": (("host",), True, ("rule_packets", "rule_bytes", "default_packets", "default_bytes")),
    "VPortStatus": (("host",), False, ("status",)),
    # verdict records (docs/policy.md): a host inserts its own and may delete them; never changes one
    "Verdict": (("host",), True, ()),
    "TraceRequest": (("host",), False, ("answer", "state")),  # the directory asks, the host answers
}


class RbacError(Exception):
    """The RBAC configuration could not be written."""


def _set(values) -> list:
    return ["set", list(values)]


def config_operations(listeners: list[str]) -> list[dict]:
    """One transaction that makes the configuration exactly: the host role and ``listeners`` with it."""
    ops: list[dict] = [{"op": "delete", "table": t, "where": []} for t in CONFIG_TABLES]
    ops += _role_inserts()
    conns = []
    for i, target in enumerate(listeners):
        name = f"conn_{i}"
        ops.append({"op": "insert", "table": "Connection", "uuid-name": name,
                    "row": {"target": target, "role": HOST_ROLE, "read_only": False}})
        conns.append(["named-uuid", name])
    ops.append({"op": "insert", "table": "Directory_Global", "row": {"connections": _set(conns)}})
    return ops


def role_operations() -> list[dict]:
    """One transaction that makes the host role exactly as declared, listeners left alone (a Raft
    cluster's database: its members take no listener rows, but relays check the role)."""
    return [*({"op": "delete", "table": t, "where": []} for t in ("RBAC_Role", "RBAC_Permission")),
            *_role_inserts()]


def _role_inserts() -> list[dict]:
    ops: list[dict] = []
    perms = []
    for table, (auth, insert_delete, update) in HOST_PERMISSIONS.items():
        name = f"perm_{table}"
        ops.append({"op": "insert", "table": "RBAC_Permission", "uuid-name": name,
                    "row": {"table": table, "authorization": _set(auth), "insert_delete": insert_delete,
                            "update": _set(update)}})
        perms.append([table, ["named-uuid", name]])
    ops.append({"op": "insert", "table": "RBAC_Role",
                "row": {"name": HOST_ROLE, "permissions": ["map", perms]}})
    return ops


def apply(remote: str, listeners: list[str] | None, timeout: float = 10.0, ssl_args: tuple[str, ...] = ()) -> None:
    """Write the RBAC configuration through ``remote`` (the directory's own, unrestricted socket).

    ``listeners`` None: the role only (``role_operations``); ``ssl_args``: ovsdb-client's
    --private-key/--certificate/--ca-cert for ssl: remotes."""
    ops = role_operations() if listeners is None else config_operations(listeners)
    txn = json.dumps([DATABASE, *ops])
    try:
        out = subprocess.run(["ovsdb-client", f"--timeout={int(timeout)}", *ssl_args, "transact", remote, txn],
                             capture_output=True, text=True, timeout=timeout + 5)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RbacError(f"cannot write the RBAC configuration: {exc}") from None
    if out.returncode != 0 or '"error"' in out.stdout:
        raise RbacError(f"RBAC configuration refused: {(out.stdout + out.stderr).strip()[:500]}")


# ---------------------------------------------------------------------------
# Behind relays. A relay (relay.py) checks RBAC itself: ovsdb-server composes a client's
# transaction on its own copy with the client's role and identity (the RBAC tables above come
# with the copy) and forwards only what passes, over its unrestricted connection to the source.
# But a relay's copy of Directory_Global lists the *primary's* listeners: a relay reading them
# would try to bind the primary's addresses. So a relay keeps its own listeners, with the host
# role, in a small database of its own (nuage_relay.ovsschema, one file per relay), served by the
# same ovsdb-server process beside the relayed database.

RELAY_CONFIG_DATABASE = "Nuage_Relay"
RELAY_REMOTE_ARG = f"--remote=db:{RELAY_CONFIG_DATABASE},Relay_Global,connections"


def relay_config_operations(listeners: list[str]) -> list[dict]:
    """One transaction of the relay's own database: exactly ``listeners``, each with the host role."""
    ops: list[dict] = [{"op": "delete", "table": t, "where": []} for t in ("Relay_Global", "Connection")]
    for i, target in enumerate(listeners):
        ops.append({"op": "insert", "table": "Connection", "uuid-name": f"conn_{i}",
                    "row": {"target": target, "role": HOST_ROLE, "read_only": False}})
    ops.append({"op": "insert", "table": "Relay_Global",
                "row": {"connections": _set(["named-uuid", f"conn_{i}"] for i in range(len(listeners)))}})
    return ops
