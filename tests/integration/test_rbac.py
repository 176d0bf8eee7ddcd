"""A host's credentials give it its own rows and nothing else (ovsdb-server RBAC on the host listener).

The red-team case of issue 11: from a host's namespace, with that host's certificate, one
``ovsdb-client transact`` used to flip another tenant's deny rule to allow. Now the database
refuses it, while the agent's own writes (its host row, liveness, its vports' status) go on.
"""

import json
import os

import pytest

from tests.lab_helpers import lab_with_plane, ns_run
from tests.ovs_fixtures import wait_until

pytestmark = pytest.mark.integration


def _transact(plane, host, *ops, remote=None):
    """``ops`` from ``host``'s namespace with its credentials, on the primary (or ``remote``)."""
    creds = os.path.join(plane.pki_dir, host.host_name)
    argv = ["ovsdb-client", "--timeout=10",
            f"--private-key={creds}/{host.host_name}-key.pem", f"--certificate={creds}/{host.host_name}-cert.pem",
            f"--ca-cert={creds}/ca-cert.pem", "transact", remote or plane.directory_db,
            json.dumps(["Nuage_Directory", *ops])]
    out = ns_run(host.netns, argv)
    return out.stdout + out.stderr


def _uuid_of(plane, table, where):
    out = ns_run(plane.lab.controller_node.netns,
                 ["ovsdb-client", "transact", plane.local_directory_db,
                  json.dumps(["Nuage_Directory", {"op": "select", "table": table, "where": where,
                                                  "columns": ["_uuid"]}])])
    return json.loads(out.stdout)[0]["rows"][0]["_uuid"][1]


def test_a_host_cannot_touch_another_tenants_policy_but_keeps_its_own_rows():
    with lab_with_plane(2, tag="rbac") as (lab, plane):
        h1, h2 = lab.hosts
        api = plane.client()
        ent = api.post("/enterprises", {"name": "victim"})
        dom = api.post(f"/enterprises/{ent['id']}/domains", {"name": "d"})
        zone = api.post(f"/domains/{dom['id']}/zones", {"name": "z"})
        subnet = api.post(f"/zones/{zone['id']}/subnets", {"name": "s", "cidr": "10.9.0.0/24"})
        acl = api.post(f"/domains/{dom['id']}/acls", {"priority": 10, "protocol": "tcp", "action": "deny",
                                                     "source": {"type": "any"}, "destination": {"type": "any"}})
        own = api.post(f"/subnets/{subnet['id']}/vports", {"name": "mine", "host": h1.host_name})
        other = api.post(f"/subnets/{subnet['id']}/vports", {"name": "theirs", "host": h2.host_name})

        # Another tenant's rule: refused.
        out = _transact(plane, h1, {"op": "update", "table": "ACL", "where": [["_uuid", "==", ["uuid", acl["id"]]]],
                                    "row": {"action": "allow"}})
        assert "permission error" in out, out
        assert api.get(f"/acls/{acl['id']}")["action"] == "deny"
        # Creating objects of the model: refused.
        out = _transact(plane, h1, {"op": "insert", "table": "Enterprise", "row": {"name": "evil", "description": ""}})
        assert "permission error" in out, out
        # Another host's vport status: refused; its own: allowed.
        theirs = _uuid_of(plane, "VPortStatus", [["host", "==", h2.host_name]])
        out = _transact(plane, h1, {"op": "update", "table": "VPortStatus",
                                    "where": [["_uuid", "==", ["uuid", theirs]]], "row": {"status": "up"}})
        assert "permission error" in out, out
        mine = _uuid_of(plane, "VPortStatus", [["host", "==", h1.host_name]])
        out = _transact(plane, h1, {"op": "update", "table": "VPortStatus",
                                    "where": [["_uuid", "==", ["uuid", mine]]], "row": {"status": "up"}})
        assert "error" not in out and json.loads(out)[0] == {"count": 1}, out  # written (its agent owns it too)
        assert api.get(f"/vports/{other['id']}")["status"] == "down"
        assert own["host"] == h1.host_name
        # The agents themselves keep working under RBAC: registered, connected.
        wait_until(lambda: all(h["connected"] for h in api.get("/hosts")), timeout=20,
                   message="both agents to show connected (their liveness writes pass RBAC)")
        # Verdict records (docs/policy.md): a host inserts and deletes its own; another host's it can neither
        # insert (claiming another host) nor delete, nor may it change a record once written.
        row = {"host": h1.host_name, "time": 1.0, "domain": dom["id"], "record": "{}"}
        out = _transact(plane, h1, {"op": "insert", "table": "Verdict", "row": row})
        assert "error" not in out, out
        out = _transact(plane, h1, {"op": "insert", "table": "Verdict", "row": dict(row, host=h2.host_name)})
        assert "permission error" in out, out
        out = _transact(plane, h2, {"op": "delete", "table": "Verdict", "where": [["host", "==", h1.host_name]]})
        assert "permission error" in out, out
        out = _transact(plane, h1, {"op": "update", "table": "Verdict", "where": [["host", "==", h1.host_name]],
                                    "row": {"record": "{\"verdict\": \"allow\"}"}})
        assert "permission error" in out, out
        out = _transact(plane, h1, {"op": "delete", "table": "Verdict", "where": [["host", "==", h1.host_name]]})
        assert "error" not in out and json.loads(out)[0]["count"] >= 1, out


