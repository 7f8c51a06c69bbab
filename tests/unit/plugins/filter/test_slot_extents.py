# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the hpc.jobroot.slot_extents filter (plugins/filter/slot_extents.py)."""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.hpc.jobroot.plugins.filter.slot_extents import FilterModule, slot_extents


@pytest.mark.parametrize(
    ("free", "slots", "expected"),
    [
        (1023, 4, 255),  # design.md's example: rounded down, 3 extents unused
        (1024, 4, 256),
        (7, 7, 1),  # exactly one extent each
        (5, 1, 5),
        ("1023", "4", 255),  # LVM JSON reports give numbers as strings
        (" 12 ", 3, 4),
    ],
)
def test_divides_and_rounds_down(free, slots, expected):
    result = slot_extents(free, slots)
    assert result == expected
    assert isinstance(result, int)
    # never oversubscribed
    assert result * int(slots) <= int(free)


@pytest.mark.parametrize("slots", [0, -1, "0"])
def test_refuses_fewer_than_one_slot(slots):
    with pytest.raises(AnsibleFilterError, match="slots must"):
        slot_extents(100, slots)


@pytest.mark.parametrize(
    ("free", "slots"),
    [(2.5, 1), (100.0, 2), (100, 2.0), ("2.5", 1), ("ten", 2), (None, 2), (100, None), (True, 1), (100, True), ([4], 2)],
)
def test_refuses_non_integers(free, slots):
    with pytest.raises(AnsibleFilterError, match="must be an integer"):
        slot_extents(free, slots)


def test_refuses_negative_extents():
    with pytest.raises(AnsibleFilterError, match="must not be negative"):
        slot_extents(-4, 2)


@pytest.mark.parametrize(("free", "slots"), [(3, 4), (0, 1)])
def test_refuses_a_zero_result(free, slots):
    with pytest.raises(AnsibleFilterError, match="cannot give"):
        slot_extents(free, slots)


def test_registered_under_its_name():
    assert FilterModule().filters() == {"slot_extents": slot_extents}
