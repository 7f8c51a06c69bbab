# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Question 6 of the benchmark: the site-wide run (issue 18, item 3).

playbooks/site.yml from this host (the controller) against the test guest:
a first run on a fresh guest, then idempotent second runs. Each run is one
``ansible-playbook`` process; its wall time and the controller's CPU
seconds (user + system of it and every child it waited for: forks, ssh,
rsync), from getrusage(RUSAGE_CHILDREN) around it. With one host, the CPU
seconds of a second run are the controller's cost per host, which bounds
how many nodes one controller serves per fork.

Then the library install alone, the two one-task ways issue 18 names,
alternating (none, synchronize, unarchive, none, ...) after one priming run
each: bench/install_variants.yml with ``variant=none`` (the playbook's own
cost), ``synchronize`` (the job_hooks role's task) or ``unarchive`` (a tar
of the same files, built here). The role uses whichever is faster in a
second run.

``--quick`` (make test) runs neither: :func:`from_phases` takes the first and
second run from the molecule slurm scenario of the same ``make test``, whose
converge is playbooks/site.yml on a fresh guest and whose idempotence is
the second run (tests/guest/run-molecule.sh writes their seconds to
$MOLECULE_PHASES_TSV).
"""

import json
import os
import re
import resource
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
GUEST = os.path.join(REPO, "tests", "guest", "guest.sh")
LIB = os.path.join(REPO, "plugins", "module_utils")
VARIANTS = ("none", "synchronize", "unarchive")
PHASES_TSV = os.path.join(REPO, ".build", "molecule", "phases.tsv")
PHASES_SCENARIO = "slurm"


def _ansible_playbook():
    here = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    return here if os.path.exists(here) else "ansible-playbook"


# ansible.posix.profile_tasks' recap: "<task name> ---...--- 1.23s"
TASK_TIME = re.compile(r"^(?P<task>\S.*?) -{3,} (?P<s>\d+\.\d+)s\s*$")


def _slowest(stdout, count=8):
    """The *count* slowest tasks in profile_tasks' recap of *stdout*: [[name, seconds], ...]."""
    tasks = [[m.group("task").strip(), float(m.group("s"))]
             for m in (TASK_TIME.match(line) for line in stdout.splitlines()) if m]
    return sorted(tasks, key=lambda t: -t[1])[:count]


def _timed(argv, env):
    """Run one ansible-playbook; return {"wall_s", "cpu_s", "changed", "slowest"}.

    ``slowest`` lists the slowest tasks by ansible.posix.profile_tasks (enabled in *env*).
    Raises RuntimeError on failure."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.run([_ansible_playbook()] + argv, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError("ansible-playbook %s failed (%d): %s" % (
            os.path.basename(argv[-1]), proc.returncode, (proc.stdout + proc.stderr)[-2000:]))
    changed = [int(n) for n in re.findall(r"\bchanged=(\d+)", proc.stdout)]
    return {"wall_s": wall, "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "changed": sum(changed), "slowest": _slowest(proc.stdout)}


def run(name, quick, log):
    """Answer question 6 against running guest *name* (its data disks freshly reset); return a dict."""
    inventory = subprocess.run([GUEST, "inventory", name], capture_output=True, text=True,
                               check=True).stdout.strip()
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".build"),
               ANSIBLE_GATHERING="explicit", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks")
    site = ["-i", inventory, "-e", json.dumps({"jobroot_hosts": name, "jobroot_slots": 2}),
            "-e", "jobroot_pvs={{ guest_data_disks }}", os.path.join(REPO, "playbooks", "site.yml")]
    # --quick (make test) answers only the second-run ratio: no install variants
    # one second run: in the guest it took about 400 s (molecule slurm idempotence, Nov 30),
    # and make bench should stay near 40 minutes
    out = {"second_reps": 1, "variant_reps": 0 if quick else 2}
    log("q6: site.yml, first run")
    out["first"] = _timed(site, env)
    out["second"] = []
    for i in range(out["second_reps"]):
        log("q6: site.yml, second run %d of %d" % (i + 1, out["second_reps"]))
        out["second"].append(_timed(site, env))
    if not out["variant_reps"]:
        return out
    with tempfile.TemporaryDirectory(prefix="hpc-jobroot-q6-") as tmp:
        archive = os.path.join(tmp, "module_utils.tar.gz")
        with tarfile.open(archive, "w:gz") as tar:
            for entry in sorted(os.listdir(LIB)):
                if entry.endswith(".py"):
                    tar.add(os.path.join(LIB, entry), arcname=entry)
        play = os.path.join(HERE, "install_variants.yml")
        out["variants"] = {v: [] for v in VARIANTS}
        for rep in range(out["variant_reps"] + 1):
            for variant in VARIANTS:
                res = _timed(["-i", inventory, "-e", json.dumps(
                    {"variant": variant, "archive": archive, "library": LIB + "/", "bench_host": name}),
                    play], env)
                if rep:  # rep 0 primes: the first install of each way
                    out["variants"][variant].append(res)
        log("q6: install variants done")
    return out


def from_phases(log, path=None):
    """Question 6 without running site.yml: the molecule slurm scenario's converge and idempotence.

    *path* is the phases file tests/guest/molecule-phases.py appends to (rows
    scenario, action, seconds; default $MOLECULE_PHASES_TSV, else
    .build/molecule/phases.tsv). Returns a dict shaped like :func:`run`'s
    without the controller's CPU seconds (molecule does not measure them)
    and with ``source`` "molecule". Raises RuntimeError when the file or
    either phase is missing.
    """
    path = path or os.environ.get("MOLECULE_PHASES_TSV") or PHASES_TSV
    phases = {}
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                fields = line.rstrip("\n").split("\t")
                if len(fields) == 3 and fields[0] == PHASES_SCENARIO and fields[2].isdigit():
                    phases[fields[1]] = int(fields[2])
        age = time.time() - os.stat(path).st_mtime
    except OSError as exc:
        raise RuntimeError("no molecule phase times (%s): run the molecule slurm scenario first "
                           "(tests/guest/run-molecule.sh slurm, or make molecule)" % exc) from exc
    missing = [a for a in ("converge", "idempotence") if a not in phases]
    if missing:
        raise RuntimeError("%s has no %s phase of the %s scenario (did it fail?)" % (
            path, " or ".join(missing), PHASES_SCENARIO))
    log("q6: converge %d s, idempotence %d s from %s (written %.0f s ago)" % (
        phases["converge"], phases["idempotence"], path, age))
    return {"source": "molecule", "phases_tsv": path, "phases_age_s": age, "second_reps": 1, "variant_reps": 0,
            "first": {"wall_s": float(phases["converge"])}, "second": [{"wall_s": float(phases["idempotence"])}]}
