"""Fixtures shared by the directory integration tests.

``manager``: one real nuage-ryu-manager (directory API + embedded ovsdb-server) per test module, in a
temporary state dir, stopped by pid at the end, also on failure. A module that needs extra
``[directory]`` options sets ``MANAGER_EXTRA = "option = value\\n"`` at module level.
``admin``: a client of it with the admin token, closed after each test.
``server``: a bare directory ovsdb-server (no API) per test, for the store tests.
"""

from __future__ import annotations

import pytest

from nuage_ryu.db.server import OvsdbServer
from nuage_ryu.directory.store import DirectoryStore, schema_path
from nuage_ryu.directory.testing import ManagerProcess


@pytest.fixture(scope="module")
def manager(request, tmp_path_factory):
    extra = getattr(request.module, "MANAGER_EXTRA", "")
    mgr = ManagerProcess(str(tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])), extra=extra)
    mgr.start()
    try:
        yield mgr
    finally:
        mgr.stop()


@pytest.fixture
def admin(manager):
    client = manager.client()
    yield client
    client.close()


@pytest.fixture
def server(tmp_path):
    srv = OvsdbServer(str(tmp_path / "directory.db"), schema_path(), str(tmp_path / "db.sock"))
    srv.start()
    yield srv
    srv.stop()

@pytest.fixture
def api(server):
    """The directory API's kind of store (all counters, no scope) on ``server``."""
    st = DirectoryStore(server.remote, all_counters=True)
    st.start()
    yield st
    st.stop()
