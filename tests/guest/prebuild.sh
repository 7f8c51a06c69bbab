#!/usr/bin/env bash
# The first step of make test: start building the test guests' images
# (trixie, then sid) in the background and return at once, so debootstrap
# downloads and unpacks while the host steps (lint, sanity, units,
# integration) run.  On a fresh machine the two builds take about 200 s and
# 330 s; in the background they are mostly done before `make guest` needs
# the first.
#
# Nothing waits for this job explicitly: `make guest` and `make guest-sid`
# run build-image.sh themselves, which takes the image cache's lock (one build
# at a time) and so waits for a background build still in progress, then
# finds its image in the cache.  If a background build fails, the step's own
# build runs again in the foreground and fails or skips there, with its
# reason (optional-suite.sh for sid).  The job stays in make's process group,
# so `timeout` (.ci/run) or Ctrl-C ends it with make.  Its output is in
# .build/prebuild.log.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$HERE/../.." && pwd)
LOG="$REPO_ROOT/.build/prebuild.log"
mkdir -p "$REPO_ROOT/.build"

(
    for suite in trixie sid; do
        printf '[prebuild %s] %s\n' "$(date -u +%H:%M:%S)" "$suite"
        GUEST_SUITE=$suite nice -n 5 "$HERE/build-image.sh" \
            || printf '[prebuild] %s failed (rc=%s); its make step builds it again\n' "$suite" "$?"
    done
    printf '[prebuild %s] done\n' "$(date -u +%H:%M:%S)"
) >"$LOG" 2>&1 </dev/null &
printf 'building the trixie and sid guest images in the background (pid %s); log: %s\n' "$!" "$LOG"
