"""The directory store: an OVSDB database (schema ``Nuage_Directory``) followed with the python-ovs IDL.

One module per job:

* ``connection``: the IDL, the lock serialising all access to it, the IDL thread;
* ``mirror``: what is replicated (tables, monitor conditions), and IDL rows -> the immutable
  ``DirectoryState`` / ``CounterSnapshot`` published after each batch (``snapshot()`` just
  returns the latest one: no lock, no copy);
* ``rows``: row <-> model conversion (and the only reads of python-ovs internals);
* ``transactions``: the one write path: plan on the snapshot, ONE OVSDB transaction, re-plan on
  lost races, writes in doubt after a Raft leader change;
* ``agent_writes``, ``counters``: the agents' writes (host, liveness, vport status) and counter
  reports, as planners for that same path;
* ``directory_store``: ``DirectoryStore``, which wires them together.
"""

from nuage_ryu.directory.store.directory_store import DirectoryStore
from nuage_ryu.directory.store.mirror import schema_path
from nuage_ryu.directory.store.transactions import CommitUnconfirmed

__all__ = ["CommitUnconfirmed", "DirectoryStore", "schema_path"]
