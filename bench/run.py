#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hpc.jobroot benchmark (issue 7): make bench, make bench-quick.

  bench/run.py            full run (about 40 min): writes BENCHMARKS.md,
                          bench/results.json and the plots bench/*.png
  bench/run.py --quick    about a minute on a running guest: question 1 at a
                          tiny size (the floor ratio) and question 6's
                          second-run ratio taken from the molecule slurm
                          scenario's converge and idempotence phases
                          ($MOLECULE_PHASES_TSV, default
                          .build/molecule/phases.tsv; site.yml is not run
                          again); writes under .build/bench-quick/ and checks
                          only that the results are well formed (--only
                          q2,q3,q4,q5 runs the others at tiny sizes too)
  --guest NAME            use a running guest (tests/guest/guest.sh) instead
                          of booting one (also BENCH_GUEST=NAME make bench);
                          its data disks are reset first; it is not stopped.
                          tests/guest/run-molecule.sh runs
                          `bench/run.py --quick --guest <its trixie guest>`
                          after the trixie scenarios (MOLECULE_BENCH_QUICK=1)

The guest is the default test guest (tests/guest/guest.sh: trixie unless
GUEST_SUITE says otherwise); the report names the suite that really ran.
Questions 1-4 run inside the guest on real LVM (sparse data disks),
question 5 on the host (rsync and rename need no LVM), question 6 (the
site-wide run) from the host against the guest, after questions 1-4, and
question 7 (job start latency under Slurm) inside the guest that question
6 provisioned, question 8 (encrypted job roots) inside the guest with 1-4. Every comparison alternates its contenders (A B A B ...)
within this one run and reports medians and ratios; nothing here asserts a
time.

Exit status 0 when every question produced well-formed results, else 1.
The guest this script boots is stopped on every exit (also on failure,
SIGINT and SIGTERM).
"""

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tarfile
import io
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

# pylint: disable=wrong-import-position
import image_update  # noqa: E402
import report  # noqa: E402
import site_run  # noqa: E402

GUEST = os.path.join(REPO, "tests", "guest", "guest.sh")
GUESTS_DIR = os.path.join(REPO, ".build", "guests")
BENCH_DIR = "/opt/hpc-jobroot-bench"
GUEST_LIB = "/usr/lib/hpc-jobroot/ansible_collections/hpc/jobroot/plugins/module_utils"
GUEST_HOOK = "/usr/libexec/hpc-jobroot/jobroot"
# What ansible-core needs besides itself (its METADATA: jinja2, PyYAML, cryptography, packaging,
# resolvelib; and theirs: markupsafe, cffi, pycparser).
ANSIBLE_PACKAGES = ("ansible", "jinja2", "markupsafe", "yaml", "_yaml", "cryptography", "cffi",
                    "_cffi_backend", "pycparser", "packaging", "resolvelib")
# ... and their distribution metadata (ansible-core reads versions with importlib.metadata)
ANSIBLE_DISTS = ("ansible_core", "jinja2", "markupsafe", "pyyaml", "cryptography", "cffi", "pycparser",
                 "packaging", "resolvelib")

FULL = {"files": 2000, "q1": ["--reps", "5", "--warmup", "1", "--anatomy", "2"],
        "q2": ["--reps", "1", "--warmup", "0"],
        "q3": ["--reps", "2", "--sizes", "1,4,16,64,256,1024", "--roots", "64", "--count-reps", "2"],
        "q4": ["--reps", "2", "--seq-mib", "128", "--lv-gib", "2", "--cow-gib", "1"],
        "q7": ["--reps", "3", "--warmup", "1", "--anatomy", "2"],
        "q8": ["--reps", "4", "--seq-mib", "128", "--lv-gib", "2"],
        "disks": ["--disks", "2", "--disk-size", "600G", "--memory", "2048"]}
QUICK = {"files": 100, "q1": ["--reps", "2", "--warmup", "0", "--anatomy", "1"],
         "q2": ["--reps", "1", "--warmup", "0"],
         "q3": ["--reps", "1", "--sizes", "1,4", "--roots", "3", "--count-reps", "1"],
         "q4": ["--reps", "1", "--seq-mib", "8", "--lv-gib", "1", "--cow-gib", "1"],
         "q7": ["--reps", "1", "--warmup", "0", "--anatomy", "1"],
         "q8": ["--reps", "2", "--seq-mib", "8", "--lv-gib", "1"],
         "disks": ["--disks", "1", "--disk-size", "40G", "--memory", "2048"]}
QUESTIONS = ("q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8")
# --quick by default: the floor ratio (q1) and the second-run ratio (q6, from molecule's phases)
QUICK_DEFAULT = "q1,q6"


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S", time.gmtime()), msg), file=sys.stderr, flush=True)


class Guest:
    """A QEMU test guest driven through tests/guest/guest.sh."""

    def __init__(self, name):
        self.name = name

    def run(self, *args, stdin=None, capture=True, check=True):
        proc = subprocess.run([GUEST] + list(args), input=stdin, check=False,
                              stdout=subprocess.PIPE if capture else None)
        if check and proc.returncode != 0:
            raise RuntimeError("guest.sh %s failed (%d)" % (" ".join(args[:3]), proc.returncode))
        return proc.stdout.decode() if capture else ""

    def ssh(self, command, stdin=None):
        return self.run("ssh", self.name, command, stdin=stdin)

    def running(self):
        return subprocess.run([GUEST, "status", self.name], check=False,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


def other_guests(mine):
    """Names of other guests of this checkout that run now."""
    names = []
    if os.path.isdir(GUESTS_DIR):
        for name in sorted(os.listdir(GUESTS_DIR)):
            if name != mine and os.path.isdir(os.path.join(GUESTS_DIR, name)) and Guest(name).running():
                names.append(name)
    return names


def wait_for_slot(mine, timeout):
    """Wait (polling each minute) until no other guest runs: two TCG guests halve everyone's speed."""
    deadline = time.monotonic() + timeout
    while True:
        others = other_guests(mine)
        if not others or os.environ.get("GUEST_ALLOW_PARALLEL") == "1":
            return
        if time.monotonic() >= deadline:
            raise RuntimeError("another guest (%s) still runs after %d s; not starting a second one"
                               % (", ".join(others), timeout))
        log("guest %s runs; waiting for it to stop (checking every 60 s)" % ", ".join(others))
        time.sleep(60)


def tar_bytes(entries, pycache=False):
    """A tar stream of (arcname, path) entries, directories recursively; __pycache__ only if *pycache*."""
    def keep(info):
        return info if pycache or "__pycache__" not in info.name.split("/") else None
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for arcname, path in entries:
            tar.add(path, arcname=arcname, filter=keep)
    return buf.getvalue()


def ansible_entries():
    """(arcname, path) of ansible-core and its dependencies in this Python's site-packages."""
    import ansible  # pylint: disable=import-outside-toplevel
    site = os.path.dirname(os.path.dirname(ansible.__file__))
    entries = []
    for name in ANSIBLE_PACKAGES:
        for cand in sorted(os.listdir(site)):
            if cand == name or (cand.startswith(name + ".") and cand.endswith(".so")):
                entries.append((cand, os.path.join(site, cand)))
    for cand in sorted(os.listdir(site)):
        if cand.endswith(".dist-info") and cand.lower().split("-")[0] in ANSIBLE_DISTS:
            entries.append((cand, os.path.join(site, cand)))
    return entries


def install_bench(guest):
    """Copy bench/guest_bench.py and bench/floor.sh into the guest's bench directory (made anew)."""
    guest.ssh("rm -rf %s && mkdir -p %s && true" % (BENCH_DIR, BENCH_DIR))
    guest.ssh("tar -C %s -xf - && chmod 0755 %s/floor.sh" % (BENCH_DIR, BENCH_DIR),
              stdin=tar_bytes([("guest_bench.py", os.path.join(HERE, "guest_bench.py")),
                               ("floor.sh", os.path.join(HERE, "floor.sh"))]))


def install(guest, with_ansible):
    """Copy the library and the hook, and (*with_ansible*, question 2) ansible-core and the collection,
    into the guest."""
    lib = os.path.join(REPO, "plugins", "module_utils")
    guest.ssh("mkdir -p %s %s/ansible/bin %s/collections/ansible_collections/hpc/jobroot "
              "/usr/libexec/hpc-jobroot && true" % (GUEST_LIB, BENCH_DIR, BENCH_DIR))
    guest.ssh("tar -C %s -xf -" % GUEST_LIB,
              stdin=tar_bytes([(n, os.path.join(lib, n)) for n in sorted(os.listdir(lib)) if n.endswith(".py")]))
    # the hook command as the job_hooks role installs it: the node's python with -I
    with open(os.path.join(REPO, "roles", "job_hooks", "files", "jobroot.py"), "rb") as handle:
        hook = b"#!/usr/bin/python3 -I\n" + handle.read()
    guest.ssh("cat > %s && chmod 0755 %s" % (GUEST_HOOK, GUEST_HOOK), stdin=hook)
    if not with_ansible:
        return
    # ansible-core from this project's .venv (the pinned version), onto the guest's Python 3.11
    entries = ansible_entries()
    # with the venv's byte code (same Python 3.11 magic): imports under emulation are slow
    guest.ssh("tar -C %s/ansible -xf -" % BENCH_DIR, stdin=tar_bytes(entries, pycache=True))
    wrapper = b"import sys\nfrom ansible.cli.adhoc import main\nsys.argv[0] = 'ansible'\nsys.exit(main())\n"
    guest.ssh("cat > %s/ansible/bin/ansible" % BENCH_DIR, stdin=wrapper)
    coll = [(n, os.path.join(REPO, n)) for n in ("plugins", "meta", "galaxy.yml")]
    guest.ssh("tar -C %s/collections/ansible_collections/hpc/jobroot -xf -" % BENCH_DIR, stdin=tar_bytes(coll))


def guest_json(guest, *args):
    out = guest.ssh("python3 %s/guest_bench.py %s" % (BENCH_DIR, " ".join(args)))
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError("guest_bench.py %s printed no JSON" % args[0])
    return json.loads(lines[-1])


def host_env():
    def cmd(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"
    model = "?"
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="utf-8") as handle:
        mem = int(handle.readline().split()[1]) // 1024
    return {"cpu_model": model, "cpus": os.cpu_count(), "mem_mib": mem, "kernel": platform.release(),
            "python": platform.python_version(), "qemu": cmd(["qemu-system-x86_64", "--version"]),
            "rsync": cmd(["rsync", "--version"]), "os": cmd(["sh", "-c", ". /etc/os-release; echo $PRETTY_NAME"])}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--quick", action="store_true", help="seconds per question; output under .build/")
    parser.add_argument("--guest", default=os.environ.get("BENCH_GUEST") or None,
                        help="use this running guest instead of booting one (default: $BENCH_GUEST); "
                             "its data disks are reset first (tests/guest/guest.sh reset)")
    parser.add_argument("--out", help="output directory (default: the repo for a full run, "
                                      ".build/bench-quick for --quick)")
    parser.add_argument("--wait", type=int, default=3600, help="seconds to wait for another guest to stop")
    parser.add_argument("--only", help="comma list of questions to run (q1..q8); a partial run, for development "
                                       "(q7 alone needs a guest an earlier q6 provisioned: --guest)")
    parser.add_argument("--report", metavar="RESULTS_JSON",
                        help="run nothing: rewrite the report and plots from a results file of an earlier run")
    opts = parser.parse_args(argv)
    if opts.report:
        with open(opts.report, encoding="utf-8") as handle:
            results = json.load(handle)
        md_dir = opts.out or (REPO if os.path.abspath(opts.report) == os.path.join(HERE, "results.json")
                              else os.path.dirname(os.path.abspath(opts.report)))
        done = [q for q in QUESTIONS if q in results]
        problems = report.check(results, set(done))
        if problems:
            print("bench: FAILED: malformed results:\n  " + "\n  ".join(problems))
            return 1
        md = report.write(results, opts.report, md_dir, HERE if md_dir == REPO else md_dir)
        print("bench: report %s rewritten from %s" % (os.path.relpath(md, REPO), opts.report))
        return 0
    plan = QUICK if opts.quick else FULL
    if opts.out:
        out_dir = opts.out
    elif opts.quick:
        out_dir = os.path.join(REPO, ".build", "bench-quick")
    elif opts.only:
        out_dir = os.path.join(REPO, ".build", "bench-partial")
    else:
        out_dir = REPO
    os.makedirs(out_dir, exist_ok=True)
    only = set((opts.only or (QUICK_DEFAULT if opts.quick else ",".join(QUESTIONS))).split(","))
    if only - set(QUESTIONS):
        parser.error("--only: no question %s" % ", ".join(sorted(only - set(QUESTIONS))))
    started = time.time()
    name = opts.guest or ("bench-quick" if opts.quick else "bench")
    guest = Guest(name)
    booted = False

    def on_signal(signum, frame):
        del frame
        raise SystemExit("bench: interrupted by signal %d" % signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    results = {"quick": opts.quick, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
               "host": host_env(), "plan": plan}
    ok = False
    try:
        if "q5" in only:
            log("q5 (host): image update with rsync --link-dest, and the symlink switch")
            results["q5"] = image_update.run(os.path.join(REPO, ".build", "bench-q5"), opts.quick, log)
        # --quick takes question 6 from molecule's phase times: no site.yml run here
        in_guest = only & ({"q1", "q2", "q3", "q4", "q7", "q8"} | (set() if opts.quick else {"q6"}))
        if in_guest:
            if opts.guest:
                if not guest.running():
                    raise RuntimeError("guest %s is not running" % name)
                if in_guest != {"q7"}:  # q7 alone runs on the Slurm that an earlier q6 set up
                    guest.run("reset", name, capture=False)
            else:
                wait_for_slot(name, opts.wait)
                booted = True
                t0 = time.monotonic()
                guest.run("start", name, *plan["disks"], capture=False)
                results["guest_boot_s"] = time.monotonic() - t0
            results["guest_info"] = json.loads(guest.run("info", name))
            results["guest_name"] = name
            results["guest_suite"] = guest.ssh(". /etc/os-release && echo $VERSION_CODENAME").strip()
            log("guest %s: Debian %s" % (name, results["guest_suite"]))
            install_bench(guest)
        if only & {"q1", "q2", "q3", "q4", "q8"}:
            log("installing the library and the hook%s in the guest" % (
                ", ansible-core and the collection" if "q2" in only else ""))
            install(guest, "q2" in only)
            results["setup"] = guest_json(guest, "setup", "--files", str(plan["files"]))
            for q in ("q1", "q2", "q3", "q4", "q8"):
                if q in only:
                    log("%s (guest)" % q)
                    t0 = time.monotonic()
                    try:
                        results[q] = guest_json(guest, q, *plan[q])
                        results[q]["wall_s"] = time.monotonic() - t0
                    except RuntimeError as exc:
                        # go on with the other questions; the report names the failure
                        log("%s FAILED: %s; cleaning the guest's disks and going on" % (q, exc))
                        results.setdefault("failed", {})[q] = str(exc)
                        only = only - {q}
                        guest.run("reset", name, capture=False, check=False)
                        results["setup"] = guest_json(guest, "setup", "--files", str(plan["files"]))
        if "q6" in only and opts.quick:
            log("q6 (quick): the second-run ratio from molecule's converge and idempotence phases")
            try:
                results["q6"] = site_run.from_phases(log)
            except RuntimeError as exc:
                log("q6 FAILED: %s" % exc)
                results.setdefault("failed", {})["q6"] = str(exc)
                only = only - {"q6"}
        elif "q6" in only:
            # site.yml makes its own volume group on the data disks
            guest.run("reset", name, capture=False)
            log("q6 (host against the guest): site.yml first and second runs")
            t0 = time.monotonic()
            try:
                results["q6"] = site_run.run(name, opts.quick, log)
                results["q6"]["wall_s"] = time.monotonic() - t0
                log("q6 took %.0f s" % results["q6"]["wall_s"])
            except (RuntimeError, subprocess.CalledProcessError) as exc:
                log("q6 FAILED: %s" % exc)
                results.setdefault("failed", {})["q6"] = str(exc)
                only = only - {"q6"}
        if "q7" in only:
            log("q7 (guest): job start latency under Slurm: plain, job container alone, hpc.jobroot")
            t0 = time.monotonic()
            try:
                if "q6" in results.get("failed", {}):
                    raise RuntimeError("question 6 failed, so the guest has no provisioned Slurm")
                results["q7"] = guest_json(guest, "q7", *plan["q7"])
                results["q7"]["wall_s"] = time.monotonic() - t0
                log("q7 took %.0f s" % results["q7"]["wall_s"])
            except RuntimeError as exc:
                log("q7 FAILED: %s" % exc)
                results.setdefault("failed", {})["q7"] = str(exc)
                only = only - {"q7"}
        results["duration_s"] = time.time() - started
        problems = report.check(results, only)
        problems += ["%s failed: %s" % kv for kv in sorted(results.get("failed", {}).items())]
        if problems and not opts.quick and not opts.only and len(problems) < len(results.get("failed", {})) + 1:
            # a full run with failed questions: still write what was measured, then fail
            json_path = os.path.join(HERE, "results.json")
            with open(json_path, "w", encoding="utf-8") as handle:
                json.dump(results, handle, indent=1, sort_keys=True)
            report.write(results, json_path, out_dir, HERE if out_dir == REPO else out_dir)
        if problems:
            raise RuntimeError("malformed results:\n  " + "\n  ".join(problems))
        if opts.quick or opts.only:
            json_path = os.path.join(out_dir, "results.json")
        else:
            json_path = os.path.join(HERE, "results.json")
        with open(json_path, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=1, sort_keys=True)
            handle.write("\n")
        md = report.write(results, json_path, out_dir, HERE if out_dir == REPO else out_dir)
        ok = True
        log("results: %s; report: %s" % (json_path, md))
        for line in report.headline(results):
            print("bench: %s" % line)
    except (Exception, KeyboardInterrupt, SystemExit) as exc:  # pylint: disable=broad-exception-caught
        log("FAILED: %s" % (exc,))
    finally:
        if booted:
            guest.run("stop", name, capture=False, check=False)
    took = time.time() - started
    if ok:
        print("bench%s: OK, %s answered in %.0f s; report %s" % (
            " --quick" if opts.quick else "", ", ".join(sorted(only)), took,
            os.path.relpath(os.path.join(out_dir, "BENCHMARKS.md"), REPO)))
        return 0
    print("bench%s: FAILED after %.0f s (see the messages above)" % (" --quick" if opts.quick else "", took))
    return 1


if __name__ == "__main__":
    sys.exit(main())
