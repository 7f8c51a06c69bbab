# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turn bench/run.py's results into BENCHMARKS.md and PNG plots, and check their shape.

``check(results, questions)`` returns a list of problems (empty when every
question asked for has well-formed, finite, positive numbers); it never
judges a time. ``write(results, json_path, md_dir, png_dir)`` writes
``BENCHMARKS.md`` into *md_dir* and the plots into *png_dir*.
"""

from __future__ import annotations

import math
import os
import statistics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Issue 18: both phases together at most 0.9x the floor, each at most 1.0x; the
# epilogue flat in size and root count (1.2x); a second site.yml run at most
# 0.25x the first.
# Question 7's configurations: A plain Slurm, B the job container plugin alone, C hpc.jobroot
Q7_CONFIGS = ("plain", "container", "jobroot")
Q7_NAMES = {"plain": "A: plain Slurm", "container": "B: job container plugin alone",
            "jobroot": "C: hpc.jobroot (slurm_node role)"}
TARGETS = {"q1": 0.9, "q1_phase": 1.0, "q2": 5.0, "q3_size": 1.2, "q3_count": 1.3, "q3_epilogue": 1.2,
           "q4_seq": 0.95, "rss_mib": 30.0, "q6": 0.25}


# --- checking -----------------------------------------------------------------------------


def _nums(values, what, problems, count=None):
    if not isinstance(values, list) or not values:
        problems.append("%s: no values" % what)
        return
    if count is not None and len(values) != count:
        problems.append("%s: %d values, expected %d" % (what, len(values), count))
    for v in values:
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v <= 0:
            problems.append("%s: bad value %r" % (what, v))
            return


def check(res, questions):
    """Return a list of problems with the shape of *res* for the *questions* (set of "q1".."q7")."""
    p = []
    if "q1" in questions:
        q = res.get("q1") or {}
        for who in ("hook", "floor"):
            for phase in ("prologue", "epilogue"):
                _nums(q.get(who, {}).get(phase), "q1 %s %s" % (who, phase), p, q.get("reps"))
        _nums(q.get("hook_rss_tree_kib"), "q1 hook RSS", p)
        _nums(list((q.get("hook_self_rss_kib") or {}).values()), "q1 hook self RSS", p, 2)
        if not q.get("anatomy") or not q.get("floor_anatomy"):
            p.append("q1: no anatomy")
        ps = q.get("python_start") or {}
        _nums([ps.get("bare"), ps.get("prologue"), ps.get("epilogue")], "q1 python start-up", p, 3)
    if "q2" in questions:
        q = res.get("q2") or {}
        for who in ("hook", "ansible"):
            for phase in ("prologue", "epilogue"):
                _nums(q.get(who, {}).get(phase), "q2 %s %s" % (who, phase), p, q.get("reps"))
        if "ansible" not in str(q.get("ansible_version", "")).lower():
            p.append("q2: no ansible version")
    if "q3" in questions:
        q = res.get("q3") or {}
        sizes = q.get("sizes_gib") or []
        if len(sizes) < 2:
            p.append("q3: fewer than two sizes")
        for size in sizes:
            _nums(q.get("by_size", {}).get(str(size), {}).get("prologue"), "q3 %d GiB" % size, p, q.get("reps"))
        rows = q.get("by_count") or []
        if len(rows) != q.get("roots") or [r.get("n") for r in rows] != list(range(1, len(rows) + 1)):
            p.append("q3: by_count rows do not run 1..%s" % q.get("roots"))
        _nums([r.get("prologue") for r in rows], "q3 count prologue", p)
        _nums([r.get("epilogue") for r in rows], "q3 count epilogue", p)
    if "q4" in questions:
        q = res.get("q4") or {}
        for target in ("jobroot", "bare", "thin", "snapshot"):
            _nums(q.get("seq_mib_s", {}).get(target), "q4 seq %s" % target, p, q.get("reps"))
            _nums(q.get("files_s", {}).get(target), "q4 files %s" % target, p, q.get("reps"))
    if "q8" in questions:
        q = res.get("q8") or {}
        for kind in ("plain", "encrypted"):
            for key in ("seq_mib_s", "prologue_s", "epilogue_s"):
                _nums(q.get(key, {}).get(kind), "q8 %s %s" % (key, kind), p, q.get("reps"))
    if "q5" in questions:
        q = res.get("q5") or {}
        for kind in ("full", "link_dest"):
            k = q.get(kind) or {}
            _nums([k.get("stored_bytes"), k.get("bytes_sent"), k.get("literal_data")], "q5 %s bytes" % kind, p)
            _nums(k.get("seconds"), "q5 %s seconds" % kind, p, q.get("reps"))
        swaps = q.get("swap") or []
        if len(swaps) < 2:
            p.append("q5: fewer than two image sizes for the swap")
        _nums([s.get("switch_median_s") for s in swaps] + [s.get("tool_median_s") for s in swaps], "q5 swap", p)
    if "q6" in questions:
        q = res.get("q6") or {}
        runs = [q.get("first") or {}] + list(q.get("second") or [])
        if q.get("source") == "molecule":  # --quick: molecule's phase times, no CPU seconds
            _nums([r.get("wall_s") for r in runs], "q6 molecule converge and idempotence", p, 2)
        else:
            _nums([r.get("wall_s") for r in runs] + [r.get("cpu_s") for r in runs], "q6 site.yml runs", p,
                  2 * (1 + (q.get("second_reps") or 0)))
        for variant in ("none", "synchronize", "unarchive") if q.get("variant_reps") else ():
            _nums([r.get("wall_s") for r in (q.get("variants") or {}).get(variant, [])],
                  "q6 install %s" % variant, p, q.get("variant_reps"))
    if "q7" in questions:
        q = res.get("q7") or {}
        for cfg in Q7_CONFIGS:
            for key in ("srun", "srun_idle", "sbatch", "sbatch_running", "switch"):
                _nums((q.get(cfg) or {}).get(key), "q7 %s %s" % (cfg, key), p, q.get("reps"))
        for key in ("prolog", "epilog") if "anatomy_error" not in q else ():
            _nums((q.get("anatomy") or {}).get(key), "q7 timed %s" % key, p)
    return p


# --- numbers ------------------------------------------------------------------------------


def med(values):
    return statistics.median(values)


def spread(values):
    """'min-max' of *values* as text."""
    return "%s-%s" % (fmt_s(min(values)), fmt_s(max(values)))


def fmt_s(value):
    if value >= 100:
        return "%.0f" % value
    if value >= 10:
        return "%.1f" % value
    return "%.2f" % value


def ratio(a, b):
    return a / b if b else float("nan")


def pair_ratios(a_list, b_list):
    return [a / b for a, b in zip(a_list, b_list) if b]


def verdict(met):
    return "**met**" if met else "**missed**"


def mib(n):
    return n / 1048576.0


# --- the report ---------------------------------------------------------------------------


def _env_section(res):
    h = res.get("host", {})
    g = (res.get("setup") or {}).get("env", {})
    vg = (res.get("setup") or {}).get("vg", {})
    plan = res.get("plan", {})
    args = plan.get("disks", [])
    opt = dict(zip(args[::2], args[1::2]))
    disks = "%s x %s" % (opt.get("--disks", "?"), opt.get("--disk-size", "?"))
    if "guest_boot_s" not in res and (res.get("guest_info") or {}).get("data_disks"):
        # --guest: a running guest's disks, not this plan's
        disks = "%d (a running guest's, %s)" % (len(res["guest_info"]["data_disks"]), res.get("guest_name", "--guest"))
    lines = ["## Environment", "",
             "| | |", "|---|---|",
             "| host | %s, %s cores, %d MiB RAM, %s, kernel %s (shared with other work) |" % (
                 h.get("cpu_model"), h.get("cpus"), h.get("mem_mib", 0), h.get("os"), h.get("kernel")),
             "| emulator | %s, **software emulation (TCG, no KVM)**, 2 virtual CPUs |" % h.get("qemu")]
    if g:
        lines += [
            "| guest | Debian %s (%s), kernel %s, %s CPUs (%s), %d MiB RAM |" % (
                g.get("debian"), g.get("suite") or res.get("guest_suite", "?"), g.get("kernel"), g.get("cpus"),
                g.get("cpu_model"), g.get("mem_mib", 0)),
            "| guest tools | %s; e2fsprogs %s; util-linux %s; %s; Python %s |" % (
                g.get("lvm"), g.get("mkfs_ext4"), g.get("util_linux"), g.get("fio"), g.get("python")),
            "| data disks | %s raw sparse files on the host (virtio-blk, cache=unsafe), one VG `%s` "
            "of %.0f GiB, 4 MiB extents |" % (disks, vg.get("vg_name"), (vg.get("vg_size") or 0) / 2 ** 30)]
    if res.get("q2"):
        lines.append("| Ansible (question 2) | %s, the project's pinned version, copied from its .venv "
                     "into the guest (no network there); run on the guest's Python |"
                     % res["q2"].get("ansible_version"))
    if not g and res.get("guest_suite"):  # no setup ran (e.g. --only q7)
        lines.append("| guest | Debian %s |" % res["guest_suite"])
    if res.get("q7"):
        lines.append("| Slurm (questions 6 and 7) | %s from the guest's Debian packages, as "
                     "playbooks/site.yml installs it; `%s` |" % (
                         res["q7"].get("slurm"), res["q7"].get("conf_lines", {}).get("JobContainerType")
                         or res["q7"].get("conf_lines", {}).get("NamespaceType") or "no job container plugin"))
    lines.append("| host tools (question 5) | %s; Python %s |" % (h.get("rsync"), h.get("python")))
    lines += ["", "Questions 1-4 and 7 ran inside the guest on real LVM; question 5 ran on the host "
              "(rsync and rename(2) need no device-mapper), natively; question 6 from the host (the "
              "Ansible controller) against the guest.", ""]
    return lines


def _q1(res, plots):
    q = res["q1"]
    hook, floor = q["hook"], q["floor"]
    tot_h = [a + b for a, b in zip(hook["prologue"], hook["epilogue"])]
    tot_f = [a + b for a, b in zip(floor["prologue"], floor["epilogue"])]
    r_pro = ratio(med(hook["prologue"]), med(floor["prologue"]))
    r_epi = ratio(med(hook["epilogue"]), med(floor["epilogue"]))
    r_tot = ratio(med(tot_h), med(tot_f))
    lines = ["## 1. Prologue and epilogue against the floor", "",
             "The hook command (`/usr/libexec/hpc-jobroot/jobroot prologue|epilogue --batch-system slurm`,"
             " installed as the job_hooks role installs it, `#!/usr/bin/python3 -I`) against "
             "[bench/floor.sh](bench/floor.sh), a plain shell script doing the same work with the same "
             "options: lvcreate (1 GiB, tagged), mkfs.ext4 (the library's options), mount "
             "`noatime,nodev,nosuid`, tmp and var/tmp, the same %d mounts (read-only binds of the host image "
             "directories, symlinks for the usr-merged ones, proc, sysfs, /dev, a private /dev/shm, "
             "the user's home) with the same propagation, the Slurm record; then `umount -R`, lvremove, "
             "rmdir. %d alternating pairs (hook, floor, hook, floor ...) after %s warm-up pair; each "
             "time is one process, measured in the guest around it." % (
                 q.get("mount_count", 0), q["reps"], q.get("warmup", "one")),
             "",
             "Both left identical mount trees (mount point, type, flags, propagation): %s." % (
                 "yes" if q.get("same_mounts") else "**no**, they differ in: %s" % _shape_diff(q)),
             "",
             "| phase | hook median (s) | floor median (s) | ratio hook/floor | ratio per pair (min-max) |",
             "|---|---|---|---|---|"]
    for phase, a, b, r in (("prologue", hook["prologue"], floor["prologue"], r_pro),
                           ("epilogue", hook["epilogue"], floor["epilogue"], r_epi),
                           ("both", tot_h, tot_f, r_tot)):
        pr = pair_ratios(a, b)
        lines.append("| %s | %s | %s | **%.2f** | %.2f-%.2f |" % (
            phase, fmt_s(med(a)), fmt_s(med(b)), r, min(pr), max(pr)))
    lines += ["", "Target: both at most %.2fx the floor, each phase at most %.2fx. Prologue %.2fx (%s), "
              "epilogue %.2fx (%s), both %.2fx (%s)." % (
                  TARGETS["q1"], TARGETS["q1_phase"], r_pro, verdict(r_pro <= TARGETS["q1_phase"]), r_epi,
                  verdict(r_epi <= TARGETS["q1_phase"]), r_tot, verdict(r_tot <= TARGETS["q1"])), ""]
    lines += _anatomy(q)
    lines += _rss(q)[0]
    lines += ["", "![Question 1 and 2](%s)" % plots["q12"], ""]
    return lines, r_tot, r_pro, r_epi


def _shape_diff(q):
    m = q.get("mounts") or {}
    hook = [tuple(x) for x in m.get("hook", [])]
    other = [tuple(x) for x in m.get("floor", [])]
    only_h = [x for x in hook if x not in other]
    only_o = [x for x in other if x not in hook]
    return "only in the hook's tree %s; only in the floor's %s" % (
        ", ".join("`%s`" % " ".join(x) for x in only_h) or "nothing",
        ", ".join("`%s`" % " ".join(x) for x in only_o) or "nothing")


def _avg_anatomy(runs, phase):
    keys = sorted({k for r in runs for k in r[phase]["spent"]})
    spent = {k: med([r[phase]["spent"].get(k, 0.0) for r in runs]) for k in keys}
    count = {k: med([r[phase].get("count", {}).get(k, 0) for r in runs]) for k in keys}
    total = med([r[phase]["total"] for r in runs])
    return spent, count, total


def _anatomy(q):
    runs, fruns = q.get("anatomy") or [], q.get("floor_anatomy") or []
    if not runs or not fruns:
        return []
    ps = q.get("python_start", {})
    lines = ["### Where the time goes", "",
             "The library's prologue and epilogue run in one Python process with its building blocks "
             "timed (%d runs, medians), next to a traced floor run (bash `set -x` with "
             "`$EPOCHREALTIME`)." % len(runs), ""] + _python_start(ps)
    if _python_left(q):
        lines += [_python_left(q), ""]
    for phase in ("prologue", "epilogue"):
        spent, count, total = _avg_anatomy(runs, phase)
        fspent = {k: med([r[phase]["spent"].get(k, 0.0) for r in fruns]) for k in
                  sorted({k for r in fruns for k in r[phase]["spent"]})}
        ftotal = med([r[phase]["total"] for r in fruns])
        lines += ["%s, library in-process: %s s in all; floor: %s s in all." % (
            phase.capitalize(), fmt_s(total), fmt_s(ftotal)), "",
            "| library step | calls | s | | floor command | s |", "|---|---|---|---|---|---|"]
        lib_rows = sorted(spent.items(), key=lambda kv: -kv[1])
        lib_rows.append(("(other Python work)", total - sum(spent.values())))
        floor_rows = sorted(fspent.items(), key=lambda kv: -kv[1])
        for i in range(max(len(lib_rows), len(floor_rows))):
            a = lib_rows[i] if i < len(lib_rows) else ("", None)
            b = floor_rows[i] if i < len(floor_rows) else ("", None)
            lines.append("| %s | %s | %s | | %s | %s |" % (
                a[0], ("%g" % count[a[0]]) if a[0] in count else "", fmt_s(a[1]) if a[1] is not None else "",
                b[0], fmt_s(b[1]) if b[1] is not None else ""))
        lines.append("")
    return lines


def _python_start(ps):
    """Lines on Python start-up measured apart, and what is left of the hook's cost beyond it."""
    if not ps.get("prologue"):
        return []
    bare = ps["bare"]
    mods = ps.get("modules", {})
    return ["Python start-up, measured apart (medians): a bare `python3 -I -c pass` %s s; one that imports "
            "exactly the modules the hook imports for its prologue (%s modules beyond a bare start's, listed by "
            "`python3 -X importtime` on a real prologue) %s s, for its epilogue (%s modules) %s s. So the imports cost "
            "%s s per prologue and %s s per epilogue, and Python itself %s s per call; a shell script pays "
            "neither, but bash's own start is not free either (the floor's time includes it)." % (
                fmt_s(bare), mods.get("prologue", "?"), fmt_s(ps["prologue"]), mods.get("epilogue", "?"),
                fmt_s(ps["epilogue"]), fmt_s(max(ps["prologue"] - bare, 0.0)),
                fmt_s(max(ps["epilogue"] - bare, 0.0)), fmt_s(bare)), ""]


