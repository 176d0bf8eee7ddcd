"""What a host token may do on the REST API: the attach service's needs, nothing more.

A host token (``POST /tokens {"host": NAME}``, ``nuage-ctl host enroll NAME``) is what a host's
attach service holds instead of the admin token. It may read the directory (every enterprise:
a host carries vports of any tenant; never the tokens), and create, change and delete only the
vports whose ``host`` is its own -- also inside ``POST /bulk``, where one operation outside that
fails the whole request. Everything else is 403: no enterprise, domain, zone, subnet, policy
group, ACL, host or token write, no membership routes. Pure checks, no I/O; the API calls them
(``api.py``) before planning, so a refused request changes nothing.
"""

from __future__ import annotations

from nuage_ryu.directory.errors import Forbidden
from nuage_ryu.directory.model import DirectoryState

READ_HANDLERS = frozenset(("list", "show", "members"))
VPORT_WRITES = frozenset(("create", "update", "delete"))


def check_route(host: str, handler: str, kind: str | None) -> None:
    """Refuse (403) a route a host token may never use, before its body is read."""
    if handler in READ_HANDLERS and kind != "token":
        return
    if handler == "bulk" or (handler in VPORT_WRITES and kind == "vport"):
        return  # each vport is checked by check_vport_write
    if kind == "token":
        raise Forbidden(f"host token of {host!r}: tokens are managed with the admin token only")
    raise Forbidden(f"host token of {host!r}: may only read the directory and create, change or delete "
                    f"vports on host {host!r}")


def check_vport_write(host: str, state: DirectoryState, action: str, kind: str, vport_id: str | None,
                      body) -> None:
    """Refuse (403) a write that is not a create/update/delete of a vport on ``host``.

    ``vport_id``: the vport changed or deleted (None for a create); ``body``: the request body
    (a create must name ``host``; an update may not move the vport to another host).
    """
    if kind != "vport" or action not in VPORT_WRITES:
        raise Forbidden(f"host token of {host!r}: may not {action} {kind}s (only vports on host {host!r})")
    if vport_id is not None:
        vport = state.vports.get(vport_id)
        if vport is not None and vport.host != host:
            raise Forbidden(f"host token of {host!r}: vport {vport_id} is on host {vport.host or '(none)'!r}, "
                            "not its own")
    if action == "delete":
        return
    wanted = body.get("host") if isinstance(body, dict) else None
    if action == "create" and wanted != host:
        raise Forbidden(f"host token of {host!r}: a vport it creates must have \"host\": {host!r} "
                        f"(got {wanted!r})")
    if action == "update" and wanted is not None and wanted != host:
        raise Forbidden(f"host token of {host!r}: may not move a vport to host {wanted!r}")
