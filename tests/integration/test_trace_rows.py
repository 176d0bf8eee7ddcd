"""Trace requests through a real ovsdb-server: the REST side's store asks, the source host's agent store
(scoped to its host) is the only one to receive it, answers, and the asker reads the answer and deletes it."""

from __future__ import annotations

import shutil
import threading
import time

import pytest

from nuage_ryu.directory.store import DirectoryStore
from tests.ovs_fixtures import wait_until

pytestmark = pytest.mark.skipif(shutil.which("ovsdb-server") is None, reason="needs ovsdb-server")


@pytest.fixture
def stores(server):
    """The REST side's full store and one scoped agent store per host (h1, h2) on ``server`` (conftest)."""
    made = []
    try:
        api = DirectoryStore(server.remote, all_counters=True)
        api.start()
        made.append(api)
        agents = {}
        for host in ("h1", "h2"):
            agents[host] = DirectoryStore(server.remote, scope_hosts=[host])
            agents[host].start()
            made.append(agents[host])
        yield api, agents
    finally:
        for st in made:
            st.stop()


def test_a_request_reaches_only_its_host_and_its_answer_comes_back(stores):
    api, agents = stores
    heard = {h: [] for h in agents}
    for host, store in agents.items():
        store.add_trace_listener(lambda reqs, host=host: heard[host].append(dict(reqs)))
    expires = int(time.time() * 1000) + 10_000
    rid = api.ask_trace("h1", {"src_vport": "v1", "dst_ip": "10.0.0.2"}, expires)
    wait_until(lambda: rid in agents["h1"].trace_requests(), timeout=10, message="h1's agent to receive it")
    req = agents["h1"].trace_requests()[rid]
    assert (req.host, req.state, req.request["dst_ip"], req.answer) == ("h1", "pending", "10.0.0.2", None)
    assert rid not in agents["h2"].trace_requests() and not any(rid in r for r in heard["h2"])
    assert any(rid in r for r in heard["h1"])

    # The answer arrives while the asker waits (woken by its mirror, not by polling).
    threading.Timer(0.2, agents["h1"].answer_trace, (rid, {"verdict": "deny"})).start()
    got = api.wait_trace(rid, time.monotonic() + 10)
    assert got is not None and got.state == "answered" and got.answer == {"verdict": "deny"}
    api.withdraw_trace(rid)
    wait_until(lambda: rid not in agents["h1"].trace_requests(), timeout=10, message="the row to be gone")
    assert api.wait_trace(rid, time.monotonic() + 0.1) is None


def test_an_unanswered_request_times_out_and_expired_rows_are_swept(stores):
    api, agents = stores
    old = api.ask_trace("h2", {"src_vport": "v9"}, int(time.time() * 1000) - 1)  # already expired
    assert api.wait_trace(old, time.monotonic() + 0.3) is None
    wait_until(lambda: old in api.trace_requests(), timeout=10, message="the request in the asker's replica")
    new = api.ask_trace("h2", {"src_vport": "v9"}, int(time.time() * 1000) + 10_000)
    wait_until(lambda: old not in api.trace_requests() and new in api.trace_requests(), timeout=10,
               message="the expired request swept by the next one")
    api.withdraw_trace(new)
