"""Canned directory API data for nuage-ctl's unit tests: a 3-tier application of one enterprise.

The objects have exactly the fields the real API returns (``model.as_dict``); ``CannedApi``
answers the GETs nuage-ctl sends (collections, items, name filters, group members) and records
writes, so that tables and request bodies can be checked without a server. The integration
tests (tests/integration/test_directory_ctl.py) run the same commands against a real directory.
"""

from __future__ import annotations

import copy
import re

from nuage_ryu.directory.client import error_from_answer
from nuage_ryu.directory.ctl.kinds import KINDS


def uid(n: int, kind: str) -> str:
    """Readable fixed ids: the kind's first letters in the first group (hex only)."""
    tag = {"enterprise": "e0", "domain": "d0", "zone": "20", "subnet": "50", "vport": "70",
           "policygroup": "90", "acl": "a0", "host": "b0", "token": "c0"}[kind]
    return f"{tag}{n:06x}-0000-4000-8000-{n:012x}"


COUNTERS = {"packets": 0, "bytes": 0, "by_host": {}}


def _tree() -> dict[str, list[dict]]:
    ent = {"id": uid(1, "enterprise"), "name": "acme", "description": "ACME Corp"}
    ent2 = {"id": uid(2, "enterprise"), "name": "globex", "description": ""}
    dom = {"id": uid(1, "domain"), "enterprise": ent["id"], "name": "prod", "description": "", "vni": 5001,
           "default_action": "deny", "router_mac": "02:00:00:00:50:01", "ct_zone": 1,
           "default_action_counters": COUNTERS}
    dom2 = {"id": uid(2, "domain"), "enterprise": ent2["id"], "name": "prod", "description": "", "vni": 5002,
            "default_action": "allow", "router_mac": "02:00:00:00:50:02", "ct_zone": 2,
            "default_action_counters": COUNTERS}
    zones = [{"id": uid(i + 1, "zone"), "domain": dom["id"], "name": name, "description": f"{name} tier"}
             for i, name in enumerate(("web", "app", "db"))]
    subnets = [{"id": uid(i + 1, "subnet"), "zone": zones[i]["id"], "domain": dom["id"], "name": name,
                "description": "", "cidr": f"10.0.{i + 1}.0/24", "gateway": f"10.0.{i + 1}.1"}
               for i, name in enumerate(("front", "mid", "back"))]
    groups = [{"id": uid(i + 1, "policygroup"), "domain": dom["id"], "name": name, "description": ""}
              for i, name in enumerate(("web", "app", "db"))]
    vports = [{"id": uid(i + 1, "vport"), "subnet": subnets[i]["id"], "zone": zones[i]["id"], "domain": dom["id"],
               "name": f"{tier}-1", "description": "", "type": "container", "host": f"node-{i + 1}",
               "ip": f"10.0.{i + 1}.2", "mac": f"02:00:0a:00:0{i + 1}:02", "gateway": f"10.0.{i + 1}.1",
               "status": "up" if i else "down", "policygroups": [groups[i]["id"]],
               "external_ids": {"ifname": "eth0"}}
              for i, tier in enumerate(("web", "app", "db"))]

    def rule(n, prio, name, src, dst, proto="tcp", ports=None, action="allow", stateful=True, descr=""):
        return {"id": uid(n, "acl"), "domain": dom["id"], "name": name, "description": descr, "priority": prio,
                "source": src, "destination": dst, "protocol": proto, "dst_ports": ports, "icmp_type": None,
                "icmp_code": None, "action": action, "stateful": stateful, "counters": COUNTERS}

    def pg(i):
        return {"type": "policygroup", "id": groups[i]["id"]}

    acls = [
        rule(1, 100, "web-to-app", pg(0), pg(1), ports="8080"),
        rule(2, 200, "app-to-db", {"type": "zone", "id": zones[1]["id"]}, {"type": "subnet", "id": subnets[2]["id"]},
             ports="5432", stateful=False),
        rule(3, 300, "", {"type": "cidr", "cidr": "10.0.0.0/8"}, {"type": "any"}, proto="any", action="deny"),
        rule(4, 400, "ping", {"type": "any"}, pg(0), proto="icmp"),
    ]
    acls[3]["icmp_type"] = 8
    hosts = [{"id": uid(i + 1, "host"), "name": f"node-{i + 1}", "tunnel_ip": f"192.0.2.{11 + i}",
              "datapath_id": f"00000000000000{i + 1:02x}", "connected": i < 2,
              "last_seen": "2026-12-03T07:00:00.000+00:00" if i < 2 else None} for i in range(3)]
    tokens = [{"id": uid(1, "token"), "enterprise": ent["id"], "name": "ci",
               "created": "2026-12-01T10:00:00.000+00:00"}]
    return {"enterprise": [ent, ent2], "domain": [dom, dom2], "zone": zones, "subnet": subnets,
            "policygroup": groups, "vport": vports, "acl": acls, "host": hosts, "token": tokens}


class CannedApi:
    """Answers nuage-ctl's requests from the canned tree (same interface as DirectoryClient)."""

    def __init__(self, tree: dict[str, list[dict]] | None = None):
        self.tree = copy.deepcopy(tree or _tree())
        self.calls: list[tuple[str, str, object]] = []

    def _all(self):
        for kind, objs in self.tree.items():
            for obj in objs:
                yield kind, obj

    def _by_id(self, obj_id: str):
        for kind, obj in self._all():
            if obj["id"] == obj_id:
                return kind, obj
        raise error_from_answer(404, "not_found", f"{obj_id} not found")

    def get(self, path: str, **params):
        self.calls.append(("GET", path, params or None))
        parts = path.strip("/").split("/")
        plurals = {k.plural: k.name for k in KINDS.values()}
        if len(parts) == 1:
            rows = self.tree[plurals[parts[0]]]
        elif len(parts) == 2:
            return copy.deepcopy(self._by_id(parts[1])[1])
        elif parts[0] == "policygroups" and parts[2] == "vports":
            rows = [v for v in self.tree["vport"] if parts[1] in v["policygroups"]]
        else:
            parent_kind, _ = self._by_id(parts[1])
            kind = plurals[parts[2]]
            rows = [o for o in self.tree[kind] if o.get(parent_kind) == parts[1]]
        if "name" in params:
            rows = [r for r in rows if r.get("name") == params["name"]]
        return copy.deepcopy(sorted(rows, key=lambda o: (o.get("priority", 0), o.get("name", ""), o["id"])))

    def list(self, path: str, name: str | None = None, **filters):
        """DirectoryClient.list: every page of a collection (one answer here)."""
        return self.get(path, **filters, **({} if name is None else {"name": name}))

    def put(self, path: str, body):
        self.calls.append(("PUT", path, body))
        if re.fullmatch(r"/policygroups/[^/]+/vports", path):
            return []
        _kind, obj = self._by_id(path.strip("/").split("/")[1])
        obj.update(body)
        return copy.deepcopy(obj)

    def post(self, path: str, body):
        self.calls.append(("POST", path, body))
        return {"id": uid(999, "enterprise"), **body}

    def delete(self, path: str, **params):
        self.calls.append(("DELETE", path, params or None))
        return None

    def close(self):
        pass
