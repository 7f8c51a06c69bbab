# hpc.jobroot: development and CI entry points.
#
#   make test    everything CI runs, in order (see TEST_TARGETS); sets itself up
#   make demo    the end-to-end demo (scripts/demo.sh)
#   make bench   the full benchmark (bench/run.py)
#   make help    this list
#
# Every target sets up what it needs (system packages, .venv, .build) first,
# so any of them works on a fresh machine.  Each step prints a UTC start stamp
# and its elapsed seconds, and appends them to .build/timings.tsv.
#
# Rules for files in this repo (ansible-test sanity checks them all):
#  * A file with a shebang uses one of: #!/usr/bin/env bash, #!/bin/sh,
#    #!/usr/bin/env python, #!/bin/bash -eu, #!/bin/bash -eux, #!/usr/bin/make -f
#    (NOT "#!/usr/bin/env python3"); under tests/integration/targets/ only the
#    first three.  An executable file must have one of them; a file without a
#    shebang must not be executable.
#  * plugins/modules/*.py: shebang #!/usr/bin/python (or none), never executable.
#  * No tests/sanity/ignore-*.txt entries without a comment saying why.
#  * Every tests/integration/targets/<name>/ has an `aliases` file; a target that
#    mounts or changes the host lists `destructive` and `needs/root`; one not
#    named after a module also lists `context/target`.
#  * Text files are UTF-8, LF line endings, no Unicode quotes (use ' and ").

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.NOTPARALLEL:
.DEFAULT_GOAL := help

REPO    := $(CURDIR)
VENV    := $(REPO)/.venv
BUILD   := $(REPO)/.build
COLL    := $(BUILD)/ansible_collections/hpc/jobroot
SETUP   := $(REPO)/tests/setup
TIMED   := $(SETUP)/timed.sh
PYVER   := 3.11
ANSIBLE_TEST := cd $(COLL) && ansible-test

export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(BUILD)
# One id per make run, so `make test` can summarise its own timings.
ifndef JOBROOT_RUN_ID
JOBROOT_RUN_ID := $(shell date -u +%Y%m%dT%H%M%S)-$(shell echo $$PPID)
endif
export JOBROOT_RUN_ID

TEST_TARGETS := guest-images venv collections lint sanity units promtool integration ctest guest molecule guest-sid molecule-sid changelog build importer install-check ee docs

.PHONY: help test test-targets system guest-images venv collections lint sanity units promtool integration ctest \
        guest molecule guest-sid molecule-sid bench-quick bench demo clean distclean \
        changelog build importer install-check ee docs

help:
	@sed -n '3,7p' $(firstword $(MAKEFILE_LIST)) | sed 's/^# //'
	@echo "  steps of make test: $(TEST_TARGETS)"
	@echo "  others: system guest bench-quick bench demo clean distclean"

test: $(TEST_TARGETS)
	@$(SETUP)/summary.sh "$(JOBROOT_RUN_ID)" $(TEST_TARGETS)

test-targets:
	@echo $(TEST_TARGETS)

# --- set-up ------------------------------------------------------------------

system:
	@$(TIMED) $@ $(SETUP)/system-packages.sh

venv: system
	@$(TIMED) $@ $(SETUP)/venv.sh

collections: venv
	@$(TIMED) $@ bash -c '$(SETUP)/collections.sh && $(SETUP)/get-pip.sh'

# make test's first step: the guest images build in the background while the
# host steps run; `guest` and `guest-sid` wait for them (tests/guest/prebuild.sh).
guest-images: system
	@$(TIMED) $@ $(REPO)/tests/guest/prebuild.sh

# --- checks --------------------------------------------------------------------

lint: collections
	@$(TIMED) $@ bash -c 'ansible-lint $$([ -t 1 ] || echo --nocolor)'

sanity: collections
	@$(TIMED) $@ $(SETUP)/sanity.sh

units: collections
	@$(TIMED) $@ bash -c '$(ANSIBLE_TEST) units --python $(PYVER) --local'

# The alert rules (tests and mutants) and the metrics textfiles, with
# Debian's promtool (tests/promtool/run.sh).
promtool: collections
	@$(TIMED) $@ $(REPO)/tests/promtool/run.sh

# Runs as root and really mounts on this host; targets clean up after themselves.
integration: collections
	@$(TIMED) $@ bash -c '$(ANSIBLE_TEST) integration --python $(PYVER) --local --allow-destructive'

ctest: venv
	@$(TIMED) $@ $(REPO)/tests/c/run.sh

guest: collections
	@$(TIMED) $@ $(REPO)/tests/guest/build-image.sh

molecule: guest
	@$(TIMED) $@ env MOLECULE_SUITES="bookworm trixie" MOLECULE_BENCH_QUICK=1 $(REPO)/tests/guest/run-molecule.sh

# sid (the newest Slurm) may be uninstallable on a given day: then these two
# print "SKIPPED sid: <apt's reason>" and make test goes on.
guest-sid: collections
	@$(TIMED) $@ $(REPO)/tests/guest/optional-suite.sh sid build

molecule-sid: guest-sid
	@$(TIMED) $@ $(REPO)/tests/guest/optional-suite.sh sid molecule

# make molecule runs this on its trixie guest (MOLECULE_BENCH_QUICK=1); alone
# it boots a guest and needs a molecule slurm run's .build/molecule/phases.tsv
# for the second-run ratio (bench/site_run.py from_phases).
bench-quick: guest
	@$(TIMED) $@ $(REPO)/bench/run.py --quick

# Without the guest's code cache for module payloads (tests/guest/guest.sh),
# so question 6's site.yml runs stay comparable with BENCHMARKS.md's.
bench: guest
	@$(TIMED) $@ env GUEST_ANSIBALLZ_CACHE=0 $(REPO)/bench/run.py

demo: guest
	@$(TIMED) $@ $(REPO)/scripts/demo.sh

# --- release: changelog, artifact, import check, install, EE, docs ------------

changelog: venv
	@$(TIMED) $@ $(SETUP)/changelog.sh

build: venv
	@$(TIMED) $@ $(SETUP)/build.sh

importer: build
	@$(TIMED) $@ $(SETUP)/importer.sh

install-check: build
	@$(TIMED) $@ $(SETUP)/install-check.sh

ee: build
	@$(TIMED) $@ $(SETUP)/ee.sh

docs: collections
	@$(TIMED) $@ $(SETUP)/docs.sh

# --- cleaning --------------------------------------------------------------------

# Never delete through a mount: refuse while anything is mounted below the
# trees we remove, and stay on one file system regardless.
clean:
	@if awk '{print $$5}' /proc/self/mountinfo | grep -E -q '^($(BUILD)|$(REPO)/tests/output)(/|$$)'; then \
	    echo "make clean: something is mounted under $(BUILD) or tests/output; unmount it first" >&2; exit 1; fi
	rm -rf --one-file-system $(BUILD) $(REPO)/.ansible $(REPO)/tests/output

distclean: clean
	rm -rf --one-file-system $(VENV)
