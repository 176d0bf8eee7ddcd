"""The directory step of a burst as bulk requests: per-item outcomes from an all-or-nothing bulk API.

The stand-in follows the bulk API as docs/api.md specifies it (one transaction, the first refused
operation fails the request with ``operation N (...): `` in front of its single call's message),
since this branch's directory predates it; against a real directory without it, the fallback path
runs in tests/integration/test_attach_burst.py.
"""

from __future__ import annotations

import itertools

import pytest

from nuage_ryu.agent.attach.bulk import CREATE, DELETE, BulkVPorts
from nuage_ryu.directory.errors import BadRequest, NotFound, ValidationError


class BulkDirectory:
    """Vports in subnets; ``POST /bulk`` all or nothing; the single calls of DirectoryClient."""

    def __init__(self, has_bulk: bool = True) -> None:
        self.has_bulk = has_bulk
        self.vports: dict[str, dict] = {}
        self.subnets = {"s1", "s2"}
        self.calls: list[str] = []
        self._ids = itertools.count(1)

    def _create(self, subnet_id: str, fields: dict, staged: dict) -> dict:
        if subnet_id not in self.subnets:
            raise NotFound(f"subnet {subnet_id!r} not found")
        if any(v["name"] == fields["name"] for v in (*self.vports.values(), *staged.values())):
            raise ValidationError(f"a vport named {fields['name']!r} exists")
        vport = dict(fields, id=f"v{next(self._ids)}", subnet=subnet_id)
        staged[vport["id"]] = vport
        return vport

    def request(self, method: str, path: str, body: dict, params: dict | None = None):
        self.calls.append(f"{method} {path} {len(body['operations'])}")
        if not self.has_bulk:
            raise NotFound("no such path /bulk")
        if not body["operations"]:
            raise BadRequest("operations must be a non-empty list")
        staged, deleted, results = {}, set(), []
        for n, op in enumerate(body["operations"]):
            try:
                if op["action"] == "create":
                    obj = self._create(op["parent"], op["body"], staged)
                    results.append({"index": n, "action": "create", "kind": "vport", "id": obj["id"], "object": obj})
                else:
                    if op["id"] not in self.vports or op["id"] in deleted:
                        raise NotFound(f"vport {op['id']!r} not found")
                    deleted.add(op["id"])
                    results.append({"index": n, "action": "delete", "kind": "vport", "id": op["id"]})
            except (NotFound, ValidationError) as exc:
                raise type(exc)(f"operation {n} ({op['action']} vport): {exc.message}") from None
        self.vports.update(staged)
        for vid in deleted:
            del self.vports[vid]
        return {"dry_run": False, "results": results}

    def create_vport(self, subnet_id: str, fields: dict) -> dict:
        self.calls.append("create")
        staged: dict = {}
        vport = self._create(subnet_id, fields, staged)
        self.vports.update(staged)
        return vport

    def delete_vport(self, vport_id: str) -> bool:
        self.calls.append("delete")
        return self.vports.pop(vport_id, None) is not None


def test_creates_of_a_burst_are_one_bulk_request():
    directory = BulkDirectory()
    bulk = BulkVPorts(directory)
    outcomes = bulk.create([("s1", {"name": f"c{i}"}) for i in range(10)])
    assert [o["name"] for o in outcomes] == [f"c{i}" for i in range(10)]
    assert directory.calls == ["POST /bulk 10"] and bulk.available is True
    assert bulk.delete([o["id"] for o in outcomes]) == [True] * 10
    assert directory.vports == {} and directory.calls[-1] == "POST /bulk 10"


def test_a_refused_create_fails_alone_with_its_own_message_and_the_others_are_created():
    directory = BulkDirectory()
    items = [("s1", {"name": "a"}), ("s9", {"name": "b"}), ("s1", {"name": "c"}), ("s1", {"name": "a"})]
    outcomes = BulkVPorts(directory).create(items)
    assert outcomes[0]["name"] == "a" and outcomes[2]["name"] == "c"
    assert isinstance(outcomes[1], NotFound) and outcomes[1].message == "subnet 's9' not found"
    assert isinstance(outcomes[3], ValidationError) and "named 'a' exists" in outcomes[3].message
    assert sorted(v["name"] for v in directory.vports.values()) == ["a", "c"]
    assert directory.calls == ["POST /bulk 4", "POST /bulk 3", "POST /bulk 2"]


def test_deleting_what_is_gone_is_false_like_the_single_call():
    directory = BulkDirectory()
    bulk = BulkVPorts(directory)
    made = bulk.create([("s1", {"name": "a"}), ("s1", {"name": "b"})])
    assert bulk.delete([made[0]["id"], "v-gone", made[1]["id"]]) == [True, False, True]
    assert directory.vports == {}


def test_support_is_asked_once_with_an_empty_dry_run():
    with_bulk, without = BulkDirectory(), BulkDirectory(has_bulk=False)
    assert BulkVPorts(with_bulk).supported() is True and with_bulk.calls == ["POST /bulk 0"]
    bulk = BulkVPorts(without)
    assert bulk.supported() is False and bulk.supported() is False
    assert without.calls == ["POST /bulk 0"]


def test_without_the_bulk_api_every_item_is_its_own_call_from_then_on():
    directory = BulkDirectory(has_bulk=False)
    bulk = BulkVPorts(directory)
    outcomes = bulk.create([("s1", {"name": "a"}), ("s1", {"name": "b"})])
    assert [o["name"] for o in outcomes] == ["a", "b"] and bulk.available is False
    assert directory.calls == ["POST /bulk 2", "create", "create"]
    bulk.delete([o["id"] for o in outcomes])
    assert directory.calls[-2:] == ["delete", "delete"] and directory.vports == {}


def test_an_error_that_names_no_operation_is_every_items_error():
    class Down(BulkDirectory):
        def request(self, method, path, body, params=None):
            from nuage_ryu.directory.errors import DirectoryError

            err = DirectoryError("directory unavailable")
            err.status = 503
            raise err

    with pytest.raises(Exception, match="unavailable"):
        BulkVPorts(Down()).create([("s1", {"name": "a"}), ("s1", {"name": "b"})])


def test_creates_and_deletes_of_a_churning_host_share_one_request_and_fail_alone():
    directory = BulkDirectory()
    bulk = BulkVPorts(directory)
    made = bulk.create([("s1", {"name": "old"})])
    outcomes = bulk.apply([(CREATE, ("s1", {"name": "new"})), (DELETE, made[0]["id"]),
                           (CREATE, ("s9", {"name": "bad"})), (DELETE, "v-gone")])
    assert outcomes[0]["name"] == "new" and outcomes[1] is True and outcomes[3] is False
    assert isinstance(outcomes[2], NotFound) and outcomes[2].message == "subnet 's9' not found"
    assert [v["name"] for v in directory.vports.values()] == ["new"]
    assert directory.calls[1] == "POST /bulk 4"