def test_behind_a_relay_a_host_is_held_to_the_same_rows():
    """A relay checks RBAC itself (its host listener has the nuage-host role); before, a host on a
    relay was not restricted at all (the relay's listener was a plain one)."""
    with lab_with_plane(2, tag="haur", relays=1) as (lab, plane):
        h1, h2 = lab.hosts
        relay = plane.agent_directory(h1)
        assert relay == plane.relay_remote(plane.relays[0]) and relay != plane.directory_db
        api = plane.client()
        ent = api.post("/enterprises", {"name": "victim"})
        dom = api.post(f"/enterprises/{ent['id']}/domains", {"name": "d"})
        zone = api.post(f"/domains/{dom['id']}/zones", {"name": "z"})
        subnet = api.post(f"/zones/{zone['id']}/subnets", {"name": "s", "cidr": "10.9.0.0/24"})
        acl = api.post(f"/domains/{dom['id']}/acls", {"priority": 10, "protocol": "tcp", "action": "deny"})
        mine = api.post(f"/subnets/{subnet['id']}/vports", {"name": "mine", "host": h1.host_name})
        theirs = api.post(f"/subnets/{subnet['id']}/vports", {"name": "theirs", "host": h2.host_name})

        out = _transact(plane, h1, {"op": "update", "table": "ACL", "where": [["_uuid", "==", ["uuid", acl["id"]]]],
                                    "row": {"action": "allow"}}, remote=relay)
        assert "permission error" in out, out
        assert api.get(f"/acls/{acl['id']}")["action"] == "deny"
        out = _transact(plane, h1, {"op": "insert", "table": "Enterprise", "row": {"name": "evil"}}, remote=relay)
        assert "permission error" in out, out
        row = _uuid_of(plane, "VPortStatus", [["host", "==", h2.host_name]])
        out = _transact(plane, h1, {"op": "update", "table": "VPortStatus", "where": [["_uuid", "==", ["uuid", row]]],
                                    "row": {"status": "up"}}, remote=relay)
        assert "permission error" in out, out
        assert api.get(f"/vports/{theirs['id']}")["status"] == "down"
        # Its own status: written through the relay to the primary.
        row = _uuid_of(plane, "VPortStatus", [["host", "==", h1.host_name]])
        out = _transact(plane, h1, {"op": "update", "table": "VPortStatus", "where": [["_uuid", "==", ["uuid", row]]],
                                    "row": {"status": "up"}}, remote=relay)
        assert "error" not in out and json.loads(out)[0] == {"count": 1}, out
        assert mine["host"] == h1.host_name
        wait_until(lambda: all(h["connected"] for h in api.get("/hosts")), timeout=20,
                   message="both agents to show connected (their writes through the relay pass RBAC)")