def _python_left(q):
    """'What is left': the hook's time beyond Python start-up and imports, against the floor's."""
    ps = q.get("python_start") or {}
    out = []
    for phase in ("prologue", "epilogue"):
        if not ps.get(phase):
            return ""
        work = med(q["hook"][phase]) - ps[phase]
        floor_s = med(q["floor"][phase])
        out.append("%s %s s (the floor's whole %s: %s s)" % (phase, fmt_s(work), phase, fmt_s(floor_s)))
    return ("What is left after Python start-up and imports: %s; that is the per-job work itself "
            "(LVM commands, mkfs, mounts), which the shell floor does too." % "; ".join(out))


def _lvm_extra(q, phase):
    """(names, seconds) of LVM report commands the library runs that the floor does not."""
    runs = q.get("anatomy") or []
    if not runs:
        return [], 0.0
    spent, count = _avg_anatomy(runs, phase)[:2]
    names = [k.split(" ", 1)[1] for k in spent if k.startswith("lvm.run ")
             and k.split(" ", 1)[1] not in ("lvcreate", "lvremove", "mkfs.ext4", "mkfs.xfs")]
    secs = sum(spent["lvm.run " + n] for n in names)
    return ["%s x%g" % (n, count["lvm.run " + n]) for n in names], secs


