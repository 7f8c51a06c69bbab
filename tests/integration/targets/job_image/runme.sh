#!/usr/bin/env bash
# job_image integration test. test.yml drives the role through role.yml,
# one ansible-playbook run per step, so each step's PLAY RECAP gives an exact
# changed/failed count for the four-step pattern (check mode, apply,
# idempotent re-run, idempotent check-mode re-run).
set -eux
cd "$(dirname "$0")"
inventory="${INVENTORY_PATH:-}"
if [ -z "$inventory" ]; then  # run by hand, outside ansible-test
    inventory=$(mktemp)
    trap 'rm -f "$inventory"' EXIT
    printf 'testhost ansible_connection=local ansible_python_interpreter=%s\n' "$(command -v python3)" >"$inventory"
fi
start=$SECONDS
ansible-playbook -i "$inventory" test.yml -e "ci_inventory=$inventory" "$@"
echo "job_image integration target: $((SECONDS - start)) s"
