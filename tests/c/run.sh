#!/usr/bin/env bash
# C unit test of the Torque site_job_setup() patches (make ctest).
#
# For each patch in roles/torque_mom/files/:
#   1. rebuild the patched hunk's original side (the few context lines the
#      patch carries) behind a stand-in head of our own, and apply the patch
#      to it with patch(1), as the role does to a real Torque tree;
#   2. compile the patched file together with test_site_job_setup.c and the
#      stand-in Torque functions in standin/, warnings as errors, under
#      AddressSanitizer and UndefinedBehaviorSanitizer, in the language and
#      dialect that Torque version builds with (4.1-6.1: C++ as Torque 6 is;
#      2.5: C89 with Torque's own --enable-gcc-warnings flags);
#   3. run it (as root: it checks file ownership).
# Then: the two patches must add the same code apart from their marked
# compatibility lines, and five deliberately broken copies (mutants) must make
# the test fail, so that an off-by-one or an overflow cannot pass unnoticed.
#
# Prints one line per check and a summary line; exits non-zero on any failure.
# Needs gcc, g++, patch (tests/setup/system-packages.txt).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
files=$repo/roles/torque_mom/files
standin=$here/standin

for tool in gcc g++ patch; do
  command -v "$tool" >/dev/null || { echo "tests/c: $tool is missing" >&2; exit 2; }
done
if [ "$(id -u)" != 0 ]; then
  echo "tests/c: must run as root (the test chowns files to check ownership)" >&2
  exit 2
fi

scratch=$(mktemp -d /tmp/jobroot-ctest.XXXXXX)
trap 'rm -rf -- "$scratch"' EXIT

results=()
failures=0

note() { printf '%s\n' "$*"; }
result() { # name status
  results+=("$1: $2")
  if [ "$2" != ok ]; then failures=$((failures + 1)); fi
}

# The original side of the patch's single hunk (context and '-' lines).
old_side() {
  awk '
    /^@@ / { hunks++; inhunk = 1; next }
    !inhunk { next }
    /^\\/ { next }
    /^[ -]/ { print substr($0, 2); next }
    /^$/ { print ""; next }
  ' "$1"
  [ "$(grep -c '^@@ ' "$1")" = 1 ] || { echo "tests/c: $1 must have exactly one hunk" >&2; return 1; }
}

# The patched side of a patch's hunk (context and '+' lines), without its
# compatibility block (the comment naming the Torque versions and the #define
# after it).
new_side() {
  awk '
    /^@@ / { inhunk = 1; next }
    !inhunk { next }
    /^\\/ { next }
    /^[ +]/ { print substr($0, 2); next }
    /^$/ { print ""; next }
  ' "$1" |
    awk '/^\/\* Torque .*decode_arst\(\)/ { skip = 3 } skip > 0 { skip--; next } { print }'
}

# Build one variant.  $1 patch, $2 variant dir, $3 "cxx" or "c89", $4 extra sed
# expression applied to the patched file (a mutant) or "".
build() {
  local patch=$1 dir=$2 lang=$3 mutate=$4 work
  work=$dir/work
  mkdir -p "$dir/tree/src/lib/Libsite" "$work"
  {
    echo '/* stand-in head of site_mom_jst.c (tests/c/run.sh), ends inside #ifndef */'
    echo '#include "torque_standin.h"'
    echo '#ifndef UNSUPPORTED_MACH'
    old_side "$patch"
  } > "$dir/tree/src/lib/Libsite/site_mom_jst.c"
  patch -p1 --batch --forward --silent -d "$dir/tree" -i "$patch"
  if [ -n "$mutate" ]; then
    cp "$dir/tree/src/lib/Libsite/site_mom_jst.c" "$dir/orig.c"
    sed -i -e "$mutate" "$dir/tree/src/lib/Libsite/site_mom_jst.c"
    if cmp -s "$dir/orig.c" "$dir/tree/src/lib/Libsite/site_mom_jst.c"; then
      echo "tests/c: mutant '$mutate' changed nothing" >&2
      return 1
    fi
  fi
  local common=(-O1 -g -fno-omit-frame-pointer "-fsanitize=address,undefined"
    -fno-sanitize-recover=all -Wall -Wextra -Werror
    -I"$standin" -I"$dir/tree/src/lib/Libsite"
    "-DJOBROOT_DEFAULT_BASE=\"$work/roots\"")
  if [ "$lang" = cxx ]; then
    g++ -x c++ -std=gnu++11 "${common[@]}" -o "$dir/test" \
      "$here/test_site_job_setup.c" "$standin/standin.c"
  else
    # Torque 2.5's --enable-gcc-warnings flags, on top of ours
    gcc -std=gnu89 -pedantic -W -Wno-long-long "${common[@]}" -DSTANDIN_TORQUE2 \
      -o "$dir/test" "$here/test_site_job_setup.c" "$standin/standin.c"
  fi
  # and once without sanitizers at -O2 with fortification: more warnings
  if [ "$lang" = cxx ]; then
    g++ -x c++ -std=gnu++11 -O2 -D_FORTIFY_SOURCE=2 -Wall -Wextra -Werror \
      -I"$standin" -I"$dir/tree/src/lib/Libsite" -c -o "$dir/o2.o" \
      "$dir/tree/src/lib/Libsite/site_mom_jst.c"
  else
    gcc -std=gnu89 -pedantic -W -Wno-long-long -O2 -D_FORTIFY_SOURCE=2 -Wall -Wextra \
      -Werror -DSTANDIN_TORQUE2 -I"$standin" -I"$dir/tree/src/lib/Libsite" -c \
      -o "$dir/o2.o" "$dir/tree/src/lib/Libsite/site_mom_jst.c"
  fi
}

