# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write the metrics textfiles with the real library, for ``promtool check metrics`` (run.sh).

Usage: python render_sample.py DIR.  A node config in directory mode
(no LVM on this host) under DIR; the hooks' file after a few prologues
and epilogues and a gc run, and a node file for each pool kind (thin and
thick), rendered by metrics.node_families as gc renders it.
"""
from __future__ import annotations

import os
import sys

from ansible_collections.hpc.jobroot.plugins.module_utils import config, metrics


def main(out):
    cfg = config.NodeConfig(run_dir=os.path.join(out, "run"), root_base=os.path.join(out, "roots"),
                            allow_list=os.path.join(out, "images.conf"), metrics_dir=out, slots=4)
    for seconds, outcome in ((0.4, "ok"), (1.7, "ok"), (0.1, "refused"), (12.0, "failed")):
        metrics.record_hook(cfg, "prologue", seconds, outcome)
        # an epilogue is never refused: it tears down what there is
        metrics.record_hook(cfg, "epilogue", seconds / 2, "ok" if outcome == "refused" else outcome)
    metrics.record_gc(cfg, {"7": ["removed"], "8": "error: umount failed"})
    images = {"sl7": {"version": "20261130-1", "glibc": "2.17", "min_kernel": "2.6.32"}, "host": {}}
    for name, pool in (("thin", {"size_bytes": 1 << 30, "used_ratio": 0.4, "metadata_ratio": 0.1}),
                       ("thick", {"size_bytes": 1 << 30, "used_ratio": 1.0, "metadata_ratio": None})):
        with open(os.path.join(out, "node-%s.prom" % name), "w", encoding="utf-8") as handle:
            handle.write(metrics.render(metrics.node_families(
                leaked={"volume": 1, "mount": 0}, gc_errors=1, last_success=1764500000.0,
                pool=pool, images=images)))


if __name__ == "__main__":
    main(sys.argv[1])
