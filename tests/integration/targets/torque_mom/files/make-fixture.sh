#!/usr/bin/env bash
# Make a small source tarball laid out like Torque's, for the torque_mom
# integration test (the real Torque source is not available in CI).
#
#   make-fixture.sh PATCH STANDIN_DIR OUTDIR VERSION good|bad
#
# The tarball OUTDIR/torque-VERSION.tar.gz holds torque-VERSION/ with:
#  - src/lib/Libsite/site_mom_jst.c: a head of our own that includes the test
#    stand-in headers, then the original side of PATCH's hunk (the context the
#    patch carries), so the patch applies as it does to Torque; with "bad" the
#    function body differs, so the patch does not apply;
#  - standin/: the stand-in headers from tests/c/standin, so %build can compile
#    the patched file;
#  - torque.spec: a minimal spec of our own with the Torque package layout
#    (torque, torque-client), the torque_home macro, Torque's way of naming
#    the version (tarversion; Version: %{version}) and of taking CXXFLAGS from
#    the cxxflags macro (buildutils/torque.spec.in of Torque 6.1).
set -euo pipefail

patch=$1 standin=$2 out=$3 version=$4 mode=$5
top=$out/torque-$version
rm -rf -- "$top"
mkdir -p "$top/src/lib/Libsite" "$top/standin"
cp "$standin/torque_standin.h" "$standin/log.h" "$standin/mom_func.h" "$top/standin/"

{
  echo '/* fixture head (hpc.jobroot tests): stand-in headers, ends inside #ifndef */'
  echo '#include "torque_standin.h"'
  echo '#ifndef UNSUPPORTED_MACH'
  awk '
    /^@@ / { inhunk = 1; next }
    !inhunk { next }
    /^\\/ { next }
    /^[ -]/ { print substr($0, 2); next }
    /^$/ { print ""; next }
  ' "$patch"
} > "$top/src/lib/Libsite/site_mom_jst.c"

if [ "$mode" = bad ]; then
  sed -i 's/return (0);/return (1);  \/* a site change: the patch must not apply *\//' \
    "$top/src/lib/Libsite/site_mom_jst.c"
  grep -q 'a site change' "$top/src/lib/Libsite/site_mom_jst.c"
fi

cat > "$top/torque.spec" <<SPEC
%global debug_package %{nil}
%{!?torque_home:%global torque_home %{_var}/spool/%{name}}
%define tarversion $version
%define version %{tarversion}

Name: torque
Version: %{version}
Release: 1.fixture
Summary: Test fixture laid out like the Torque source (hpc.jobroot)
License: GPL-3.0-or-later
Source: %{name}-%{tarversion}.tar.gz

%description
Fixture for the rpmbuild pipeline test of the hpc.jobroot torque_mom role.

%package client
Summary: Fixture client package (pbs_mom is in torque-client from Torque 4 on)
Requires: %{name} = %{version}-%{release}

%description client
Fixture client package.

%prep
%setup -q -n %{name}-%{tarversion}

%build
grep -q 'hpc-jobroot' src/lib/Libsite/site_mom_jst.c
gcc -fsyntax-only -Wall -Wextra -Werror -Istandin src/lib/Libsite/site_mom_jst.c
echo '%{torque_home}' > torque_home.txt
CXXFLAGS="%{?cxxflags:%{cxxflags}}%{!?cxxflags:\$RPM_OPT_FLAGS}"
echo "\$CXXFLAGS" > cxxflags.txt

%install
install -D -m 0644 src/lib/Libsite/site_mom_jst.c %{buildroot}/opt/hpc-jobroot-test-torque/site_mom_jst.c
install -D -m 0644 torque_home.txt %{buildroot}/opt/hpc-jobroot-test-torque/torque_home.txt
install -D -m 0644 cxxflags.txt %{buildroot}/opt/hpc-jobroot-test-torque/cxxflags.txt
echo client > %{buildroot}/opt/hpc-jobroot-test-torque/client.txt

%files
%dir /opt/hpc-jobroot-test-torque
/opt/hpc-jobroot-test-torque/site_mom_jst.c
/opt/hpc-jobroot-test-torque/torque_home.txt
/opt/hpc-jobroot-test-torque/cxxflags.txt

%files client
/opt/hpc-jobroot-test-torque/client.txt
SPEC

tar -C "$out" -czf "$out/torque-$version.tar.gz" "torque-$version"
rm -rf -- "$top"
echo "$out/torque-$version.tar.gz"
