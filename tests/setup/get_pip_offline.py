# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Offline stand-in for get-pip.py, for ansible-test.

ansible-test bootstraps pip into each of its virtual environments by running
``~/.ansible/test/cache/get_pip_<version>.py`` and downloads that file from a
host this machine cannot reach.  tests/setup/get-pip.sh copies this file to
that name instead.

How ansible-test calls it (ansible_test/_util/target/setup/requirements.py,
``bootstrap``): the venv's Python runs quiet_pip.py with the environment
variable GET_PIP set to this file's path, and quiet_pip.py runs this file as
``__main__`` with the arguments
``--disable-pip-version-check pip==<version> --no-setuptools --no-wheel``.

Like get-pip.py, this script treats ``--no-setuptools`` and ``--no-wheel`` as
its own options (asking for setuptools and wheel unless they are given or
already importable) and passes every other argument on to
``pip install --upgrade``.  The pip that does the installing is Python's own
bundled copy, unpacked by ``ensurepip --root`` into a temporary directory, so
nothing is downloaded except the packages named in the arguments.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile


def split_arguments(argv):
    """Split get-pip style arguments.

    :arg argv: list of str, the command line arguments without the program.
    :returns: tuple (list of str, the arguments for ``pip install``;
        bool, whether setuptools is wanted; bool, whether wheel is wanted).
    """
    pip_args = []
    want_setuptools = not os.environ.get('PIP_NO_SETUPTOOLS')
    want_wheel = not os.environ.get('PIP_NO_WHEEL')

    for arg in argv:
        if arg == '--no-setuptools':
            want_setuptools = False
        elif arg == '--no-wheel':
            want_wheel = False
        else:
            pip_args.append(arg)

    return pip_args, want_setuptools, want_wheel


def install_arguments(argv):
    """Build the ``pip install`` argument list for ``argv``.

    :arg argv: list of str, the command line arguments without the program.
    :returns: list of str, starting with ``install``.
    """
    pip_args, want_setuptools, want_wheel = split_arguments(argv)

    if not any(arg.split('=')[0].split('<')[0].split('>')[0].lower() == 'pip' for arg in pip_args):
        pip_args.append('pip')

    if want_setuptools and importlib.util.find_spec('setuptools') is None:
        pip_args.append('setuptools')

    if want_wheel and importlib.util.find_spec('wheel') is None:
        pip_args.append('wheel')

    return ['install', '--upgrade'] + pip_args


def bundled_pip(tmp_dir):
    """Unpack Python's bundled pip under ``tmp_dir``.

    :arg tmp_dir: str, an empty scratch directory.
    :returns: str, the directory to put on sys.path to import that pip.
    :raises subprocess.CalledProcessError: when ensurepip fails (on Debian
        the python3-venv package provides ensurepip's wheels).
    """
    result = subprocess.run(
        [sys.executable, '-m', 'ensurepip', '--root', tmp_dir],
        check=False,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        result.check_returncode()
    purelib = sysconfig.get_paths()['purelib']
    return os.path.join(tmp_dir, purelib.lstrip(os.sep))


def main():
    """Bootstrap pip, then install what the command line asks for.

    :returns: int, pip's exit status.
    """
    tmp_dir = tempfile.mkdtemp(prefix='get-pip-offline-')

    try:
        sys.path.insert(0, bundled_pip(tmp_dir))

        from pip._internal.cli.main import main as pip_main  # pylint: disable=import-outside-toplevel

        return pip_main(install_arguments(sys.argv[1:]))
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
