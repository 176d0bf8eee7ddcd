"""Start-up milestones of an agent (nuage_ryu/agent/startup.py) and the launcher's start order."""

from __future__ import annotations

import time

import pytest

from nuage_ryu.agent import startup
from nuage_ryu.cmd import manager


def test_milestones_count_from_process_start_and_keep_the_first_mark():
    clock = startup.StartupClock(now=100.0, since_start=2.0)  # the process started at monotonic 98
    assert clock.mark(startup.APP_START, now=100.5) == 2.5
    assert clock.mark(startup.APP_START, now=109.0) == 2.5  # the first one counts
    assert clock.bridge_mark("h1", startup.OPENFLOW_UP, now=101.0) == 3.0
    assert clock.bridge_mark("h1", startup.OPENFLOW_UP, now=105.0) == 3.0


def test_first_table_reports_each_bridge_once_with_the_agent_milestones():
    clock = startup.StartupClock(now=10.0, since_start=1.0)
    clock.mark(startup.DIRECTORY_SYNCED, now=10.2)
    clock.bridge_mark("h1", startup.OPENFLOW_UP, now=10.4)
    report = clock.first_table("h1", now=10.5)
    assert report == pytest.approx({startup.PROCESS: 0.0, startup.DIRECTORY_SYNCED: 1.2, startup.OPENFLOW_UP: 1.4,
                      startup.FIRST_TABLE: 1.5})
    assert clock.first_table("h1", now=20.0) is None  # later tables are not start-up
    other = clock.first_table("h2", now=11.0)  # central mode: every bridge has its own
    assert other[startup.FIRST_TABLE] == pytest.approx(2.0) and startup.OPENFLOW_UP not in other


def test_describe_orders_the_steps_by_time():
    line = startup.describe({startup.PROCESS: 0.0, startup.OPENFLOW_UP: 1.25, startup.APP_START: 0.5,
                             startup.FIRST_TABLE: 1.3})
    assert line == "first table 1.300 s after process start (app_start 0.500, openflow_up 1.250)"


def test_process_start_is_in_the_past_of_this_process():
    since = startup.seconds_since_process_start()
    assert 0.0 < since < time.monotonic()


class _FakeAppManager:
    def __init__(self, names):
        self.applications_cls = {n: object for n in names}


def test_the_openflow_listener_starts_before_the_apps_that_use_it():
    mgr = _FakeAppManager(["nuage_ryu.apps.vrs_agent", "nuage_ryu.apps.vrs_dhcp", "os_ken.controller.ofp_handler"])
    manager._listener_first(mgr)
    assert list(mgr.applications_cls) == ["os_ken.controller.ofp_handler", "nuage_ryu.apps.vrs_agent",
                                          "nuage_ryu.apps.vrs_dhcp"]
    directory_only = _FakeAppManager(["nuage_ryu.apps.directory_api"])
    manager._listener_first(directory_only)
    assert list(directory_only.applications_cls) == ["nuage_ryu.apps.directory_api"]
