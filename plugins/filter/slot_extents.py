# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``hpc.jobroot.slot_extents`` filter: the per-job LV size in extents."""

from __future__ import annotations

DOCUMENTATION = r"""
name: slot_extents
short_description: Size of one job slot in LVM extents
version_added: 0.1.0
author: hpc.jobroot developers
description:
  - Divides the extents available to job volumes by the number of job slots
    and rounds down, so that all slots together never need more extents than
    there are (the volume group or thin pool is never oversubscribed).
  - The result is the C(slot_extents) value of the node config
    C(/etc/hpc-jobroot/pool.json) written by the P(hpc.jobroot.jobvol_pool#role) role.
  - Fails with a clear message if O(slots) is less than 1, if either value is
    not an integer, or if the result would be 0 extents (fewer extents than slots).
positional: slots
options:
  _input:
    description:
      - Extents available to job volumes, a count of LVM extents (not bytes).
      - For thick volumes, the volume group's free extents plus the extents of
        the job volumes that already exist; for thin volumes, the thin pool's size
        in extents.
      - An integer, or a string of decimal digits (LVM's JSON reports give
        numbers as strings). Floats and booleans are refused.
    type: raw
    required: true
  slots:
    description:
      - Number of job slots (jobs that may hold a volume at the same time).
      - An integer of at least 1, or a string of decimal digits.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: 1023 free extents shared by 4 slots gives 255 extents per slot
  ansible.builtin.debug:
    msg: "{{ 1023 | hpc.jobroot.slot_extents(4) }}"

- name: From an LVM JSON report (numbers come as strings)
  ansible.builtin.set_fact:
    jobvol_slot_extents: "{{ (vgs_out.stdout | from_json).report[0].vg[0].vg_free_count | hpc.jobroot.slot_extents(8) }}"
"""

RETURN = r"""
_value:
  description: Extents per slot, C(free_extents // slots), at least 1.
  type: int
"""

import re

from ansible.errors import AnsibleFilterError

_DIGITS = re.compile(r"\A[0-9]+\Z")


def _count(value, what):
    """Return ``value`` as a non-negative int, or raise AnsibleFilterError.

    :arg value: an int, or a str of decimal digits (surrounding blanks allowed).
        bool and float are refused even when integral: a float here means a
        computation went wrong upstream (bytes divided somewhere), not a count.
    :arg what: the argument's name, for the error message.
    :raises AnsibleFilterError: for anything else, or a negative int.
    """
    if isinstance(value, bool):
        raise AnsibleFilterError(f"slot_extents: {what} must be an integer, got the boolean {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _DIGITS.match(value.strip()):
        number = int(value.strip())
    else:
        raise AnsibleFilterError(
            f"slot_extents: {what} must be an integer (a count of extents or slots), "
            f"got {type(value).__name__} {value!r}"
        )
    if number < 0:
        raise AnsibleFilterError(f"slot_extents: {what} must not be negative, got {number}")
    return number


def slot_extents(free_extents, slots):
    """Extents per job slot: ``free_extents // slots``, never 0.

    :arg free_extents: extents available to job volumes (int or digit string), >= 0.
    :arg slots: number of job slots (int or digit string), >= 1.
    :returns: int, the size of one slot in extents (>= 1).
    :raises AnsibleFilterError: if ``slots`` < 1, if an argument is not an
        integer, or if there are fewer extents than slots (the result would be 0).

    Rounding down is the design rule of docs/design.md (node config
    ``slot_extents``): the pool is never oversubscribed, at most
    ``slots - 1`` extents stay unused.
    """
    free = _count(free_extents, "free_extents")
    count = _count(slots, "slots")
    if count < 1:
        raise AnsibleFilterError(f"slot_extents: slots must be at least 1, got {count}")
    result = free // count
    if result == 0:
        raise AnsibleFilterError(
            f"slot_extents: {free} free extents cannot give {count} slots at least one extent each; "
            "add physical volumes or lower the slot count"
        )
    return result


class FilterModule:
    """Ansible filter plugin entry point."""

    def filters(self):
        """Map filter names to functions: ``{'slot_extents': slot_extents}``."""
        return {"slot_extents": slot_extents}
