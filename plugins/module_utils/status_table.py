# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The readable form of ``jobroot status``: what a node holds, at a glance.

``jobroot status`` prints this; ``jobroot status --json`` prints the dict
it is made from (lifecycle.status). One row per job (id, user, image,
phase, age, volume size and use, mounts), then the slots, the pool (data
and metadata use of a thin pool), the pinned image versions, the images
on the allow-list, and anything leaked or stale, each such line starting
with ``!`` so that ``grep '^!'`` finds them.
"""

from __future__ import annotations


def size(n):
    """Return byte count *n* (int, or None) as a short binary size: ``512 B``, ``1.5 GiB``; ``-`` for None."""
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return ("%d %s" if unit == "B" else "%.1f %s") % (n, unit)
        n /= 1024.0
    return "-"  # not reached


def age(seconds):
    """Return *seconds* (int) as ``45s``, ``12m03s``, ``5h02m`` or ``3d04h``."""
    if seconds < 60:
        return "%ds" % seconds
    if seconds < 3600:
        return "%dm%02ds" % divmod(seconds, 60)
    if seconds < 86400:
        return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)
    return "%dd%02dh" % (seconds // 86400, seconds % 86400 // 3600)


def _columns(rows):
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def render(status):
    """Return the readable status (str, lines ending in newlines) of a lifecycle.status dict *status*."""
    lines = []
    rows = [("JOB", "USER", "IMAGE", "PHASE", "AGE", "SIZE", "USED", "MOUNTS")]
    for key, state in sorted(status["jobs"].items()):
        if not state:
            continue
        use = status["usage"].get(key, {})
        used = use.get("used_bytes")
        total = state.get("size_bytes")
        shown_use = "-" if used is None else (
            "%s (%d%%)" % (size(used), 100 * used // total) if total else size(used))
        rows.append((str(state.get("job_id", key)), str(state.get("user", "-")), str(state.get("image", "-")),
                     str(state.get("phase", "-")), age(use.get("age_seconds", 0)), size(total), shown_use,
                     str(use.get("mounts", 0))))
    if len(rows) > 1:
        lines += _columns(rows)
    else:
        lines.append("no jobs")
    slots = status["slots"]
    lines.append("slots: %d of %d free" % (slots["free"], slots["total"]))
    pool = status["pool"]
    if pool is not None:
        if pool.get("metadata_ratio") is not None:
            lines.append("pool: thin, %s, data %.0f%% used, metadata %.0f%% used" % (
                size(pool["size_bytes"]), 100 * pool["used_ratio"], 100 * pool["metadata_ratio"]))
        else:
            lines.append("pool: thick, %s of job space, %.0f%% held by job volumes" % (
                size(pool["size_bytes"]), 100 * pool["used_ratio"]))
    for key, path in sorted(status["pins"].items()):
        lines.append("pinned: job %s -> %s" % (key, path))
    images = status["images"]
    if "error" in images:
        lines.append("! images: the allow-list cannot be read: %s" % images["error"])
    else:
        for name, info in sorted(images.items()):
            detail = ", ".join("%s %s" % (label, info[k]) for label, k in
                               (("version", "version"), ("glibc", "glibc"), ("min kernel", "min_kernel"))
                               if info.get(k))
            lines.append("image: %s (%s)%s" % (name, info.get("path"), ": " + detail if detail else ""))
    for name in status["leaked"]["volume"]:
        lines.append("! leaked volume: %s (no job state names it; jobroot gc --all at boot, or lvremove)" % name)
    for point in status["leaked"]["mount"]:
        lines.append("! leaked mount: %s (no job state names its root)" % point)
    for key in status["stale"]:
        lines.append("! stale: job %s still in setup after %s: its prologue died (jobroot gc tears it down)"
                     % (key, age(status["usage"][key]["age_seconds"])))
    for key, state in sorted(status["jobs"].items()):
        if not state:
            lines.append("! no state: job %s: the node holds something of it (a volume, root or run file) "
                         "but no state; jobroot gc removes it once the batch system no longer runs it" % key)
    return "\n".join(lines) + "\n"
