#!/usr/bin/env bash
# make promtool: the alert rules and the metrics, checked with Prometheus's
# own promtool (Debian's prometheus package, tests/setup/system-packages.txt).
#  1. promtool check rules on roles/job_hooks/files/jobroot-alerts.yml;
#  2. promtool test rules: each alert fires in one case and stays quiet in
#     another (jobroot-alerts.test.yml);
#  3. mutants of the rules, each of which the tests must catch (a test that
#     passes whatever the rule says would let them through);
#  4. promtool check metrics on the textfiles the library writes (names,
#     units, _total on counters, HELP and TYPE): any remark fails.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$HERE/../.." && pwd)
RULES=roles/job_hooks/files/jobroot-alerts.yml
command -v promtool >/dev/null || { echo "promtool not found (apt-get install prometheus)" >&2; exit 1; }
work=$(mktemp -d /tmp/jobroot-promtool.XXXXXX)
trap 'rm -rf "$work"' EXIT

cd "$REPO_ROOT"
promtool check rules "$RULES"
(cd tests/promtool && promtool test rules jobroot-alerts.test.yml)

# mutants: a copy of the tree's two files with one change each
mkdir -p "$work/mutant/tests/promtool" "$work/mutant/$(dirname "$RULES")"
cp tests/promtool/jobroot-alerts.test.yml "$work/mutant/tests/promtool/"
mutants=(
    's/for: 30m/for: 5m/'                                                # leaks: the 30-minute grace
    's/ and on (instance) jobroot_gc_stale_jobs > 0//'                   # teardowns: only while gc cannot finish
    's/> 6 \* 3600/> 0.5 * 3600/'                                        # gc: the 6-hour age
    's/jobroot_pool_data_used_ratio{provisioning="thin"}/jobroot_pool_data_used_ratio/'  # pool: thin only
    's/jobroot_pool_metadata_used_ratio > 0.8/jobroot_pool_metadata_used_ratio > 0.9/'   # pool: metadata
)
for m in "${mutants[@]}"; do
    sed "$m" "$RULES" > "$work/mutant/$RULES"
    cmp -s "$RULES" "$work/mutant/$RULES" && { echo "mutant changes nothing: $m" >&2; exit 1; }
    if (cd "$work/mutant/tests/promtool" && promtool test rules jobroot-alerts.test.yml) >"$work/mutant.out" 2>&1; then
        echo "FAIL mutant not caught by the rule tests: $m" >&2
        exit 1
    fi
    echo "mutant caught: $m ($(grep -m 1 -o 'name: [^,]*' "$work/mutant.out"))"
done

mkdir "$work/prom"
PYTHONPATH="$REPO_ROOT/.build" python "$HERE/render_sample.py" "$work/prom"
n=0
for f in "$work"/prom/*.prom; do
    out=$(promtool check metrics < "$f" 2>&1) || { echo "$out" >&2; echo "FAIL promtool check metrics: $(basename "$f")" >&2; exit 1; }
    [ -z "$out" ] || { echo "$out" >&2; echo "FAIL promtool check metrics remarks: $(basename "$f")" >&2; exit 1; }
    n=$((n + 1))
done
[ "$n" -eq 4 ] || { echo "FAIL expected 4 textfiles, got $n" >&2; exit 1; }
echo "promtool: rules checked, rule tests passed, ${#mutants[@]} mutants caught, $n textfiles clean"
