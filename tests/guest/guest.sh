#!/usr/bin/env bash
# Control the QEMU test guest: a Debian VM (suite: GUEST_SUITE, default trixie;
# see build-image.sh) whose kernel has
# device-mapper, so real LVM (and later real slurmd) can be tested on hosts
# that have none.  Software emulation (TCG): KVM does not boot guests here.
#
# Usage: tests/guest/guest.sh COMMAND NAME [OPTIONS]
#
#   start NAME [--disks N] [--disk-size 8G] [--memory 1536] [--timeout 400]
#       Build or reuse the cached image (build-image.sh), boot it with a
#       throwaway qcow2 overlay and N raw sparse data disks (default 1, 8G),
#       SSH forwarded from a free 127.0.0.1 port, and wait until SSH answers.
#       Prints the elapsed time.  Inside the guest the data disks are
#       /dev/disk/by-id/virtio-pv1 ... virtio-pvN; the root file system is
#       LABEL=root (never assume /dev/vda).  GUEST_KERNEL_ARGS adds to the
#       kernel command line (for example vsyscall=emulate).  A kernel panic
#       before SSH answers is retried once (the first console is kept as
#       console.panic.log); a second one fails the start.
#   stop NAME
#       Kill the guest by the PID in its pidfile (never by name) and delete its
#       overlay and data disks.  Safe to call when it is not running.
#   ssh NAME [CMD...]
#       Run CMD as root in the guest (an interactive shell without CMD).
#   inventory NAME
#       Write an Ansible inventory for the guest (host NAME, pipelining,
#       ControlPersist with keep-alives, /usr/bin/python3, the data disks
#       in the host var guest_data_disks) and print its path.
#   info NAME
#       Print the guest's connection as JSON: instance, address, user, port,
#       identity_file, data_disks.
#   reset NAME
#       Without rebooting: unmount everything mounted from device-mapper
#       devices, remove every VG, LV and PV, detach loop devices, and wipefs
#       the data disks.  The guest's own root is not on LVM and is untouched.
#   status NAME
#       Exit 0 if the guest is running.
#   console NAME [LINES]
#       Print the last LINES (default 20) lines of the guest's serial console
#       (console.log, kept after stop), terminal control sequences and
#       blank lines removed: where a boot stopped, whether it is running or
#       not.
#
# `start` also installs tests/guest/ansiballz_cache.py in the guest (a
# compiled-code cache for Ansible's module payloads, which makes each module
# run under TCG about a third cheaper; GUEST_ANSIBALLZ_CACHE=0 leaves it out).
#
# State lives in .build/guests/NAME/ (gitignored): root.qcow2, pvN.img,
# qemu.pid, console.log (the serial console: read it when a boot fails),
# info.json, inventory.yml.
#
# Only one guest runs at a time (the machines have 2 cores and TCG is slow);
# `start` refuses while another guest of this checkout runs, unless
# GUEST_ALLOW_PARALLEL=1.
#
# Typical use from another script:
#   tests/guest/guest.sh start slurm --disks 2
#   trap 'tests/guest/guest.sh stop slurm' EXIT
#   inv=$(tests/guest/guest.sh inventory slurm)
#   ansible-playbook -i "$inv" site.yml
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$HERE/../.." && pwd)
GUESTS_DIR="${GUESTS_DIR:-$REPO_ROOT/.build/guests}"

log() { printf '[guest %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf '[guest] ERROR: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; exit 2; }

