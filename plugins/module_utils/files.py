# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Small file helpers: read a text file that may be missing, remove one file.

Writing is atomic.write's. Neither helper ever recurses: removing a tree is
beneath.Root.purge's, by descriptor, never through a mount.
"""

from __future__ import annotations

import os


def read_text(path):
    """Return the text (UTF-8) of file *path* (str), or None if it does not exist.

    Other errors (permission, a directory) raise OSError.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def remove_file(path):
    """Remove *path* if it exists; return True if it did (a single unlink, never recursive).

    Raises OSError for anything but "does not exist" (e.g. a directory).
    """
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False