def _rss(q):
    self_rss = q.get("hook_self_rss_kib", {})
    tree = q.get("hook_rss_tree_kib", [])
    peak = max(self_rss.values()) / 1024.0 if self_rss else float("nan")
    return ["### Peak memory of the hook command", "",
            "| | prologue | epilogue |", "|---|---|---|",
            "| the hook's own Python process (getrusage RUSAGE_SELF at exit) | %.1f MiB | %.1f MiB |" % (
                self_rss.get("prologue", 0) / 1024.0, self_rss.get("epilogue", 0) / 1024.0),
            "| largest of the hook and every program it ran (wait4 ru_maxrss: lvcreate, mkfs ...), "
            "median of the runs | %.1f MiB | |" % (med(tree) / 1024.0 if tree else 0),
            "| same for the floor script | %.1f MiB | |" % (
                med(q.get("floor_rss_tree_kib") or [0]) / 1024.0),
            "",
            "Aim: under %.0f MiB. The hook's own process peaks at %.1f MiB: %s. The larger figure "
            "in the second row is LVM's (lvcreate locks its memory), which a shell script pays as "
            "well." % (TARGETS["rss_mib"], peak, verdict(peak < TARGETS["rss_mib"])), ""], peak


def _q2(res):
    q = res["q2"]
    hook, ans = q["hook"], q["ansible"]
    tot_h = [a + b for a, b in zip(hook["prologue"], hook["epilogue"])]
    tot_a = [a + b for a, b in zip(ans["prologue"], ans["epilogue"])]
    sp = {"prologue": ratio(med(ans["prologue"]), med(hook["prologue"])),
          "epilogue": ratio(med(ans["epilogue"]), med(hook["epilogue"])),
          "both": ratio(med(tot_a), med(tot_h))}
    lines = ["## 2. The hook path against ad-hoc Ansible", "",
             "The same per-job work as three ad-hoc calls per phase, run in the guest "
             "(%s): prologue `ansible localhost -m hpc.jobroot.lvm_jobvol` (1 GiB), "
             "`-m hpc.jobroot.bind_tree` (the same mounts the hook makes, computed by "
             "`lifecycle.job_mounts`), `-m hpc.jobroot.named_chroot` (pin and Slurm record); epilogue the "
             "same three with `state=absent`, in reverse. Implicit localhost, local connection, no "
             "facts (ad-hoc gathers none). %d alternating rounds (hook, Ansible, ...) after %s "
             "warm-up round of Ansible. Both left identical mount trees: %s." % (
                 q.get("ansible_version"), q["reps"], q.get("warmup", "one"),
                 "yes" if q.get("same_mounts") else "**no**"), "",
             "| phase | hook median (s) | 3 ansible calls median (s) | speed-up (ansible/hook) |",
             "|---|---|---|---|"]
    for phase, a, b in (("prologue", hook["prologue"], ans["prologue"]),
                        ("epilogue", hook["epilogue"], ans["epilogue"]), ("both", tot_h, tot_a)):
        lines.append("| %s | %s | %s | **%.1fx** |" % (phase, fmt_s(med(a)), fmt_s(med(b)), sp[phase]))
    per = q.get("ansible_per_module") or []
    if per:
        lines += ["", "Per call (median s): " + "; ".join(
            "%s %s %s" % (phase, mod.split(".")[-1], fmt_s(med([p[phase][mod] for p in per])))
            for phase in ("prologue", "epilogue") for mod in per[0][phase]) + "."]
    lines += ["", "Target: the hook at least %.0fx faster. Measured %.1fx: %s." % (
        TARGETS["q2"], sp["both"], verdict(sp["both"] >= TARGETS["q2"])), ""]
    return lines, sp["both"]


