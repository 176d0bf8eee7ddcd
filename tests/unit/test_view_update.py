"""The agent's view updated per object (``vrs/view_update.py``, ``FlowCompiler.update(view, delta)``)
against a full rebuild: random change sequences must give the same view, the same owner
fingerprints and the same flows as building everything from the snapshot again.

The snapshots are published the way the store's mirror publishes them (persistent maps, the
placement index, a change log of the ids each version touched: ``Replica`` below uses the same
``Placement`` and ``ChangeLog``), including coalesced updates (the agent skips versions) and
batches of several changes.
"""

from __future__ import annotations

import dataclasses
import random

import immutables
from hypothesis import given, settings
from hypothesis import strategies as st

from nuage_ryu.agent.core import AgentCore
from nuage_ryu.directory import model
from nuage_ryu.directory.store.changes import ChangeLog
from nuage_ryu.directory.vport_index import Placement
from nuage_ryu.vrs.view import ExternalUplink

LOCAL = "h1"
HOSTS = ("h1", "h2", "h3")
DOMAINS = ("d1", "d2", "d3")
UPLINK = ExternalUplink("198.51.100.10", "02:00:00:00:99:01", patch_ofport=7)


class Replica:
    """Model objects published as the mirror does: one immutable snapshot per batch, with its
    version, the change log and the placement index."""

    def __init__(self) -> None:
        self.maps = {plural: immutables.Map() for _t, plural, _p in model.KINDS.values()}
        self.placement = Placement()
        self.changelog = ChangeLog(keep=8)  # small: a lagging reader must fall back to a rebuild
        self.version = 0
        self.changed: dict[str, set[str]] = {}

    def put(self, obj) -> None:
        plural = model.KINDS[model.kind_of(obj)][1]
        if plural == "vports":
            self.placement = self.placement.moved(self.maps[plural].get(obj.id), obj)
        self.maps[plural] = self.maps[plural].set(obj.id, obj)
        self.changed.setdefault(plural, set()).add(obj.id)

    def delete(self, plural: str, obj_id: str) -> None:
        if obj_id not in self.maps[plural]:
            return
        if plural == "vports":
            self.placement = self.placement.moved(self.maps[plural][obj_id], None)
        self.maps[plural] = self.maps[plural].delete(obj_id)
        self.changed.setdefault(plural, set()).add(obj_id)

    def publish(self) -> model.DirectoryState:
        self.version += 1
        self.changelog.record(self.version, {p: frozenset(ids) for p, ids in self.changed.items()})
        self.changed = {}
        return model.DirectoryState(**self.maps, placement=self.placement, version=self.version,
                                    changelog=self.changelog)

    def get(self, plural: str) -> immutables.Map:
        return self.maps[plural]


def _ip(rng: random.Random) -> str:
    return f"10.{rng.randrange(4)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _endpoint(rng: random.Random, r: Replica, domain: str) -> model.Endpoint:
    kind = rng.choice(["any", "policygroup", "policygroup", "zone", "subnet", "cidr"])
    if kind == "policygroup":
        return model.Endpoint("policygroup", rng.choice([f"{domain}-g{i}" for i in range(3)]))
    if kind == "zone":
        return model.Endpoint("zone", f"{domain}-z{rng.randrange(2)}")
    if kind == "subnet":
        return model.Endpoint("subnet", f"{domain}-s{rng.randrange(3)}")
    if kind == "cidr":
        return model.Endpoint("cidr", cidr=rng.choice(["10.9.0.0/16", "0.0.0.0/0", "192.0.2.7/32"]))
    return model.ANY


def _rule(rng: random.Random, r: Replica, rid: str, domain: str) -> model.ACL:
    proto = rng.choice(["any", "tcp", "udp", "icmp"])
    ports = rng.choice([None, "80", "8000-8080", str(rng.randrange(1, 65535))]) if proto in ("tcp", "udp") else None
    return model.ACL(rid, domain, rng.randrange(1, 60), _endpoint(rng, r, domain), _endpoint(rng, r, domain),
                     proto, ports, action=rng.choice(["allow", "deny"]), stateful=rng.random() < 0.7)


