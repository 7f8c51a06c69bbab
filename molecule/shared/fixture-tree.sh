#!/usr/bin/env bash
# Make a minimal image master tree from the test guest's own binaries: a
# fixture, named as such (the guest has no network for a real userland).
#
#   fixture-tree.sh DEST BINARY...
#
# DEST gets a usr-merged layout (bin, lib, lib64, sbin link into usr), the
# listed binaries from /usr/bin with the libraries ldd names, sh linked to
# dash when dash is listed, empty /etc/passwd, group, hosts and resolv.conf
# (job_image's host files are bound over them), /tmp and /var/tmp (1777),
# and empty home, dev, proc and sys.  DEST is replaced if it is there.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 DEST BINARY..." >&2; exit 2; }
d=$1
shift
case "$d" in /var/lib/hpc-jobroot/build/*) ;; *) echo "$0: $d is not below /var/lib/hpc-jobroot/build" >&2; exit 2 ;; esac
rm -rf -- "$d"
mkdir -p "$d/usr/bin" "$d/usr/lib" "$d/usr/lib64" "$d/etc" "$d/tmp" "$d/var/tmp" "$d/home" "$d/dev" "$d/proc" "$d/sys"
chmod 1777 "$d/tmp" "$d/var/tmp"
for l in bin lib lib64 sbin; do ln -s "usr/${l/sbin/bin}" "$d/$l"; done
for b in "$@"; do cp -L "/usr/bin/$b" "$d/usr/bin/"; done
if [ -e "$d/usr/bin/dash" ]; then ln -s dash "$d/usr/bin/sh"; fi
for lib in $(cd /usr/bin && ldd "$@" | awk '$2 == "=>" {print $3} $1 ~ /^\/.*ld-linux/ {print $1}' | sort -u); do
    mkdir -p "$d$(dirname "$lib")"
    cp -L "$lib" "$d$lib"
done
touch "$d/etc/passwd" "$d/etc/group" "$d/etc/hosts" "$d/etc/resolv.conf"
