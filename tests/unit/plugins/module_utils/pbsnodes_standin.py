# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""STAND-IN for Torque's pbsnodes command, for unit tests only.

No pbs_server runs here (nor in the QEMU guest, which runs Slurm), so the
real pbsnodes has nothing to talk to. :func:`install` writes an executable
named ``pbsnodes`` into a folder the test puts first on PATH, so drain.py
starts it as a real process, exactly as it starts the real one. The
stand-in does no part of our code's job: it keeps each node's state and
note in a JSON file (``PBSNODES_STANDIN_STATE``: ``{"nodes": {NAME:
{"state": [...], "note": str or null}}, "refuse": false, "down": false}``)
and answers only the four flags drain.py uses, with the behaviour Torque's
source gives them (src/cmds/pbsnodes.c, as read for drain.py's _Torque):

* ``-o`` adds ``offline`` to the state, ``-c`` removes it and leaves the
  note alone; ``-N NOTE`` sets the note, ``-N ""`` or ``-N n`` clears it;
  ``-N`` combines with ``-o`` or ``-c`` (note and state in one request).
* ``-x NODE`` prints ``<Data><Node><name>..</name><state>a,b</state>
  <note>..</note></Node></Data>`` on one line, with no ``<note>`` when
  there is none, values unescaped (``<`` as byte 14, ``&`` as it is, as
  Torque's MXMLSetVal() does); an unknown node exits 1.
* A change pbs_server refuses (``"refuse": true``: no operator privilege;
  or an unknown node) prints "Error setting note attribute for NODE - ..."
  to stderr and still exits 0, as Torque 6.1's pbsnodes does.
* ``"down": true``: pbs_server does not answer; exit 1, "cannot connect".

Every call is appended as one JSON line ``{"argv": [...]}`` to
``<state file>.calls``, so a test can assert the command lines.
"""

from __future__ import annotations

import os
import stat
import sys

_SCRIPT = r'''
import getopt, json, os, sys
path = os.environ["PBSNODES_STANDIN_STATE"]
with open(path + ".calls", "a") as log:
    log.write(json.dumps({"argv": ["pbsnodes"] + sys.argv[1:]}) + "\n")
with open(path) as f:
    data = json.load(f)
try:
    opts, nodes = getopt.getopt(sys.argv[1:], "cxoN:")
except getopt.GetoptError as exc:
    sys.exit("stand-in: usage: %s" % exc)
flags = [o for o, _ in opts]
note = [v for o, v in opts if o == "-N"]
if not nodes or any(n == "" for n in nodes) or ("-o" in flags and "-c" in flags):
    sys.exit("usage: pbsnodes [-{c|o}] [-N note] node ...")
if data.get("down"):
    print("pbsnodes: cannot connect to server pbs-server, error=111 (Connection refused)", file=sys.stderr)
    sys.exit(1)
known = data["nodes"]
if "-x" in flags:
    out = []
    for name in nodes:
        if name not in known:
            print("pbsnodes: Unknown node  MSG=cannot locate specified node", file=sys.stderr)
            sys.exit(1)
        node = known[name]
        fields = [("name", name), ("state", ",".join(node["state"]) or "free"), ("np", "2")]
        if node.get("note"):
            fields.append(("note", node["note"]))
        out.append("<Node>%s</Node>" % "".join("<%s>%s</%s>" % (k, v.replace("<", "\x0e"), k)
                                               for k, v in fields))
    print("<Data>%s</Data>" % "".join(out))
    sys.exit(0)
for name in nodes:
    if data.get("refuse") or name not in known:
        why = "Unknown node" if name not in known else "Unauthorized Request"
        print("Error setting note attribute for %s - %s" % (name, why), file=sys.stderr)
        continue
    node = known[name]
    if note:
        value = "" if note[-1] == "n" else note[-1]
        node["note"] = value.replace("\n", "") or None
    if "-o" in flags and "offline" not in node["state"]:
        node["state"].append("offline")
    if "-c" in flags and "offline" in node["state"]:
        node["state"].remove("offline")
with open(path, "w") as f:
    json.dump(data, f)
sys.exit(0)
'''


def install(folder, state_file, nodes):
    """Write the executable ``<folder>/pbsnodes`` and its state file; return the executable's path.

    *nodes*: ``{NAME: {"state": [str, ...], "note": str or None}}``. The test
    must put *folder* first on PATH and set ``PBSNODES_STANDIN_STATE`` to
    *state_file*.
    """
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "pbsnodes")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("#!%s\n%s" % (sys.executable, _SCRIPT))
    os.chmod(path, stat.S_IRWXU)
    save(state_file, {"nodes": nodes, "refuse": False, "down": False})
    return path


def load(state_file):
    """Return the stand-in's state (the dict :func:`install` describes)."""
    import json
    with open(state_file, encoding="utf-8") as handle:
        return json.load(handle)


def save(state_file, data):
    """Replace the stand-in's state with *data*."""
    import json
    with open(state_file, "w", encoding="utf-8") as handle:
        json.dump(data, handle)


def calls(state_file):
    """Return the argv lists of every call so far."""
    import json
    try:
        with open(state_file + ".calls", encoding="utf-8") as handle:
            return [json.loads(line)["argv"] for line in handle]
    except FileNotFoundError:
        return []