def _vport(rng: random.Random, vid: str, domain: str, host: str) -> model.VPort:
    groups = frozenset(g for g in (f"{domain}-g{i}" for i in range(3)) if rng.random() < 0.4)
    if rng.random() < 0.1:
        groups |= {f"{rng.choice(DOMAINS)}-g0"}  # a foreign group: ignored by the compiler
    n = int(vid[1:])
    return model.VPort(vid, f"{domain}-s{rng.randrange(3)}", domain, vid, _ip(rng),
                       f"02:00:00:00:{n // 256:02x}:{n % 256:02x}", "10.0.0.1", host=host,
                       policygroups=groups, floating_ip=rng.choice(["", "", "203.0.113.9"]))


def initial(rng: random.Random, r: Replica) -> None:
    r.put(model.Enterprise("e1", "acme"))
    for i, d in enumerate(DOMAINS):
        r.put(model.Domain(d, "e1", d, vni=100 + i, ct_zone=1 + i, router_mac=f"02:fe:00:00:00:0{i}",
                           egress_nat=rng.random() < 0.5))
        for z in range(2):
            r.put(model.Zone(f"{d}-z{z}", d, f"z{z}"))
        for s in range(3):
            r.put(model.Subnet(f"{d}-s{s}", f"{d}-z{s % 2}", d, f"s{s}", f"10.{i}.{s}.0/24", f"10.{i}.{s}.1"))
        for g in range(3):
            r.put(model.PolicyGroup(f"{d}-g{g}", d, f"g{g}"))
        for k in range(3):
            r.put(_rule(rng, r, f"{d}-r{k}", d))
    for i, h in enumerate(HOSTS):
        r.put(model.Host(f"hh{i}", h, tunnel_ip=f"192.0.2.{i + 1}"))
    for n in range(12):
        r.put(_vport(rng, f"v{n}", DOMAINS[n % 2], HOSTS[n % 3]))


def change(rng: random.Random, r: Replica, ofports: dict[str, int], serial: list[int]) -> None:
    """One random change to the directory or to the bridge's ports."""
    vports = sorted(r.get("vports"))
    op = rng.randrange(16)
    if op == 0 or not vports:
        serial[0] += 1
        r.put(_vport(rng, f"v{100 + serial[0]}", rng.choice(DOMAINS), rng.choice(HOSTS)))
    elif op == 1:
        r.delete("vports", rng.choice(vports))
    elif op == 2:
        v = r.get("vports")[rng.choice(vports)]
        r.put(dataclasses.replace(v, host=rng.choice(HOSTS)))
    elif op == 3:
        v = r.get("vports")[rng.choice(vports)]
        r.put(dataclasses.replace(v, policygroups=_vport(rng, "v1", v.domain, v.host).policygroups))
    elif op == 4:
        v = r.get("vports")[rng.choice(vports)]
        r.put(dataclasses.replace(v, ip=_ip(rng), floating_ip=rng.choice(["", "203.0.113.5"])))
    elif op == 5:
        v = r.get("vports")[rng.choice(vports)]
        r.put(dataclasses.replace(v, status="up" if v.status == "down" else "down"))
    elif op in (6, 7):
        d = rng.choice(DOMAINS)
        r.put(_rule(rng, r, f"{d}-r{rng.randrange(5)}", d))
    elif op == 8:
        r.delete("acls", rng.choice(sorted(r.get("acls")) or ["none"]))
    elif op == 9:
        d = rng.choice(DOMAINS)
        gid = f"{d}-g{rng.randrange(3)}"
        if gid in r.get("policygroups"):
            r.delete("policygroups", gid)
        else:
            r.put(model.PolicyGroup(gid, d, gid))
    elif op == 10:
        s = r.get("subnets")[rng.choice(sorted(r.get("subnets")))]
        r.put(dataclasses.replace(s, cidr=rng.choice([s.cidr, "10.8.0.0/16", "10.7.1.0/24"])))
    elif op == 11:
        h = r.get("hosts")[rng.choice(sorted(r.get("hosts")))]
        r.put(dataclasses.replace(h, tunnel_ip=rng.choice(["", "192.0.2.50", "192.0.2.51"])))
    elif op == 12:
        d = r.get("domains")[rng.choice(DOMAINS)]
        r.put(dataclasses.replace(d, default_action=rng.choice(["allow", "deny"]), egress_nat=rng.random() < 0.5))
    elif op == 13:  # plug or unplug a local vport
        local = [vid for vid in vports if r.get("vports")[vid].host == LOCAL]
        if local:
            vid = rng.choice(local)
            if vid in ofports and rng.random() < 0.5:
                del ofports[vid]
            else:
                ofports[vid] = rng.randrange(2, 40)
    elif op == 14:
        if rng.random() < 0.5:
            r.delete("subnets", rng.choice(sorted(r.get("subnets"))))
        else:
            d = rng.choice(DOMAINS)
            r.put(model.Subnet(f"{d}-s{rng.randrange(3)}", f"{d}-z0", d, "s", "10.5.5.0/24", "10.5.5.1"))
    else:
        v = r.get("vports")[rng.choice(vports)]
        r.put(dataclasses.replace(v, domain=rng.choice(DOMAINS)))