run_variant() { # name patch lang
  local name=$1 patch=$2 lang=$3 dir=$scratch/$1
  note "== $name: $(basename "$patch") ($lang)"
  if ! build "$patch" "$dir" "$lang" ""; then
    result "$name" "build failed"
    return
  fi
  if ASAN_OPTIONS=detect_leaks=1:log_path=$dir/san UBSAN_OPTIONS=log_path=$dir/san \
      "$dir/test" "$dir/work"; then
    result "$name" ok
  else
    cat "$dir"/san.* 2>/dev/null || true
    result "$name" "FAILED"
  fi
}

# A mutant must make the test fail (non-zero exit: a failed check or a
# sanitizer report).
run_mutant() { # name patch lang sed-expression
  local name=$1 patch=$2 lang=$3 expr=$4 dir=$scratch/$1 out
  note "== $name (must be caught): $expr"
  if ! build "$patch" "$dir" "$lang" "$expr"; then
    result "$name" "mutant did not build"
    return
  fi
  out=$dir/out.txt
  # sanitizer reports go to files: the test redirects stderr while it runs
  if ASAN_OPTIONS=log_path=$dir/san UBSAN_OPTIONS=log_path=$dir/san \
      "$dir/test" "$dir/work" >"$out" 2>&1; then
    tail -n 3 "$out"
    result "$name" "NOT CAUGHT"
  else
    grep -h -m 1 -E 'ERROR: AddressSanitizer|runtime error' "$dir"/san.* 2>/dev/null ||
      grep -m 3 '^FAIL' "$out" || tail -n 3 "$out"
    result "$name" ok
  fi
}

p6=$files/torque-4.1-6.1-site_job_setup.patch
p2=$files/torque-2.5-site_job_setup.patch

run_variant torque-4.1-6.1 "$p6" cxx
run_variant torque-2.5 "$p2" c89

note "== the two patches add the same code apart from their compatibility lines"
if diff <(new_side "$p6") <(new_side "$p2"); then
  result "same code in both patches" ok
else
  result "same code in both patches" "DIFFERENT"
fi

# reading one byte more than the buffer holds: AddressSanitizer must see it
run_mutant mutant-read-overflow "$p6" cxx 's/while (len < bufsize - 1)/while (len < bufsize)/;s/bufsize - 1 - len)/bufsize - len)/'
# escaping with an off-by-one bound: writes the NUL one past the buffer
run_mutant mutant-escape-bound "$p2" c89 's/if (o + need >= outsize)/if (o + need > outsize)/'
# a record buffer one byte short: the path at the limit must still be accepted
run_mutant mutant-short-buffer "$p6" cxx 's/char   root\[PATH_MAX + 2\];/char   root[PATH_MAX + 1];/'
# the old behaviour: a PBS_O_ROOTDIR the job set (qsub -D) is not looked at
run_mutant mutant-job-picks-root "$p6" cxx 's/  set = get_job_envvar(pjob, varname);/  set = NULL;/'
# PBS_O_ROOTDIR in the job's variables but not in its environment
run_mutant mutant-no-env "$p2" c89 's/  bld_env_variables(&vtable, varname, realroot);/  (void)vtable;/'

note ""
for r in "${results[@]}"; do note "  $r"; done
if [ "$failures" = 0 ]; then
  note "tests/c: PASS (${#results[@]} steps: 2 patch variants, code identity, 5 mutants caught)"
  exit 0
fi
note "tests/c: FAIL ($failures of ${#results[@]} steps failed)"
exit 1