def _q3(res, plots):
    q = res["q3"]
    sizes = q["sizes_gib"]
    by = q["by_size"]
    base = med(by[str(sizes[0])]["prologue"])
    lines = ["## 3. Scaling", "",
             "### Prologue time against volume size", "",
             "Thick LVs on the sparse data disks, one hook prologue and epilogue per size, the sizes "
             "rotated in each of %d rounds." % q["reps"], "",
             "| LV size (GiB) | prologue median (s) | ratio to %d GiB | epilogue median (s) |" % sizes[0],
             "|---|---|---|---|"]
    for size in sizes:
        pro = med(by[str(size)]["prologue"])
        lines.append("| %d | %s | %.2f | %s |" % (
            size, fmt_s(pro), ratio(pro, base), fmt_s(med(by[str(size)]["epilogue"]))))
    big = ratio(med(by[str(sizes[-1])]["prologue"]), base)
    big_epi = ratio(med(by[str(sizes[-1])]["epilogue"]), med(by[str(sizes[0])]["epilogue"]))
    rows = q["by_count"]
    n = len(rows)
    k = max(1, min(3, n // 4))
    first = med([r["prologue"] for r in rows[:k]])
    last = med([r["prologue"] for r in rows[-k:]])
    r_count = ratio(rows[-1]["prologue"], rows[0]["prologue"])
    r_count_k = ratio(last, first)
    epi_k = ratio(med([r["epilogue"] for r in rows[-k:]]), med([r["epilogue"] for r in rows[:k]]))
    lines += ["", "Target: prologue at %d GiB at most %.1fx the time at %d GiB. Measured %.2fx: %s. "
              "Epilogue at %d GiB at most %.1fx: %.2fx: %s." % (
                  sizes[-1], TARGETS["q3_size"], sizes[0], big, verdict(big <= TARGETS["q3_size"]),
                  sizes[-1], TARGETS["q3_epilogue"], big_epi, verdict(big_epi <= TARGETS["q3_epilogue"])), "",
              "### Prologue time against the number of roots already present", "",
              "Roots 1 to %d made one after the other (1 GiB each) and kept, then removed in reverse; %d "
              "mountinfo lines with all present. %d such sweeps; each time below is the median over the "
              "sweeps at that count." % (n, q.get("mountinfo_lines_at_max", 0), q.get("count_reps", 1)), "",
              "| root number | roots present before | prologue (s) | epilogue (s) |", "|---|---|---|---|"]
    show = sorted({1, 2, 4, 8, 16, 32, 48, n} & set(range(1, n + 1)))
    for i in show:
        r = rows[i - 1]
        lines.append("| %d | %d | %s | %s |" % (i, i - 1, fmt_s(r["prologue"]), fmt_s(r["epilogue"])))
    lines += ["", "Target: the %dth root at most %.1fx the first. Measured %.2fx (medians at each count; "
              "the median of the last %d against the first %d: %.2fx): %s. Its epilogue at most %.1fx the "
              "first's: %.2fx: %s." % (
                  n, TARGETS["q3_count"], r_count, k, k, r_count_k,
                  verdict(r_count_k <= TARGETS["q3_count"]), TARGETS["q3_epilogue"], epi_k,
                  verdict(epi_k <= TARGETS["q3_epilogue"])), "",
              "![Question 3](%s)" % plots["q3"], ""]
    return lines, big, r_count_k, big_epi, epi_k


def _q4(res, plots):
    q = res["q4"]
    names = {"jobroot": "job root (hook prologue; fio run chrooted, in /tmp)",
             "bare": "bare LV, mounted directly",
             "thin": "thin LV (pool with --errorwhenfull y, zeroing as lvm.conf default)",
             "snapshot": "classic snapshot of a %d GiB origin (COW %d GiB, default chunk size)" % (
                 q["lv_gib"], q["snapshot_cow_gib"])}
    seq = {t: med(v) for t, v in q["seq_mib_s"].items()}
    files = {t: med(v) for t, v in q["files_s"].items()}
    lines = ["## 4. I/O inside the job root", "",
             "Each target is made fresh for each run (%d GiB, ext4 with the library's options, mounted "
             "`noatime,nodev,nosuid`), the four targets rotated in each of %d rounds." % (
                 q["lv_gib"], q["reps"]), "",
             "* sequential write: `%s`" % q["method"]["seq"],
             "* small files: %s" % q["method"]["small"], "",
             "| target | sequential write MiB/s (median) | ratio to bare LV | small files/s (median) | "
             "ratio to bare LV |", "|---|---|---|---|---|"]
    for t in ("jobroot", "bare", "thin", "snapshot"):
        lines.append("| %s | %.1f | %.2f | %.0f | %.2f |" % (
            names[t], seq[t], ratio(seq[t], seq["bare"]), files[t], ratio(files[t], files["bare"])))
    r_job = ratio(seq["jobroot"], seq["bare"])
    slow = ratio(seq["bare"], seq["snapshot"])
    slow_files = ratio(files["bare"], files["snapshot"])
    claim = ("reproduced" if slow >= 10 else "not reproduced" if slow < 5 else "partly reproduced")
    lines += ["", "Target: sequential write in the job root at least %.2fx a bare LV. Measured %.2fx: %s." % (
        TARGETS["q4_seq"], r_job, verdict(r_job >= TARGETS["q4_seq"])), "",
        "**The seed paper's claim** (writes on an LVM snapshot 10-25x slower): here sequential writes "
        "into a fresh snapshot ran %.1fx slower than on a bare LV, small-file creation %.1fx slower: "
        "the claim is %s on this setup." % (slow, slow_files, claim), "",
        "![Question 4](%s)" % plots["q4"], ""]
    return lines, r_job, slow


def _separate_run(res, question):
    """Lines saying *question* came from a run of its own (bench/merge_partial.py), or none."""
    alone = res.get("separate_runs", {}).get(question)
    if not alone:
        return []
    return ["Run on its own (`bench/run.py --only %s`, started %s, %.0f s, guest Debian %s), not in the "
            "same run as the other questions; merged into results.json by `bench/merge_partial.py`." % (
                question, alone["started"], alone["duration_s"], alone["guest_suite"]), ""]


def _q8(res):
    q = res["q8"]
    seq = {k: med(v) for k, v in q["seq_mib_s"].items()}
    pro = {k: med(v) for k, v in q["prologue_s"].items()}
    epi = {k: med(v) for k, v in q["epilogue_s"].items()}
    r_seq = ratio(seq["encrypted"], seq["plain"])
    pairs = ", ".join("%.2f" % r for r in pair_ratios(q["seq_mib_s"]["encrypted"], q["seq_mib_s"]["plain"]))
    added = pro["encrypted"] - pro["plain"]
    lines = ["## 8. Encrypted job roots", ""] + _separate_run(res, "q8")
    lines += ["Job roots made by the hook command with node.json `encrypt` false and true (dm-crypt plain, "
              "`aes-xts-plain64`, a 512-bit random key on cryptsetup's standard input), %d GiB each, "
              "alternating plain and encrypted in each of %d rounds." % (q["lv_gib"], q["reps"]), "",
              "* sequential write: `%s`" % q["method"]["seq"],
              "* prologue: %s" % q["method"]["prologue"], "",
              "| job root | sequential write MiB/s (median) | prologue s (median) | epilogue s (median) |",
              "|---|---|---|---|"]
    for kind in ("plain", "encrypted"):
        lines.append("| %s | %.1f | %s | %s |" % (kind, seq[kind], fmt_s(pro[kind]), fmt_s(epi[kind])))
    lines += ["", "Sequential write, encrypted against plain: %.2fx (pairwise ratios %s). The prologue takes "
              "%s s more encrypted (`cryptsetup open`), the epilogue %s s more (`cryptsetup close`). Under "
              "TCG the guest's AES runs in emulated software, not on AES-NI: expect a real node to lose "
              "less than this." % (
                  r_seq, pairs, fmt_s(added), fmt_s(epi["encrypted"] - epi["plain"])), ""]
    return lines, r_seq, added


def _q5(res):
    q = res["q5"]
    full, upd = q["full"], q["link_dest"]
    lines = ["## 5. Image update", "",
             "Image: %s; %d entries, %.1f MiB in regular files. A first version is a full copy; then "
             "%d of %d regular files (1%%) get new contents (%.1f MiB) and a second version is made "
             "(a) as a full copy and (b) as the job_image role makes it, `rsync %s "
             "--link-dest=<current version>`, alternating, %d rounds each." % (
                 q["tree"], q["image"]["entries"], mib(q["image"]["apparent_bytes"]), q["change"]["changed"],
                 q["change"]["files"], mib(q["change"]["changed_bytes"]), " ".join(q["rsync_options"]),
                 q["reps"]), "",
             "| second version | bytes stored (new blocks) | bytes sent by rsync | literal data | "
             "time median (s) |", "|---|---|---|---|---|"]
    for label, k in (("full copy", full), ("rsync --link-dest", upd)):
        lines.append("| %s | %.1f MiB | %.1f MiB | %.1f MiB | %s |" % (
            label, mib(k["stored_bytes"]), mib(k["bytes_sent"]), mib(k["literal_data"]), fmt_s(med(k["seconds"]))))
    lines += ["", "Ratios, --link-dest against a full copy: bytes stored %.3f (%.0fx less), bytes sent "
              "%.3f (%.0fx less), time %.2f." % (
                  ratio(upd["stored_bytes"], full["stored_bytes"]),
                  ratio(full["stored_bytes"], upd["stored_bytes"]),
                  ratio(upd["bytes_sent"], full["bytes_sent"]), ratio(full["bytes_sent"], upd["bytes_sent"]),
                  ratio(med(upd["seconds"]), med(full["seconds"]))),
              "", "Stored bytes count every inode of the new version not shared with the old one "
              "(directories included, which rsync always makes anew); rsync runs locally, so it sends "
              "changed files whole.", "",
              "### The atomic swap against image size", "",
              "`<base>/img` is switched between two versions of the same size with the role's own code "
              "(module_utils/images.py `switch`: a temporary symlink, rename(2), fsync of the directory), "
              "in-process, and as the role runs it (the `image_version` module with "
              "`state=switched`, a Python start included).", "",
              "| image (entries) | image (MiB) | switch median (us) | runs | role's tool median (ms) | runs |",
              "|---|---|---|---|---|---|"]
    for s in q["swap"]:
        lines.append("| %d | %.0f | %.0f | %d | %.0f | %d |" % (
            s["entries"], mib(s["apparent_bytes"]), s["switch_median_s"] * 1e6, s["switch_n"],
            s["tool_median_s"] * 1e3, s["tool_n"]))
    sw = [s["switch_median_s"] for s in q["swap"]]
    flat = "flat" if ratio(sw[-1], sw[0]) <= 2.0 else "not flat"
    lines += ["", "The images differ by hard-linked copies of the tree (sizes count every path). The switch "
              "is a rename(2) of a symlink plus an fsync of the image directory; nothing in it walks the "
              "image. Largest image against the empty one: %.2fx the switch time (**%s**); what varies is "
              "the fsync on the host's shared disk." % (ratio(sw[-1], sw[0]), flat), ""]
    return lines


def _q6_molecule(q):
    first, second = q["first"], q["second"][0]
    r6 = ratio(second["wall_s"], first["wall_s"])
    return ["## 6. The site-wide run (from molecule's phase times)", "",
            "Not run again here: taken from the molecule slurm scenario of the same run "
            "(%s, written %.0f s before): its converge is playbooks/site.yml on a fresh trixie guest, "
            "its idempotence the second run. Molecule's phase times include `ansible-playbook`'s own "
            "start and converge.yml's play that finds the data disks; no controller CPU seconds "
            "(`make bench` measures those)." % (q.get("phases_tsv"), q.get("phases_age_s", 0)), "",
            "| run | wall (s) |", "|---|---|",
            "| first (converge) | %s |" % fmt_s(first["wall_s"]),
            "| second (idempotence) | %s |" % fmt_s(second["wall_s"]), "",
            "Target: a second run at most %.2fx the first. Measured %.2fx: %s." % (
                TARGETS["q6"], r6, verdict(r6 <= TARGETS["q6"])), ""], r6, None


def _q6_slowest(q):
    """Text naming the slowest tasks of the (first) second run, from profile_tasks."""
    tasks = (q["second"][0].get("slowest") or []) if q.get("second") else []
    return ", ".join("%s (%s s)" % (name, fmt_s(secs)) for name, secs in tasks[:5])


def _q6(res):
    q = res["q6"]
    if q.get("source") == "molecule":
        return _q6_molecule(q)
    first, second = q["first"], q["second"]
    w2 = med([r["wall_s"] for r in second])
    c2 = med([r["cpu_s"] for r in second])
    r6 = ratio(w2, first["wall_s"])
    lines = ["## 6. The site-wide run", "",
             "`ansible-playbook playbooks/site.yml` from this host (the controller, ansible-core of the "
             "project's venv) against the guest: the volume group on its data disks, the hook and its "
             "library (job_hooks), Slurm with the Prolog/Epilog and SPANK plugin (slurm_node). A first "
             "run on the fresh guest, then %d idempotent second run(s). CPU seconds are the controller's: "
             "user + system of ansible-playbook and every child it waited for (forks, ssh, rsync), by "
             "getrusage. One host, so they are the controller's cost per host of a second run." % len(second),
             "", "| run | wall (s) | controller CPU (s) | changed tasks |", "|---|---|---|---|",
             "| first | %s | %s | %s |" % (fmt_s(first["wall_s"]), fmt_s(first["cpu_s"]), first["changed"])]
    for i, r in enumerate(second, start=1):
        lines.append("| second (%d) | %s | %s | %s |" % (i, fmt_s(r["wall_s"]), fmt_s(r["cpu_s"]), r["changed"]))
    lines += ["", "Target: a second run at most %.2fx the first. Measured %.2fx (median of the second run(s)): "
              "%s. Controller CPU per host for a second run: %s s in %s s of wall time, so one controller "
              "core keeps about %.1f nodes' second runs going at once (with `forks` at least that); past "
              "that, the controller's CPU, not the nodes, sets the pace." % (
                  TARGETS["q6"], r6, verdict(r6 <= TARGETS["q6"]), fmt_s(c2), fmt_s(w2), ratio(w2, c2)), ""]
    if _q6_slowest(q):
        lines += ["The slowest tasks of the first second run (ansible.posix.profile_tasks): %s." % _q6_slowest(q),
                  ""]
    if not q.get("variant_reps"):
        return lines, r6, c2
    lines += ["### Installing the library in one task: which way", "",
              "bench/install_variants.yml alone, one way per run, alternating after one priming run of "
              "each (so every timed run is a second run, nothing to change): `none` is the playbook "
              "with only its directory task; `synchronize` is the job_hooks role's task "
              "(ansible.posix.synchronize: one rsync over SSH from the controller, no module on the node); "
              "`unarchive` ships a tar of the same files and runs ansible.builtin.unarchive on the node. "
              "%d runs of each." % q["variant_reps"], "",
              "| way | wall median (s) | above `none` (s) | controller CPU median (s) |", "|---|---|---|---|"]
    var = q["variants"]
    base = med([r["wall_s"] for r in var["none"]])
    for variant in ("none", "synchronize", "unarchive"):
        w = med([r["wall_s"] for r in var[variant]])
        cpu = med([r["cpu_s"] for r in var[variant]])
        lines.append("| %s | %s | %s | %s |" % (variant, fmt_s(w), fmt_s(max(w - base, 0.0)), fmt_s(cpu)))
    ws = med([r["wall_s"] for r in var["synchronize"]])
    wu = med([r["wall_s"] for r in var["unarchive"]])
    lines += ["", "The faster way in a second run: **%s** (%.2fx the other's time above `none`)." % (
        "synchronize" if ws <= wu else "unarchive",
        ratio(min(ws, wu) - base, max(ws, wu) - base) if max(ws, wu) > base else float("nan")), ""]
    return lines, r6, c2


def _q7(res):
    q = res["q7"]
    m = {cfg: {k: med(q[cfg][k]) for k in ("srun", "srun_idle", "sbatch", "sbatch_running", "switch")}
         for cfg in Q7_CONFIGS}
    a, b, c = m["plain"], m["container"], m["jobroot"]
    an = q.get("anatomy") or {}
    pro, epi = (med(an[k]) if an.get(k) else 0.0 for k in ("prolog", "epilog"))
    conf = q.get("conf_lines", {})
    lines = ["## 7. Job start latency under Slurm, end to end", "",
             "On the guest that question 6 provisioned with playbooks/site.yml (%s, munge, slurmctld and "
             "slurmd under systemd, one node), three configurations, switched by rewriting slurm.conf and "
             "restarting slurmctld then slurmd, and alternating one by one (A B C A B C ...): %d rounds "
             "after %d warm-up round. **A** plain Slurm: no `Prolog`, `Epilog`, `PrologFlags`, job container "
             "plugin or SPANK plugin; **B** the job container plugin alone as the slurm_node role configures "
             "it (`%s`, `%s`), no Prolog/Epilog, no SPANK plugin; **C** hpc.jobroot exactly as the role "
             "configures it (`%s`, `%s`, the SPANK plugin `%s`): per job an LV of %.0f GiB, %s, the binds, "
             "chroot. After each switch one untimed job checks the configuration: its `/` was `%s` in A, "
             "`%s` in B and `%s` in C. Jobs are submitted by an ordinary user; times are wall-clock in the "
             "guest around the command. `srun /bin/true` returns before its Epilog runs, so the time until "
             "the node is idle again is given too; the `sbatch` of `sleep 1` is timed from submission "
             "until `scontrol` shows it COMPLETED (its Epilog done), polling every 0.1 s. The role's "
             "configuration is restored at the end (a job's `/` then: `%s`). Question 7 took %s s." % (
                 q.get("slurm"), q["reps"], q.get("warmup", 1), conf.get("PrologFlags") or "PrologFlags unset",
                 conf.get("JobContainerType") or conf.get("NamespaceType") or "no job container plugin",
                 conf.get("Prolog"), conf.get("Epilog"), q.get("spank", "").split(" ")[1] if " " in
                 q.get("spank", "") else q.get("spank"), q.get("slot_bytes", 0) / 2 ** 30, q.get("fstype"),
                 q["plain"]["root"], q["container"]["root"], q["jobroot"]["root"], q.get("restored_root"),
                 fmt_s(q.get("seconds", q.get("wall_s", 0)))), "",
             "| configuration | `srun /bin/true` (s) | srun until idle (s) | `sbatch` 1-s job to COMPLETED (s) "
             "| sbatch until RUNNING (s) |", "|---|---|---|---|---|"]
    for cfg in Q7_CONFIGS:
        lines.append("| %s | %s | %s | %s | %s |" % (
            Q7_NAMES[cfg], fmt_s(m[cfg]["srun"]), fmt_s(m[cfg]["srun_idle"]), fmt_s(m[cfg]["sbatch"]),
            fmt_s(m[cfg]["sbatch_running"])))
    lines += ["", "| | srun added (s) | srun ratio | sbatch added (s) | sbatch ratio |", "|---|---|---|---|---|",
              "| B against A (job container) | %s | %.2fx | %s | %.2fx |" % (
                  fmt_s(b["srun"] - a["srun"]), ratio(b["srun"], a["srun"]), fmt_s(b["sbatch"] - a["sbatch"]),
                  ratio(b["sbatch"], a["sbatch"])),
              "| C against A (hpc.jobroot) | %s | %.2fx | %s | %.2fx |" % (
                  fmt_s(c["srun"] - a["srun"]), ratio(c["srun"], a["srun"]), fmt_s(c["sbatch"] - a["sbatch"]),
                  ratio(c["sbatch"], a["sbatch"])),
              "| C against B (our hooks alone) | %s | %.2fx | %s | %.2fx |" % (
                  fmt_s(c["srun"] - b["srun"]), ratio(c["srun"], b["srun"]), fmt_s(c["sbatch"] - b["sbatch"]),
                  ratio(c["sbatch"], b["sbatch"])), ""]
    if q.get("anatomy_error"):
        lines += ["Where the time goes: timing the role's Prolog and Epilog failed in this run: %s" % (
            q["anatomy_error"]), ""]
        return lines, m, None, None
    lines += ["Where the time goes: in one more configuration, C with its `Prolog` and `Epilog` wrapped by a "
              "script that logs their start and end (%d srun and %d sbatch jobs, not in the rounds above), "
              "the role's Prolog (the hook's prologue: LV, mkfs, mounts) took %s s and its Epilog (detach "
              "in job namespaces, the hook's epilogue) %s s (medians). With `PrologFlags=Alloc` the Prolog "
              "runs before the job's first step, so an srun waits for it: of C's %s s over B, %s s is the "
              "Prolog and %s s the rest (the SPANK plugin's chroot in each step, slurmd's bookkeeping). The "
              "Epilog runs after srun returns: it is in the time until the node is idle (C %s s over B) and "
              "in the sbatch time, where C adds %s s over B for Prolog %s s + Epilog %s s." % (
                  len((an.get("jobs") or {}).get("srun", [])), len((an.get("jobs") or {}).get("sbatch", [])),
                  fmt_s(pro), fmt_s(epi), fmt_s(c["srun"] - b["srun"]), fmt_s(pro),
                  fmt_s(c["srun"] - b["srun"] - pro), fmt_s(c["srun_idle"] - b["srun_idle"]),
                  fmt_s(c["sbatch"] - b["sbatch"]), fmt_s(pro), fmt_s(epi)), ""]
    return lines, m, pro, epi


def _targets(summary):
    lines = ["## Targets", "", "| target | measured | verdict |", "|---|---|---|"]
    for row in summary:
        lines.append("| %s | %s | %s |" % row[:3])
    lines.append("")
    notes = [row for row in summary if len(row) > 3 and row[3]]
    if notes:
        lines += ["### Missed targets: why, and what would close them", ""]
        for row in notes:
            lines += ["* **%s**: %s" % (row[0], row[3])]
        lines.append("")
    return lines


def _more(delta):
    """'0.84 s more' or '0.31 s less' for a difference in seconds."""
    return "%s s %s" % (fmt_s(abs(delta)), "more" if delta >= 0 else "less")


def _q1_why(q, r_tot):
    extra_pro, secs_pro = _lvm_extra(q, "prologue")
    extra_epi, secs_epi = _lvm_extra(q, "epilogue")
    ps = q.get("python_start", {})
    d_pro = med(q["hook"]["prologue"]) - med(q["floor"]["prologue"])
    d_epi = med(q["hook"]["epilogue"]) - med(q["floor"]["epilogue"])
    bare = ps.get("bare", 0)
    return ("the hook takes %s per prologue and %s per epilogue than the floor (%.2fx in all). LVM commands "
            "the floor does not run: prologue %s (%s s), epilogue %s (%s s). Python start-up, measured "
            "apart: a bare `python3 -I -c pass` %s s; the prologue's imports %s s more, the epilogue's "
            "%s s more; a shell script pays neither. %s" % (
                _more(d_pro), _more(d_epi), r_tot, ", ".join(extra_pro) or "none", fmt_s(secs_pro),
                ", ".join(extra_epi) or "none", fmt_s(secs_epi), fmt_s(bare),
                fmt_s(max(ps.get("prologue", bare) - bare, 0.0)), fmt_s(max(ps.get("epilogue", bare) - bare, 0.0)),
                _python_left(q)))


def headline(res):
    """The ratios bench/run.py prints at the end: the floor ratio, the second-run ratio and, in a
    full run, question 7's (list of str)."""
    out = []
    if res.get("q1"):
        q = res["q1"]
        tot_h = [a + b for a, b in zip(q["hook"]["prologue"], q["hook"]["epilogue"])]
        tot_f = [a + b for a, b in zip(q["floor"]["prologue"], q["floor"]["epilogue"])]
        out.append("floor ratio (hook/shell floor, prologue+epilogue, medians): %.2fx (prologue %.2fx, "
                   "epilogue %.2fx)" % (ratio(med(tot_h), med(tot_f)),
                                        ratio(med(q["hook"]["prologue"]), med(q["floor"]["prologue"])),
                                        ratio(med(q["hook"]["epilogue"]), med(q["floor"]["epilogue"]))))
    if res.get("q6") and res["q6"].get("source") == "molecule":
        q = res["q6"]
        w2 = q["second"][0]["wall_s"]
        out.append("second-run ratio (site.yml second/first run): %.2fx (%s s / %s s), from the molecule slurm "
                   "scenario's idempotence/converge phases (%s, written %.0f s before), not re-run here" % (
                       ratio(w2, q["first"]["wall_s"]), fmt_s(w2), fmt_s(q["first"]["wall_s"]),
                       os.path.relpath(q["phases_tsv"], REPO), q.get("phases_age_s", 0)))
    elif res.get("q6"):
        q = res["q6"]
        w2 = med([r["wall_s"] for r in q["second"]])
        out.append("second-run ratio (site.yml second/first run): %.2fx (%s s / %s s; controller CPU per "
                   "host, second run: %s s)" % (ratio(w2, q["first"]["wall_s"]), fmt_s(w2),
                                                fmt_s(q["first"]["wall_s"]),
                                                fmt_s(med([r["cpu_s"] for r in q["second"]]))))
    if res.get("q7"):
        q = res["q7"]
        for key in ("srun", "sbatch"):
            plain, cont, ours = (med(q[cfg][key]) for cfg in Q7_CONFIGS)
            out.append("%s: hpc.jobroot %s s (%.2fx plain Slurm), job container alone %s s (%.2fx), plain %s s"
                       % (key, fmt_s(ours), ratio(ours, plain), fmt_s(cont), ratio(cont, plain), fmt_s(plain)))
    return out


def plot(res, png_dir):
    """Draw the PNGs; return {key: file name relative to the report}."""
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    out = {}
    note = " (QEMU TCG guest: compare, do not read absolute times)"
    if res.get("q1") and res.get("q2"):
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        q1, q2 = res["q1"], res["q2"]
        groups = [("floor script", q1["floor"]), ("hook", q1["hook"])]
        _bars(axes[0], groups, "Q1: hook against the shell floor")
        _bars(axes[1], [("hook", q2["hook"]), ("3 ad-hoc ansible calls", q2["ansible"])],
              "Q2: hook against ad-hoc Ansible")
        fig.suptitle("Per-job set-up and teardown, medians with every run as a dot" + note, fontsize=9)
        fig.tight_layout()
        out["q12"] = _save(fig, png_dir, "bench-q1-q2.png")
        plt.close(fig)
    if res.get("q3"):
        q = res["q3"]
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        sizes = q["sizes_gib"]
        for phase, marker in (("prologue", "o"), ("epilogue", "s")):
            meds = [med(q["by_size"][str(s)][phase]) for s in sizes]
            axes[0].plot(sizes, meds, marker=marker, label=phase + " (median)")
            for s in sizes:
                axes[0].scatter([s] * len(q["by_size"][str(s)][phase]), q["by_size"][str(s)][phase],
                                s=8, color="grey", alpha=0.5)
        axes[0].set_xscale("log", base=2)
        axes[0].set_xlabel("LV size (GiB)")
        axes[0].set_ylabel("seconds")
        axes[0].set_ylim(bottom=0)
        axes[0].set_title("Q3: time against volume size")
        axes[0].legend()
        rows = q["by_count"]
        axes[1].plot([r["n"] for r in rows], [r["prologue"] for r in rows], marker="o", label="prologue")
        axes[1].plot([r["n"] for r in rows], [r["epilogue"] for r in rows], marker="s", label="epilogue")
        axes[1].set_xlabel("root number (roots present before it + 1)")
        axes[1].set_ylabel("seconds")
        axes[1].set_ylim(bottom=0)
        axes[1].set_title("Q3: time against roots present")
        axes[1].legend()
        fig.suptitle("Hook prologue/epilogue scaling" + note, fontsize=9)
        fig.tight_layout()
        out["q3"] = _save(fig, png_dir, "bench-q3-scaling.png")
        plt.close(fig)
    if res.get("q4"):
        q = res["q4"]
        targets = ["jobroot", "bare", "thin", "snapshot"]
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        for ax, key, label in ((axes[0], "seq_mib_s", "sequential write, MiB/s (fio, 1 MiB, direct)"),
                               (axes[1], "files_s", "small files created per s (tar -x + syncfs)")):
            meds = [med(q[key][t]) for t in targets]
            ax.bar(targets, meds, color=["tab:blue", "tab:green", "tab:orange", "tab:red"])
            for i, t in enumerate(targets):
                ax.scatter([i] * len(q[key][t]), q[key][t], s=10, color="black", zorder=3)
                ax.annotate("%.2fx" % ratio(meds[i], meds[1]), (i, max(q[key][t]) * 1.02), ha="center",
                            va="bottom", fontsize=8)
            ax.set_title(label, fontsize=10)
        fig.suptitle("Q4: I/O on each storage layout, ratio to the bare LV on the bars" + note, fontsize=9)
        fig.tight_layout()
        out["q4"] = _save(fig, png_dir, "bench-q4-io.png")
        plt.close(fig)
    return out


def _bars(ax, groups, title):
    phases = ["prologue", "epilogue"]
    width = 0.8 / len(groups)
    for gi, (label, data) in enumerate(groups):
        xs = [i + (gi - (len(groups) - 1) / 2.0) * width for i in range(len(phases))]
        ax.bar(xs, [med(data[p]) for p in phases], width=width, label=label)
        for x, p in zip(xs, phases):
            ax.scatter([x] * len(data[p]), data[p], s=8, color="black", zorder=3)
    ax.set_xticks(range(len(phases)))
    ax.set_xticklabels(phases)
    ax.set_ylabel("seconds")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)


def _save(fig, png_dir, name):
    path = os.path.join(png_dir, name)
    fig.savefig(path, dpi=90)
    return path


def write(res, json_path, md_dir, png_dir):
    """Write BENCHMARKS.md (into *md_dir*) and the plots (into *png_dir*); return the .md path."""
    os.makedirs(png_dir, exist_ok=True)
    pngs = plot(res, png_dir)
    rel = {k: os.path.relpath(v, md_dir) for k, v in pngs.items()}
    for key in ("q12", "q3", "q4"):
        rel.setdefault(key, "(not drawn)")
    minutes = res.get("duration_s", 0) / 60.0
    lines = ["# Benchmarks", "",
             "Written by `%s` on %s; the run took %.1f minutes. Raw numbers: [%s](%s). Regenerate with "
             "`make bench` (about 40 minutes: it boots the test guest, see tests/guest/guest.sh)." % (
                 "bench/run.py --quick" if res.get("quick") else "make bench", res.get("started"), minutes,
                 os.path.relpath(json_path, REPO), os.path.relpath(json_path, md_dir)), "",
             "**How to read these numbers.** Questions 1-4 and 7 ran inside (and 6 against) a QEMU guest "
             "under *software emulation* (TCG, no KVM) on a shared 2-core host: every instruction is translated, so "
             "absolute times are many times those of a real node, and noisy. Each comparison therefore "
             "alternates its contenders run by run within this one benchmark run (A B A B ...) and is "
             "given as medians and a ratio; the ratios are the result, the seconds only show the scale. "
             "Nothing in the test suite asserts a time.", ""]
    if res.get("quick"):
        lines += ["**This is a quick run** (`bench/run.py --quick`, tiny sizes, 1-2 repetitions): it only "
                  "shows that the benchmark works; its numbers mean nothing.", ""]
    body = []
    summary = []
    if res.get("q1"):
        q1_lines, r1, r1p, r1e = _q1(res, rel)
        rss_peak = _rss(res["q1"])[1]
        body += q1_lines
        summary.append(("prologue+epilogue at most %.2fx the shell floor" % TARGETS["q1"], "%.2fx" % r1,
                        verdict(r1 <= TARGETS["q1"]), "" if r1 <= TARGETS["q1"] else _q1_why(res["q1"], r1)))
        for phase, r in (("prologue", r1p), ("epilogue", r1e)):
            summary.append(("%s at most %.2fx the shell floor" % (phase, TARGETS["q1_phase"]), "%.2fx" % r,
                            verdict(r <= TARGETS["q1_phase"]), "" if r <= TARGETS["q1_phase"] else
                            _q1_why(res["q1"], r1)))
        summary.append(("peak RSS of the hook command under %.0f MiB" % TARGETS["rss_mib"],
                        "%.1f MiB" % rss_peak, verdict(rss_peak < TARGETS["rss_mib"]), ""))
        ps = res["q1"].get("python_start") or {}
        if ps.get("prologue"):
            summary.append(("Python start-up, measured apart: bare; with the prologue's imports; with the "
                            "epilogue's imports", "%s s; %s s; %s s" % (
                                fmt_s(ps["bare"]), fmt_s(ps["prologue"]), fmt_s(ps["epilogue"])), "(reported)",
                            ""))
    if res.get("q2"):
        q2_lines, r2 = _q2(res)
        body += q2_lines
        summary.append(("hook at least %.0fx faster than 3 ad-hoc module calls" % TARGETS["q2"], "%.1fx" % r2,
                        verdict(r2 >= TARGETS["q2"]), "" if r2 >= TARGETS["q2"] else
                        "each ad-hoc call starts Ansible, loads its configuration and plugins and ships "
                        "the module; those fixed costs are what the hook avoids. If it is missed here, "
                        "the LVM commands both paths share are a larger part of the time than on real "
                        "hardware."))
    if res.get("q3"):
        q3_lines, r3s, r3c, r3se, r3ce = _q3(res, rel)
        body += q3_lines
        summary.append(("prologue at the largest size at most %.1fx the time at 1 GiB" % TARGETS["q3_size"],
                        "%.2fx" % r3s, verdict(r3s <= TARGETS["q3_size"]), "" if r3s <= TARGETS["q3_size"] else
                        "mkfs.ext4 writes the group descriptors and bitmaps of every block group, so its "
                        "time grows with the size even with lazy inode tables; xfs (fstype xfs) or a "
                        "bigger flex_bg would make it flatter."))
        summary.append(("the last root at most %.1fx the first" % TARGETS["q3_count"], "%.2fx" % r3c,
                        verdict(r3c <= TARGETS["q3_count"]), "" if r3c <= TARGETS["q3_count"] else
                        "every mountinfo read and LVM report grows with the roots present (see the "
                        "mountinfo line count); reading mountinfo once per prologue instead of once per "
                        "mount, and filtering the LVM report by tag, would keep it flat."))
        for what, r in (("epilogue at the largest size at most %.1fx the time at 1 GiB", r3se),
                        ("epilogue of the last root at most %.1fx the first's", r3ce)):
            summary.append((what % TARGETS["q3_epilogue"], "%.2fx" % r, verdict(r <= TARGETS["q3_epilogue"]),
                            "" if r <= TARGETS["q3_epilogue"] else
                            "the epilogue reads mountinfo and lists the tree's mounts, both growing with the "
                            "roots present (see the mountinfo line count), and lvremove's metadata scan grows "
                            "with the LVs in the volume group."))
    if res.get("q4"):
        q4_lines, r4, slow = _q4(res, rel)
        body += q4_lines
        summary.append(("sequential write in the job root at least %.2fx a bare LV" % TARGETS["q4_seq"],
                        "%.2fx" % r4, verdict(r4 >= TARGETS["q4_seq"]), "" if r4 >= TARGETS["q4_seq"] else
                        "the job root's /tmp is a directory on the same kind of volume and file system as "
                        "the bare LV, so a gap here is run-to-run noise of the emulated disk; more and "
                        "longer runs would narrow it."))
        summary.append(("seed claim: snapshot writes 10-25x slower", "%.1fx slower" % slow,
                        "reproduced" if slow >= 10 else "not reproduced" if slow < 5 else "partly reproduced",
                        ""))
    if res.get("q8"):
        q8_lines, r8, added8 = _q8(res)
        body += q8_lines
        summary.append(("sequential write in an encrypted job root against a plain one", "%.2fx" % r8,
                        "(reported)", ""))
        summary.append(("prologue time added by encryption", "%s%s s" % ("+" if added8 >= 0 else "", fmt_s(added8)), "(reported)", ""))
    if res.get("q5"):
        body += _q5(res)
    if res.get("q6"):
        q6_lines, r6, c6 = _q6(res)
        body += q6_lines
        summary.append(("a second site.yml run at most %.2fx the first" % TARGETS["q6"], "%.2fx" % r6,
                        verdict(r6 <= TARGETS["q6"]), "" if r6 <= TARGETS["q6"] else
                        "a second run still starts a module on the node for every task that checks "
                        "state (apt, file, template, systemd); under TCG each module start costs about "
                        "a second of the guest's Python. %s" % (
                            "Its slowest tasks: %s." % _q6_slowest(res["q6"]) if _q6_slowest(res["q6"]) else
                            "Molecule's phase times do not say which tasks; `make bench` lists them.")))
        if c6 is not None:
            summary.append(("controller CPU per host, second site.yml run", "%s s" % fmt_s(c6), "(reported)", ""))
    if res.get("q7"):
        q7_lines, m7, pro7, epi7 = _q7(res)
        body += q7_lines
        for what, key in (("`srun /bin/true`", "srun"), ("`sbatch` of a 1-second job, submit to completion", "sbatch")):
            plain, cont, ours = m7["plain"][key], m7["container"][key], m7["jobroot"][key]
            summary.append(("%s: hpc.jobroot and the job container against plain Slurm" % what,
                            "C %s s (+%s s, %.2fx); B %s s (+%s s, %.2fx); A %s s" % (
                                fmt_s(ours), fmt_s(ours - plain), ratio(ours, plain), fmt_s(cont),
                                fmt_s(cont - plain), ratio(cont, plain), fmt_s(plain)), "(reported)", ""))
        summary.append(("where hpc.jobroot's job start time goes", "Prolog %s s, Epilog %s s" % (
            fmt_s(pro7), fmt_s(epi7)) if pro7 is not None else "not timed (see section 7)", "(reported)", ""))
    for q, msg in sorted(res.get("failed", {}).items()):
        summary.append(("question %s" % q[1:], "**failed in this run**", "-", msg[-600:]))
    lines += _targets(summary)
    lines += _env_section(res)
    lines += body
    lines += ["## Commands", "",
              "* `make bench`: `bench/run.py`: boots the guest (`tests/guest/guest.sh start bench %s`), "
              "copies the library, the hook, bench/guest_bench.py, bench/floor.sh, ansible-core and the "
              "collection into it, runs `python3 /opt/hpc-jobroot-bench/guest_bench.py setup|q1|q2|q3|q4|q8` "
              "there (arguments in results.json, key `plan`), question 5 on the host "
              "(bench/image_update.py), question 6 from the host (bench/site_run.py, "
              "bench/install_variants.yml), question 7 in the guest (`guest_bench.py q7`), then writes "
              "this file and the plots; the guest is stopped on every exit." % " ".join(
                  res.get("plan", {}).get("disks", [])),
              "* `make bench-quick`: `bench/run.py --quick`: question 1 at a tiny size and question 6's "
              "second-run ratio from the molecule slurm scenario's phase times, written to "
              ".build/bench-quick/; it fails only if a question produced no or malformed results. "
              "`make molecule` (in `make test`) runs it on its trixie guest after the trixie scenarios "
              "(`MOLECULE_BENCH_QUICK=1 tests/guest/run-molecule.sh`).",
              "* `bench/run.py --guest NAME` uses a running guest; `--only q1,q3` runs a subset "
              "(written under the output directory, never over this file's results).", ""]
    path = os.path.join(md_dir, "BENCHMARKS.md")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines).rstrip() + "\n")
    return path