def _assert_same(core: AgentCore, state, ofports, external) -> None:
    full = AgentCore(LOCAL)
    full.set_directory(state)
    full.set_ports(ofports, 1)
    full.set_external(external, None)
    full.recompute()
    for name in ("domains", "subnets", "vports", "hosts", "local_ports", "policygroups", "acl_rules"):
        assert dict(getattr(core.view, name)) == dict(getattr(full.view, name)), name
    assert core.view.present_domains() == full.view.present_domains()
    assert core.compiler._inputs == full.compiler._inputs
    assert core.compiler.flows == full.compiler.flows


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32), steps=st.integers(5, 60), external=st.booleans())
def test_random_change_sequences_give_the_same_view_fingerprints_and_flows_as_a_rebuild(seed, steps, external):
    rng = random.Random(seed)
    r = Replica()
    initial(rng, r)
    ofports = {vid: 10 + i for i, vid in enumerate(sorted(r.get("vports"))) if r.get("vports")[vid].host == LOCAL}
    uplink = UPLINK if external else None
    core = AgentCore(LOCAL)
    core.set_external(uplink, None)
    state = r.publish()
    core.set_directory(state)
    core.set_ports(ofports, 1)
    core.recompute()
    serial = [0]
    for _ in range(steps):
        for _ in range(rng.choice([1, 1, 1, 2, 3])):  # a batch: several changes in one snapshot
            change(rng, r, ofports, serial)
        state = r.publish()
        if rng.random() < 0.15:
            continue  # the agent coalesces: it sees only a later snapshot
        core.set_directory(state)
        core.set_ports(dict(ofports), 1)
        core.recompute()
        _assert_same(core, state, ofports, uplink)


def test_a_change_inside_the_share_is_applied_per_object():
    """The incremental path is the one taken for a rule change and a membership change (not a rebuild),
    and it recompiles only what the change touches."""
    rng = random.Random(7)
    r = Replica()
    initial(rng, r)
    ofports = {vid: 10 + i for i, vid in enumerate(sorted(r.get("vports"))) if r.get("vports")[vid].host == LOCAL}
    core = AgentCore(LOCAL)
    core.set_directory(r.publish())
    core.set_ports(ofports, 1)
    core.recompute()
    rule = r.get("acls")["d1-r0"]
    r.put(dataclasses.replace(rule, protocol="tcp", dst_ports="4242"))
    core.set_directory(r.publish())
    core.recompute()
    assert core.incremental_updates == 1
    assert {o[0] for o in core.compiler.recompiled} <= {"acl", "acl-member"}
    v = r.get("vports")["v0"]
    r.put(dataclasses.replace(v, policygroups=frozenset({"d1-g0", "d1-g1", "d1-g2"})))
    state = r.publish()
    core.set_directory(state)
    core.recompute()
    assert core.incremental_updates == 2
    _assert_same(core, state, ofports, None)


def test_a_reader_that_fell_behind_the_change_log_rebuilds():
    r = Replica()
    initial(random.Random(1), r)
    old = r.publish()
    for n in range(20):
        r.put(model.Host(f"hx{n}", f"x{n}"))
        new = r.publish()
    assert new.changes_since(old) is None
    assert new.changes_since(new) == {}
    assert model.DirectoryState().changes_since(old) is None
