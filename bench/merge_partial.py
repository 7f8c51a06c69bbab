#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Merge questions of a partial bench run into bench/results.json.

    bench/merge_partial.py .build/bench-partial/results.json q8

A question added after the last full `make bench` can be run alone
(`bench/run.py --only qN`) instead of repeating the full run (about 35
minutes of guest time).  This copies each named question's results and its
plan arguments into bench/results.json and records, under
`separate_runs`, when and on which guest it ran, so the report says so in
that question's section; then rewrite the report with
`bench/run.py --report bench/results.json`.  A question the partial run
does not hold, or one that failed there, is an error and nothing is written.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip().split("\n\n", maxsplit=1)[0] + "\nusage: merge_partial.py PARTIAL_JSON QUESTION...")
        return 2
    partial_path, questions = argv[0], argv[1:]
    with open(partial_path, encoding="utf-8") as handle:
        partial = json.load(handle)
    missing = [q for q in questions if q not in partial or q in partial.get("failed", {})]
    if missing:
        print("merge_partial: %s has no (successful) %s" % (partial_path, ", ".join(missing)))
        return 1
    target = os.path.join(HERE, "results.json")
    with open(target, encoding="utf-8") as handle:
        results = json.load(handle)
    for q in questions:
        results[q] = partial[q]
        if q in partial.get("plan", {}):
            results.setdefault("plan", {})[q] = partial["plan"][q]
        results.setdefault("separate_runs", {})[q] = {
            "started": partial["started"], "duration_s": partial.get("duration_s", 0.0),
            "guest_suite": partial.get("guest_suite", "?")}
    with open(target + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=1, sort_keys=True)
        handle.write("\n")
    os.replace(target + ".tmp", target)
    print("merge_partial: %s merged into %s" % (", ".join(questions), os.path.relpath(target)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
