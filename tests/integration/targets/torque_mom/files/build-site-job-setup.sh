#!/usr/bin/env bash
# Build tests/c/site_job_setup_cli.c with the patched site_job_setup() (the
# role's 4.1-6.1 patch applied with patch(1) to the original side of its
# hunk, behind the stand-in head, as tests/c/run.sh does), as C++ like
# Torque 6.  The torque_mom integration target runs it on the layout the
# real hook made.
#
#   build-site-job-setup.sh COLLECTION_ROOT OUTDIR
#
# Prints the path of the binary.
set -euo pipefail
root=$1 out=$2
patch=$root/roles/torque_mom/files/torque-4.1-6.1-site_job_setup.patch
standin=$root/tests/c/standin
mkdir -p "$out/tree/src/lib/Libsite"
{
  echo '/* stand-in head of site_mom_jst.c (torque_mom integration target) */'
  echo '#include "torque_standin.h"'
  echo '#ifndef UNSUPPORTED_MACH'
  awk '/^@@ /{h=1;next} !h{next} /^\\/{next} /^[ -]/{print substr($0,2);next} /^$/{print "";next}' "$patch"
} > "$out/tree/src/lib/Libsite/site_mom_jst.c"
patch -p1 --batch --forward --silent -d "$out/tree" -i "$patch"
g++ -x c++ -std=gnu++11 -O1 -Wall -Wextra -Werror -I"$standin" -o "$out/site_job_setup_cli" \
  "$root/tests/c/site_job_setup_cli.c" "$out/tree/src/lib/Libsite/site_mom_jst.c" "$standin/standin.c"
echo "$out/site_job_setup_cli"
