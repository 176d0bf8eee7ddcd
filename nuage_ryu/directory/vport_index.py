"""The per-subnet vport index (names, addresses) and the MAC set, kept as persistent maps.

Both the store's mirror (every row change) and the planners' working state (every planned op)
maintain them incrementally, so that a vport write never costs a pass over all vports.
"""

from __future__ import annotations

import immutables

from nuage_ryu.directory import model

EMPTY_PORTS = model.SubnetPorts(immutables.Map(), immutables.Map(), immutables.Map(), 0)


def discard(m: immutables.Map, key) -> immutables.Map:
    """``m`` without ``key`` (unchanged when absent)."""
    return m.delete(key) if key in m else m


def index_vport(subnet_ports: immutables.Map, macs: immutables.Map, old, new) -> tuple[immutables.Map, immutables.Map]:
    """The index and MAC set after vport ``old`` became ``new`` (either may be None: create, delete)."""
    if old is not None:
        sp = subnet_ports.get(old.subnet)
        if sp is not None and old.id in sp.vports:
            sp = model.SubnetPorts(sp.vports.delete(old.id), discard(sp.names, old.name),
                                   discard(sp.ips, old.ip), sp.max_ip)
            subnet_ports = subnet_ports.set(old.subnet, sp) if len(sp.vports) else subnet_ports.delete(old.subnet)
        macs = discard(macs, old.mac)
    if new is not None:
        sp = subnet_ports.get(new.subnet) or EMPTY_PORTS
        # max_ip only grows: it is an allocation hint ("continue after the last one handed out").
        sp = model.SubnetPorts(sp.vports.set(new.id, new), sp.names.set(new.name, True),
                               sp.ips.set(new.ip, True), max(sp.max_ip, model.ip_int(new.ip)))
        subnet_ports = subnet_ports.set(new.subnet, sp)
        macs = macs.set(new.mac, True)
    return subnet_ports, macs
