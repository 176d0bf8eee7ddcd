"""API errors in the words of the command line.

The API speaks REST (``?cascade=true``, field ``dst_ports``); a nuage-ctl user typed options
(``--cascade``, ``--ports``). The message is rewritten, the status and code are kept.
"""

from __future__ import annotations

import re

from nuage_ryu.directory.errors import DirectoryError

# API field -> the option that sets it, where the two differ.
FIELD_FLAGS = {
    "dst_ports": "--ports",
    "icmp_type": "--icmp-type",
    "icmp_code": "--icmp-code",
    "default_action": "--default-action",
    "router_mac": "--router-mac",
    "tunnel_ip": "--tunnel-ip",
    "datapath_id": "--datapath-id",
    "external_ids": "--external-id",
    "policygroups": "--policygroup",
}
# Bare field names in a message: only those no English sentence uses ("3 policygroups" is prose).
_FIELD_RE = re.compile(r"\b(" + "|".join(f for f in FIELD_FLAGS if "_" in f) + r")\b")


_UUID_RE = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")


def with_names(message: str, resolver) -> str:
    """Ids in ``message`` replaced by 'name (short id)' for the objects ``resolver`` has seen."""
    def name(match):
        obj = resolver.cached(match.group(0))
        label = obj.get("name") if obj else None
        return f"{label} ({match.group(0)[:8]})" if label else match.group(0)

    return _UUID_RE.sub(name, message)


def cli_message(exc: DirectoryError) -> str:
    """The API's message rewritten for nuage-ctl users."""
    message = exc.message
    message = message.replace("use ?cascade=true", "use --cascade").replace("?cascade=true", "--cascade")
    if exc.status in (400, 409, 422):
        message = re.sub(r"field '(\w+)'", lambda m: FIELD_FLAGS.get(m.group(1), m.group(0)), message)
        message = _FIELD_RE.sub(lambda m: FIELD_FLAGS[m.group(1)], message)
        message = message.replace("needs protocol ", "needs --protocol ")
    return message


def describe(exc: DirectoryError) -> str:
    """One line for stderr: the message, then status and code."""
    return f"{cli_message(exc)} ({exc.status} {exc.code})"