[ $# -ge 2 ] || usage
CMD=$1
NAME=$2
shift 2
[[ $NAME =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$ ]] || die "bad guest name: $NAME"
STATE="$GUESTS_DIR/$NAME"
PIDFILE="$STATE/qemu.pid"

# The PID of our running qemu, or nothing.  A PID is only trusted if that
# process is a qemu whose command line names this guest's pidfile (so a
# reused PID is never killed).
running_pid() {
    local pid
    [ -f "$PIDFILE" ] || return 0
    pid=$(cat "$PIDFILE" 2>/dev/null || true)
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "qemu-system.*-pidfile $PIDFILE"; then
        echo "$pid"
    fi
}

info_field() {
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$STATE/info.json" "$1"
}

SSH_OPTS=(-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
          -o BatchMode=yes -o ConnectTimeout=10 -o ServerAliveInterval=15)

ssh_guest() {
    [ -f "$STATE/info.json" ] || die "guest $NAME is not running (no $STATE/info.json)"
    ssh "${SSH_OPTS[@]}" -o ControlMaster=auto -o ControlPersist=120 \
        -o "ControlPath=/tmp/hpc-jobroot-guest-%C" \
        -i "$(info_field identity_file)" -p "$(info_field port)" root@127.0.0.1 "$@"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

cmd_start() {
    local disks=1 disk_size=8G memory=1536 timeout=400
    while [ $# -gt 0 ]; do
        case "$1" in
            --disks) disks=$2; shift 2 ;;
            --disk-size) disk_size=$2; shift 2 ;;
            --memory) memory=$2; shift 2 ;;
            --timeout) timeout=$2; shift 2 ;;
            *) die "start: unknown option $1" ;;
        esac
    done
    [[ $disks =~ ^[0-9]$ ]] || die "--disks must be 0-9"
    [[ $disk_size =~ ^[0-9]+[KMGT]?$ ]] || die "--disk-size like 8G"
    [[ $memory =~ ^[0-9]+$ ]] || die "--memory in MiB"
    [ -z "$(running_pid)" ] || die "guest $NAME is already running (pid $(running_pid)); stop it first"
    if [ "${GUEST_ALLOW_PARALLEL:-0}" != 1 ]; then
        local other
        for other in "$GUESTS_DIR"/*/; do
            [ -d "$other" ] || continue
            other=$(basename "$other")
            [ "$other" = "$NAME" ] && continue
            if [ -n "$(PIDFILE="$GUESTS_DIR/$other/qemu.pid" running_pid)" ]; then
                die "guest '$other' is running; stop it (tests/guest/guest.sh stop $other) or set GUEST_ALLOW_PARALLEL=1"
            fi
        done
    fi
    command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found (apt-get install qemu-system-x86 qemu-utils)"

    local image attempt
    image=$("$HERE/build-image.sh")
    rm -rf "$STATE"
    mkdir -p "$STATE"
    # A kernel panic during boot is retried once, on fresh disks: the sid
    # kernel panicked once in CI at 25 s ("Fatal exception in interrupt",
    # RIP inside an instruction: most likely an emulation fault of
    # multi-threaded TCG, not a fault of the guest's software).  Its
    # console is kept as console.panic.log.
    for attempt in 1 2; do
        boot_once "$image" "$disks" "$disk_size" "$memory" "$timeout"
        [ -f "$STATE/panicked" ] || break
        rm -f "$STATE/panicked"
        [ "$attempt" = 1 ] || die "the guest's kernel panicked during boot twice (consoles: $STATE/console.panic.log, $STATE/console.log)"
        mv "$STATE/console.log" "$STATE/console.panic.log"
        log "WARNING: the guest's kernel panicked during boot; booting once more on fresh disks (console kept: $STATE/console.panic.log)"
    done
    install_ansiballz_cache
}

# One boot of the guest on a fresh overlay and fresh data disks; wait for
# SSH.  If the kernel panicked before SSH answered, stops QEMU and leaves
# the file "panicked" in the state directory; dies on any other failure.
boot_once() {
    local image=$1 disks=$2 disk_size=$3 memory=$4 timeout=$5 t0 port i drives=() data_disks=()
    t0=$(date +%s)
    rm -f "$STATE/root.qcow2" "$STATE"/pv*.img "$STATE/console.log"
    qemu-img create -q -f qcow2 -b "$image/base.img" -F raw "$STATE/root.qcow2"
    for i in $(seq 1 "$disks"); do
        truncate -s "$disk_size" "$STATE/pv$i.img"
        drives+=(-drive "file=$STATE/pv$i.img,if=none,id=pv$i,format=raw,cache=unsafe"
                 -device "virtio-blk-pci,drive=pv$i,serial=pv$i")
        data_disks+=("\"/dev/disk/by-id/virtio-pv$i\"")
    done
    port=$(free_port)
    cat >"$STATE/info.json" <<EOF
{"instance": "$NAME", "address": "127.0.0.1", "user": "root", "port": $port,
 "identity_file": "$image/id_ed25519", "image": "$image",
 "data_disks": [$(IFS=,; echo "${data_disks[*]}")]}
EOF
    log "booting $NAME (TCG, ${memory} MiB, $disks x $disk_size data disks, ssh on 127.0.0.1:$port)"
    qemu-system-x86_64 -accel tcg,thread=multi -cpu max -m "$memory" -smp 2 -machine q35 \
        -kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
        -append "root=LABEL=root rw console=ttyS0 net.ifnames=0${GUEST_KERNEL_ARGS:+ $GUEST_KERNEL_ARGS}" \
        -drive "file=$STATE/root.qcow2,if=virtio,format=qcow2,cache=unsafe" \
        "${drives[@]}" \
        -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$port-:22" -device virtio-net-pci,netdev=n0 \
        -display none -serial "file:$STATE/console.log" -daemonize -pidfile "$PIDFILE" \
        || die "qemu failed to start"

    local waited=0
    until ssh_guest true 2>/dev/null; do
        if grep -q 'Kernel panic - not syncing' "$STATE/console.log" 2>/dev/null; then
            grep -m 1 -B 10 'Kernel panic - not syncing' "$STATE/console.log" >&2
            cmd_stop
            touch "$STATE/panicked"
            return 0
        fi
        [ -n "$(running_pid)" ] || { tail -n 20 "$STATE/console.log" >&2; die "qemu exited during boot"; }
        waited=$(( $(date +%s) - t0 ))
        if [ "$waited" -ge "$timeout" ]; then
            tail -n 20 "$STATE/console.log" >&2
            cmd_stop
            die "no SSH after $timeout s"
        fi
        sleep 3
    done
    log "guest $NAME up: SSH answered after $(( $(date +%s) - t0 )) s (pid $(running_pid))"
}

# Test guests only: the compiled-code cache for Ansible's module payloads
# (ansiballz_cache.py says why), imported by every python3 of the guest
# through a .pth file in its site-packages.  GUEST_ANSIBALLZ_CACHE=0 leaves
# it out.
install_ansiballz_cache() {
    [ "${GUEST_ANSIBALLZ_CACHE:-1}" = 1 ] || return 0
    # shellcheck disable=SC2016  # expanded by the guest's shell
    ssh_guest 'set -e
        site=$(python3 -c "import site; print(site.getsitepackages()[0])")
        mkdir -p "$site"
        cat > "$site/hpc_jobroot_test_ansiballz_cache.py"
        echo "import hpc_jobroot_test_ansiballz_cache" > "$site/hpc_jobroot_test_ansiballz_cache.pth"
        python3 -c "import zipimport, hpc_jobroot_test_ansiballz_cache as c; assert zipimport._compile_source is c._compile_source"' \
        <"$HERE/ansiballz_cache.py" || log "WARNING: the module-payload code cache is not active in $NAME: module runs are slower"
}

cmd_stop() {
    local pid i
    pid=$(running_pid)
    if [ -n "$pid" ]; then
        ssh -O exit -o "ControlPath=/tmp/hpc-jobroot-guest-%C" -p "$(info_field port)" root@127.0.0.1 2>/dev/null || true
        kill "$pid"
        for i in $(seq 1 20); do
            [ -d "/proc/$pid" ] || break
            sleep 0.5
        done
        [ -d "/proc/$pid" ] && kill -KILL "$pid"
        log "guest $NAME stopped (pid $pid)"
    else
        log "guest $NAME is not running"
    fi
    # the throwaway disks; console.log stays for a post-mortem
    rm -f "$STATE/root.qcow2" "$STATE"/pv*.img "$PIDFILE" "$STATE/info.json" "$STATE/inventory.yml"
}

cmd_inventory() {
    [ -n "$(running_pid)" ] || die "guest $NAME is not running"
    local inv="$STATE/inventory.yml"
    python3 - "$STATE/info.json" "$inv" <<'EOF'
import json, sys
info = json.load(open(sys.argv[1]))
host = {
    "ansible_host": info["address"],
    "ansible_port": info["port"],
    "ansible_user": info["user"],
    "ansible_ssh_private_key_file": info["identity_file"],
    "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
    # keep-alives: a master connection whose guest reset or hung ends within
    # a minute instead of holding every command sent through it
    "ansible_ssh_args": "-o ControlMaster=auto -o ControlPersist=300s -o ServerAliveInterval=15 -o ServerAliveCountMax=4",
    "ansible_ssh_pipelining": True,
    "ansible_python_interpreter": "/usr/bin/python3",
    "guest_data_disks": info["data_disks"],
}
# JSON is valid YAML; written as YAML-flavoured JSON for ansible's yaml plugin
with open(sys.argv[2], "w") as f:
    json.dump({"all": {"hosts": {info["instance"]: host}}}, f, indent=2)
    f.write("\n")
EOF
    echo "$inv"
}

cmd_console() {
    local lines=${1:-20}
    [[ $lines =~ ^[1-9][0-9]*$ ]] || die "console: LINES must be a positive number"
    [ -f "$STATE/console.log" ] || die "guest $NAME has no console log"
    python3 -c '
import re, sys
text = sys.stdin.buffer.read().decode("utf-8", "replace")
# CSI sequences, OSC and DCS strings, other escapes (systemd and the getty
# write them)
text = re.sub(r"\x1b(\[[0-9;?!]*[A-Za-z]|[P\]][^\x07\x1b]*(\x07|\x1b\\)?|[@-Z^_])", "", text)
# and the ssh generator failing at each daemon-reload (these guests have
# no vsock): harmless, and it would fill the tail
lines = [line.rstrip() for line in text.replace("\r", "").splitlines()
         if re.search("[A-Za-z]{3}", line) and "systemd-ssh-generator" not in line]
print("\n".join(lines[-int(sys.argv[1]):]))' "$lines" <"$STATE/console.log"
}

cmd_reset() {
    [ -n "$(running_pid)" ] || die "guest $NAME is not running"
    local t0; t0=$(date +%s)
    ssh_guest bash -s <"$HERE/reset-in-guest.sh" >&2 || die "reset of $NAME failed"
    log "guest $NAME reset in $(( $(date +%s) - t0 )) s"
}

case "$CMD" in
    start) cmd_start "$@" ;;
    stop) cmd_stop ;;
    ssh) ssh_guest "$@" ;;
    inventory) cmd_inventory ;;
    info) [ -n "$(running_pid)" ] || die "guest $NAME is not running"; cat "$STATE/info.json" ;;
    reset) cmd_reset ;;
    status) [ -n "$(running_pid)" ] ;;
    console) cmd_console "$@" ;;
    *) usage ;;
esac
