"""The two spellings of a controller target (nuage_ryu/hostovs/controller_target.py)."""

import pytest

from nuage_ryu.hostovs.controller_target import canonical, respelled


@pytest.mark.parametrize("target", ["tcp:127.0.0.1:6653", "ssl:192.0.2.1:6653", "ssl:[::1]:6653",
                                    "unix:/run/nuage-ryu/of.sock"])
def test_the_other_spelling_is_another_string_for_the_same_endpoint_and_back(target):
    other = respelled(target)
    assert other is not None and other != target
    assert canonical(other) == target == canonical(target)
    assert respelled(other) == target


def test_spellings():
    assert respelled("tcp:127.0.0.1:6653") == "tcp:127.0.0.1:06653"
    assert respelled("unix:/run/x/a.sock") == "unix:/run/x/./a.sock"


@pytest.mark.parametrize("target", ["ptcp:6653", "tcp:host", "punix:/run/x.sock"])
def test_targets_without_a_second_spelling_are_left_alone(target):
    assert canonical(target) == target
    assert respelled(target) is None
