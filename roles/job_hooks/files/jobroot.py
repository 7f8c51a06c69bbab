# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""jobroot: the per-job hook command on a node (prologue, epilogue, gc, status).

The entry script only: the role installs it as /usr/libexec/hpc-jobroot/jobroot
with the node's Python and -I, and it runs
plugins/module_utils/hook_command.py (usage, exit codes) from the private
library tree the role installs beside it.
"""

import os
import sys

LIBRARY = "/usr/lib/hpc-jobroot"
if os.path.isdir(LIBRARY):
    sys.path.insert(0, LIBRARY)

# pylint: disable=wrong-import-position
from ansible_collections.hpc.jobroot.plugins.module_utils import hook_command  # noqa: E402

if __name__ == "__main__":
    sys.exit(hook_command.main())
