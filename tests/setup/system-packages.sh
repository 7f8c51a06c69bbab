#!/usr/bin/env bash
# Install the Debian packages listed in system-packages.txt that are missing.
# Runs `apt-get update` once, and only when something has to be installed,
# so a second run costs one dpkg-query.
set -euo pipefail
# shellcheck source=tests/setup/lib.sh
. "$(dirname "$0")/lib.sh"

mapfile -t wanted < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$SETUP_DIR/system-packages.txt" | grep -v '^$')

# One dpkg-query for all: it prints "name status" for the known packages.
installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${wanted[@]}" 2>/dev/null \
    | awk '$2 == "installed" {print $1}' || true)
missing=()
for pkg in "${wanted[@]}"; do
    grep -qxF "$pkg" <<<"$installed" || missing+=("$pkg")
done

if [ ${#missing[@]} -eq 0 ]; then
    log "system packages present (${#wanted[@]})"
    exit 0
fi

[ "$(id -u)" -eq 0 ] || die "missing Debian packages (run as root, or install them): ${missing[*]}"
log "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
log "installed ${#missing[@]} package(s)"
