# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus metrics of a node's job roots, as node_exporter textfiles.

node_exporter's textfile collector reads every ``*.prom`` file of one
directory (the node config's ``metrics_dir``; empty turns metrics off) at
each scrape. Each file is written whole to a temp file in the same
directory, then renamed over the old one (atomic.write), so a scrape never
sees half a file; the temp name does not end in ``.prom``, so the collector
skips it. Two files, so that no writer waits for LVM to publish its own
numbers:

* ``jobroot_hooks.prom``, written at the end of every prologue and
  epilogue (:func:`record_hook`): the hooks' durations and outcomes, and the
  roots by phase and free slots read from the run directory's job states.
  The counters live in ``<run_dir>/metrics.json`` (under a lock of their own,
  ``<run_dir>/metrics.lock``); the run directory is a tmpfs, so they start
  again at 0 after a reboot, which Prometheus's ``rate``/``increase``
  handle as a counter reset.
* ``jobroot_node.prom``, written at the end of every gc (:func:`record_gc`):
  what gc could not clean (leaked or stale items), the time of its last
  run without errors, the pool's use and the images on the allow-list.

Names follow the Prometheus naming guide: the ``jobroot_`` prefix, base
units (seconds, bytes, ratios 0-1), ``_total`` for counters, and no
job-id label (a label per job would make a new series for every job).
Nothing here raises for a metrics failure on the hook path: the callers
catch OSError and JobrootError and only log them, since no job should fail
because a number could not be written.
"""

from __future__ import annotations

import json
import os

from ansible_collections.hpc.jobroot.plugins.module_utils import atomic, lock

HOOKS_FILE = "jobroot_hooks.prom"
NODE_FILE = "jobroot_node.prom"
COUNTERS_FILE = "metrics.json"
#: histogram buckets of the hooks' durations, in seconds (upper bounds)
BUCKETS = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
HOOKS = ("prologue", "epilogue")
#: how a hook ended: set up or torn down, the job refused, or failed
OUTCOMES = ("ok", "refused", "failed")
#: the phases a saved job state can be in (lifecycle.py)
PHASES = ("setup", "ready", "refused")


def _empty_counters():
    return {"hooks": {hook: {"count": 0, "sum": 0.0, "buckets": [0] * len(BUCKETS),
                             "outcomes": dict.fromkeys(OUTCOMES, 0)} for hook in HOOKS},
            "gc_teardown_failures": 0, "gc_last_success": None}


def load_counters(run_dir):
    """Return the counters kept in ``<run_dir>/metrics.json`` (a dict, zeros if missing or unreadable).

    An unreadable or foreign-shaped file starts the counters again at zero:
    a counter reset, which Prometheus tolerates, is better than a hook error.
    """
    counters = _empty_counters()
    try:
        fd = os.open(os.path.join(run_dir, COUNTERS_FILE), os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, encoding="utf-8") as handle:
            saved = json.load(handle)
        for hook in HOOKS:
            entry = saved["hooks"][hook]
            if len(entry["buckets"]) == len(BUCKETS):
                counters["hooks"][hook] = {
                    "count": int(entry["count"]), "sum": float(entry["sum"]),
                    "buckets": [int(n) for n in entry["buckets"]],
                    "outcomes": {o: int(entry["outcomes"].get(o, 0)) for o in OUTCOMES}}
        counters["gc_teardown_failures"] = int(saved.get("gc_teardown_failures", 0))
        last = saved.get("gc_last_success")
        counters["gc_last_success"] = None if last is None else float(last)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return counters


def count_hook(counters, hook, seconds, outcome):
    """Add one run of *hook* (``prologue``/``epilogue``) that took *seconds* (float) and ended *outcome*.

    Changes *counters* (a :func:`load_counters` dict) in place. Raises
    ValueError for an unknown hook or outcome.
    """
    if hook not in HOOKS or outcome not in OUTCOMES:
        raise ValueError("unknown hook %r or outcome %r" % (hook, outcome))
    entry = counters["hooks"][hook]
    entry["count"] += 1
    entry["sum"] += seconds
    entry["outcomes"][outcome] += 1
    for i, bound in enumerate(BUCKETS):
        if seconds <= bound:
            entry["buckets"][i] += 1


def phases(states):
    """Return ``{phase: count}`` for every phase of :data:`PHASES` from *states* (job key -> state dict or None)."""
    counts = dict.fromkeys(PHASES, 0)
    for state in states.values():
        phase = (state or {}).get("phase")
        if phase in counts:
            counts[phase] += 1
    return counts


def _value(number):
    return repr(number) if isinstance(number, float) else str(number)


def _labels(labels):
    if not labels:
        return ""
    return "{%s}" % ",".join('%s="%s"' % (k, str(v).replace("\\", "\\\\").replace('"', '\\"')
                                          .replace("\n", "\\n")) for k, v in labels)


def render(families):
    """Return the text exposition format of *families*.

    *families*: a list of ``(name, type, help, samples)``, *type* one of
    ``gauge``, ``counter``, ``histogram``; *samples* a list of ``(suffix,
    labels, value)`` with *suffix* appended to *name* (``""``, ``_bucket``,
    ``_sum``, ``_count``), *labels* a list of ``(name, value)`` pairs and
    *value* an int or float. Label values are escaped as the format says.
    """
    lines = []
    for name, kind, text, samples in families:
        lines.append("# HELP %s %s" % (name, text))
        lines.append("# TYPE %s %s" % (name, kind))
        for suffix, labels, value in samples:
            lines.append("%s%s%s %s" % (name, suffix, _labels(labels), _value(value)))
    return "\n".join(lines) + "\n"


def hook_families(counters, states, slots):
    """The families of ``jobroot_hooks.prom`` (see :func:`render`).

    *counters*: :func:`load_counters`; *states*: job key -> saved state (the
    run directory's jobs); *slots*: the node's slot count (int). A refused
    job holds no slot.
    """
    duration = []
    outcomes = []
    for hook in HOOKS:
        entry = counters["hooks"][hook]
        for bound, count in zip(BUCKETS, entry["buckets"]):
            duration.append(("_bucket", [("hook", hook), ("le", _value(float(bound)))], count))
        duration.append(("_bucket", [("hook", hook), ("le", "+Inf")], entry["count"]))
        duration.append(("_sum", [("hook", hook)], float(entry["sum"])))
        duration.append(("_count", [("hook", hook)], entry["count"]))
        for outcome in OUTCOMES:
            outcomes.append(("", [("hook", hook), ("outcome", outcome)], entry["outcomes"][outcome]))
    by_phase = phases(states)
    holding = by_phase["setup"] + by_phase["ready"]
    teardown_failures = counters["hooks"]["epilogue"]["outcomes"]["failed"] + counters["gc_teardown_failures"]
    return [
        ("jobroot_hook_duration_seconds", "histogram",
         "Time a prologue or epilogue of the hook command took.", duration),
        ("jobroot_hook_runs_total", "counter",
         "Prologue and epilogue runs by how they ended (ok, refused, failed).", outcomes),
        ("jobroot_teardown_failures_total", "counter",
         "Job teardowns (epilogue or gc) that left something behind.", [("", [], teardown_failures)]),
        ("jobroot_roots", "gauge", "Job roots on the node by phase of their saved state.",
         [("", [("phase", p)], by_phase[p]) for p in PHASES]),
        ("jobroot_slots", "gauge", "Job slots of the node.", [("", [], slots)]),
        ("jobroot_slots_free", "gauge", "Job slots no job root holds.", [("", [], max(slots - holding, 0))]),
    ]


def node_families(leaked, gc_errors, last_success, pool, images):
    """The families of ``jobroot_node.prom`` (see :func:`render`).

    *leaked*: ``{kind: count}`` of what no known job owns after gc
    (``volume``, ``mount``); *gc_errors*: the jobs gc could not tear down in
    its last run (int); *last_success*: Unix time (float) of the last gc run
    without errors, or None if there was none since boot; *pool*: None
    (directory mode) or ``{"size_bytes", "used_ratio", "metadata_ratio"}``
    (``metadata_ratio`` None for thick job volumes; the pool's samples carry
    the label ``provisioning`` ``thin`` or ``thick``); *images*: name ->
    ``{"version", "glibc", "min_kernel"}`` (images.allow_listed_userland).
    """
    families = [
        ("jobroot_leaked_items", "gauge",
         "Volumes and mounts under the job-root base that no known job owns.",
         [("", [("kind", kind)], leaked[kind]) for kind in sorted(leaked)]),
        ("jobroot_gc_stale_jobs", "gauge",
         "Jobs whose teardown failed in the last gc run (gc retries them).", [("", [], gc_errors)]),
    ]
    if last_success is not None:
        families.append(("jobroot_gc_last_success_timestamp_seconds", "gauge",
                         "Unix time of the last gc run that ended without errors.",
                         [("", [], float(last_success))]))
    if pool is not None:
        kind = [("provisioning", "thin" if pool.get("metadata_ratio") is not None else "thick")]
        families.append(("jobroot_pool_size_bytes", "gauge", "Job space of the thin pool or the volume group.",
                         [("", kind, pool["size_bytes"])]))
        families.append(("jobroot_pool_data_used_ratio", "gauge",
                         "Share of the job space in use (0-1): thin pool data, or the extents of the job "
                         "volumes (thick: 1 when every slot holds a job).",
                         [("", kind, float(pool["used_ratio"]))]))
        if pool.get("metadata_ratio") is not None:
            families.append(("jobroot_pool_metadata_used_ratio", "gauge",
                             "Share of the thin pool's metadata in use (0-1).",
                             [("", kind, float(pool["metadata_ratio"]))]))
    families.append(("jobroot_image_info", "gauge",
                     "Images on the allow-list: the current version and the recorded glibc and minimum kernel.",
                     [("", [("image", name), ("version", info.get("version") or ""),
                            ("glibc", info.get("glibc") or ""), ("min_kernel", info.get("min_kernel") or "")], 1)
                      for name, info in sorted(images.items()) if isinstance(info, dict)]))
    return families


def pool_use(report, thin_pool, tag):
    """Return the job space's use from an ``lvm fullreport`` *report* (lvm.fullreport), or None.

    Thin (*thin_pool* set): ``size_bytes`` of the pool, ``used_ratio`` and
    ``metadata_ratio`` from its ``data_percent`` and ``metadata_percent``
    (lvs(8), percent of the pool). Thick: the VG's free space plus the job
    volumes (LVs with LVM tag *tag*) as the size, their share of it as ``used_ratio``,
    ``metadata_ratio`` None. None if the pool or the VG is missing.
    """
    if report is None:
        return None
    vg = report["vg"][0]
    if thin_pool:
        row = next((lv for lv in report.get("lv", []) if lv["lv_name"] == thin_pool), None)
        if row is None:
            return None
        return {"size_bytes": int(row["lv_size"]),
                "used_ratio": float(row.get("data_percent") or 0) / 100,
                "metadata_ratio": float(row.get("metadata_percent") or 0) / 100}
    used = sum(int(lv["lv_size"]) for lv in report.get("lv", []) if tag in lv["lv_tags"].split(","))
    size = int(vg["vg_free"]) + used
    return {"size_bytes": size, "used_ratio": used / size if size else 0.0, "metadata_ratio": None}


def saved_states(cfg):
    """Return ``{job key: saved state}`` of the jobs with a state file in the run directory.

    *cfg*: the node config. Reads only ``<run_dir>/jobs`` (no LVM call: a
    hook pays for this at its end); temp files and names that are not job
    keys are skipped, an unreadable state is None.
    """
    from ansible_collections.hpc.jobroot.plugins.module_utils import lifecycle, rundir, validate
    from ansible_collections.hpc.jobroot.plugins.module_utils.errors import ValidationError
    try:
        names = os.listdir(rundir.folder(cfg.run_dir, rundir.JOBS))
    except FileNotFoundError:
        return {}
    states = {}
    for name in names:
        if not name.endswith(rundir.STATE_SUFFIX) or atomic.is_temp(name):
            continue
        key = name[:-len(rundir.STATE_SUFFIX)]
        try:
            validate.job_key(key)
        except ValidationError:
            continue
        states[key] = lifecycle.load_state(cfg, key)
    return states


def node_facts(status, gc_report):
    """Return the keyword arguments of :func:`node_families` but ``last_success``.

    *status*: lifecycle.status after a gc run (its ``leaked``, ``pool`` and
    ``images``); *gc_report*: that run's report (job key -> actions, or a
    str starting with ``error`` for a job it could not tear down).
    """
    images = status["images"] if "error" not in status["images"] else {}
    return {"leaked": {kind: len(items) for kind, items in status["leaked"].items()},
            "gc_errors": sum(1 for v in gc_report.values() if isinstance(v, str) and v.startswith("error")),
            "pool": status["pool"], "images": images}


def record_hook(cfg, hook, seconds, outcome):
    """Count one hook run and rewrite ``jobroot_hooks.prom``; nothing if ``cfg.metrics_dir`` is empty.

    *cfg*: the node config; *hook*, *seconds*, *outcome* as
    :func:`count_hook`. The counters are read, changed and saved under
    ``<run_dir>/metrics.lock`` (10 s at most), so two hooks ending together
    both count. Raises OSError, JobrootError (lock timeout) or ValueError;
    the hook command logs them and goes on.
    """
    if not cfg.metrics_dir:
        return
    states = saved_states(cfg)
    with lock.Lock(os.path.join(cfg.run_dir, "metrics.lock"), timeout=10.0):
        counters = load_counters(cfg.run_dir)
        count_hook(counters, hook, seconds, outcome)
        _write(cfg, counters, states)


def record_gc(cfg, gc_report):
    """After a gc run: count its failed teardowns and rewrite both files; nothing if ``cfg.metrics_dir`` is empty.

    *gc_report*: lifecycle.gc's report; the rest is read with
    lifecycle.status. The time of the last gc run without errors is kept
    with the counters. Raises OSError, JobrootError or ValueError.
    """
    if not cfg.metrics_dir:
        return
    import time
    from ansible_collections.hpc.jobroot.plugins.module_utils import lifecycle
    status = lifecycle.status(cfg)
    node = node_facts(status, gc_report)
    with lock.Lock(os.path.join(cfg.run_dir, "metrics.lock"), timeout=10.0):
        counters = load_counters(cfg.run_dir)
        counters["gc_teardown_failures"] += node["gc_errors"]
        if node["gc_errors"] == 0:
            counters["gc_last_success"] = time.time()
        _write(cfg, counters, status["jobs"])
        atomic.write(os.path.join(cfg.metrics_dir, NODE_FILE),
                     render(node_families(last_success=counters["gc_last_success"], **node)))


def _write(cfg, counters, states):
    atomic.write(os.path.join(cfg.run_dir, COUNTERS_FILE), json.dumps(counters, sort_keys=True) + "\n", 0o600)
    atomic.write(os.path.join(cfg.metrics_dir, HOOKS_FILE), render(hook_families(counters, states, cfg.slots)))
