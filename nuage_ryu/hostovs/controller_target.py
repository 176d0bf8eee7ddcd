"""Two spellings of one OpenFlow controller target, so that ovs-vswitchd can be made to start afresh.

Why: ovs-vswitchd 3.1 creates an active controller connection with a fixed 8 s maximum back-off
(``ofproto/connmgr.c``: ``rconn_create(5, 8, ...)``) and applies the row's ``max_backoff`` only to
a live connection. A br-int whose target it has retried for a while (created by an installer or
``nuage-lab up`` long before the agent, or after ovs-vswitchd restarted) is tried only every 8 s,
so a starting agent waited up to 8 s for its switch. ovs-vswitchd keeps a connection per target
*string*: a row whose target is spelt differently but names the same endpoint makes it create a
new connection, which tries at once, and drop the old one, in the same reconfiguration. Since
the bridge has a controller before and after, it does not flush the bridge's flows
(``connmgr_set_controllers`` flushes only when a bridge gains its first or loses its last
controller). docs/scale.md "Agent start-up".

Spellings: ``tcp:``/``ssl:`` targets take their port with a leading zero (``tcp:127.0.0.1:06653``),
``unix:`` targets a ``/./`` before the file name. ``canonical`` undoes either.
"""

from __future__ import annotations

ACTIVE_PORT_TYPES = ("tcp", "ssl")


def canonical(target: str) -> str:
    """The plain spelling of ``target`` (unchanged when it already is, or is of another kind)."""
    kind, _, rest = target.partition(":")
    if kind in ACTIVE_PORT_TYPES:
        host, sep, port = rest.rpartition(":")
        if sep and host and port.isdigit() and port.startswith("0") and port.strip("0"):
            return f"{kind}:{host}:{port.lstrip('0')}"
        return target
    if kind == "unix":
        return "unix:" + rest.replace("/./", "/")
    return target


def respelled(target: str) -> str | None:
    """The other spelling of ``target`` (same endpoint, another string), or None for a target
    whose kind has no second spelling here (e.g. a passive ``ptcp:``)."""
    plain = canonical(target)
    if plain != target:
        return plain
    kind, _, rest = target.partition(":")
    if kind in ACTIVE_PORT_TYPES:
        host, sep, port = rest.rpartition(":")
        if sep and host and port.isdigit():
            return f"{kind}:{host}:0{port}"
        return None
    if kind == "unix" and "/" in rest:
        folder, _, name = rest.rpartition("/")
        return f"unix:{folder}/./{name}"
    return None
