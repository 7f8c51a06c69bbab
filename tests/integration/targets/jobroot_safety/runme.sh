#!/usr/bin/env bash
# ansible-test integration entry point: the safety rules of issue 11, on this
# host, with real mounts, chroot and processes (README, "Safety"). Each script
# cleans up after itself, also when it fails. Python scripts rather than
# playbooks: the attacks race the epilogue inside one process tree.
set -eux
cd "$(dirname "$0")"
root=""
IFS=: read -r -a paths <<< "${ANSIBLE_COLLECTIONS_PATH:-}"
for p in "${paths[@]}"; do
  if [ -f "$p/ansible_collections/hpc/jobroot/plugins/module_utils/beneath.py" ]; then
    root=$p
    break
  fi
done
if [ -z "$root" ]; then
  root=$(cd ../../../../../../.. && pwd)  # run from .build/ansible_collections/hpc/jobroot
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export COLLECTION="$root/ansible_collections/hpc/jobroot"
for test in race.py hook.py holders.py kill_steps.py; do
  time python "$test"
done
