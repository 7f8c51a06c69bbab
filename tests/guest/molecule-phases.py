#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter for `molecule test` output: stamp each line, then print phase times.

Usage: molecule test -s NAME 2>&1 | tests/guest/molecule-phases.py NAME

Copies standard input to standard output with each line prefixed by the UTC
time (HH:MM:SS).  At the end of input, prints one line per molecule action
(destroy, create, converge, idempotence, verify, ...) with the seconds it took,
measured from molecule's own "[scenario > action] Executing" and "Executed"
lines, to standard output and appends them as tab-separated rows
(scenario, action, seconds) to $MOLECULE_PHASES_TSV if that is set.
"""

from __future__ import annotations

import os
import re
import sys
import time

# INFO     [jobvol > converge] Executing   /   ... Executed: Successful
_EVENT = re.compile(r"\[(?P<scenario>[^]>]+?) > (?P<action>[^]]+?)\] (?P<what>Executing|Executed)\b")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def main(argv):
    """Stream stdin to stdout with time stamps; return 0.

    :arg argv: sys.argv; argv[1] is the scenario name (for the report only).
    """
    scenario = argv[1] if len(argv) > 1 else "?"
    started = {}
    phases = []  # (action, seconds), in order; an action may repeat (destroy)
    for line in sys.stdin:
        now = time.time()
        sys.stdout.write(time.strftime("%H:%M:%S ", time.gmtime(now)) + line)
        sys.stdout.flush()
        match = _EVENT.search(_ANSI.sub("", line))
        if not match or "Executing Testinfra" in line:
            continue
        action = match.group("action")
        if match.group("what") == "Executing":
            started[action] = now
        elif action in started:
            phases.append((action, now - started.pop(action)))
    sys.stdout.write("\nphase times of scenario %s:\n" % scenario)
    for action, seconds in phases:
        sys.stdout.write("  %-12s %6.0f s\n" % (action, seconds))
    tsv = os.environ.get("MOLECULE_PHASES_TSV")
    if tsv:
        with open(tsv, "a", encoding="utf-8") as f:
            for action, seconds in phases:
                f.write("%s\t%s\t%.0f\n" % (scenario, action, seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
