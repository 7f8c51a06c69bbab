#!/usr/bin/env bash
# ansible-test integration entry point.  A script rather than a role-style
# target: a target role named torque_mom would be resolved to the collection's
# own role of that name.  The test needs the collection's files (the role's
# patch, tests/c/standin), which ansible-test does not copy next to the
# target, so find the collection through ANSIBLE_COLLECTIONS_PATH.
set -eux
cd "$(dirname "$0")"
root=""
IFS=: read -r -a paths <<< "${ANSIBLE_COLLECTIONS_PATH:-}"
for p in "${paths[@]}"; do
  if [ -f "$p/ansible_collections/hpc/jobroot/roles/torque_mom/files/torque-4.1-6.1-site_job_setup.patch" ]; then
    root=$p/ansible_collections/hpc/jobroot
    break
  fi
done
if [ -z "$root" ]; then
  root=$(cd ../../../.. && pwd)  # run from a checkout
fi
ansible-playbook -i localhost, -c local -e ansible_python_interpreter="$(command -v python)" \
  -e collection_root="$root" "$@" test.yml
