"""The step/undo vocabulary of the attach service: what a failed attach undoes, and in which order."""

from __future__ import annotations

import pytest

from nuage_ryu.agent.attach.steps import Rollback


def test_undos_run_in_reverse_with_each_steps_result():
    done = []
    rollback = Rollback()
    vport = rollback.step("delete vport", lambda: {"id": "v1"}, lambda v: done.append(("vport", v["id"])))
    rollback.guarded_step("delete veth", lambda: "02:00:00:00:00:01", lambda: done.append(("veth",)))
    rollback.guarded_step("delete port", lambda: None, lambda: done.append(("port",)))
    assert vport == {"id": "v1"}
    assert rollback.undo() == []
    assert done == [("port",), ("veth",), ("vport", "v1")]


def test_a_step_that_fails_registers_no_undo_but_a_guarded_one_does():
    done = []
    rollback = Rollback()

    def fail():
        raise OSError("half done")

    with pytest.raises(OSError):
        rollback.step("delete vport", fail, lambda _: done.append("vport"))
    with pytest.raises(OSError):
        rollback.guarded_step("delete veth", fail, lambda: done.append("veth"))
    rollback.undo()
    assert done == ["veth"]


def test_failed_undos_are_reported_and_the_rest_still_run():
    done = []
    rollback = Rollback()
    rollback.guarded_step("first", lambda: None, lambda: done.append("first"))

    def broken():
        raise RuntimeError("directory gone")

    rollback.guarded_step("second", lambda: None, broken)
    rollback.guarded_step("third", lambda: None, lambda: done.append("third"))
    assert rollback.undo() == ["second: directory gone"]
    assert done == ["third", "first"]
