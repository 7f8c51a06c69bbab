# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node configuration read by the hook command.

Two JSON files under the config directory (default /etc/hpc-jobroot):
``pool.json`` (written by the jobvol_pool role: where job space comes from)
and ``node.json`` (written by the job_hooks role: what goes into a root).
docs/design.md lists the keys. Every value is validated on load, so a bad
config fails the prologue with a message naming the key, before any change.
"""

from __future__ import annotations

import json
import os

from ansible_collections.hpc.jobroot.plugins.module_utils import validate
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import ValidationError

CONFIG_DIR = "/etc/hpc-jobroot"


#: Every node.json/pool.json key and its default. Sizes: ``slot_extents`` in
#: extents, ``extent_size`` in bytes. List and dict defaults are copied for
#: each :class:`NodeConfig`.
DEFAULTS = {
    "volume_group": "",
    "thin_pool": "",
    "slots": 1,
    "slot_extents": 0,
    "extent_size": 4194304,
    "fstype": "ext4",
    "root_base": "/var/lib/hpc-jobroot/roots",
    "image_base": "/var/lib/hpc-jobroot/images",
    "allow_list": "/etc/hpc-jobroot/images.conf",
    "default_image": "host",
    "fallback_to_default": False,
    "run_dir": "/run/hpc-jobroot",
    "pbs_home": "/var/spool/torque",
    # Not var/lib: for the host image that is the node's /var/lib, which
    # holds the job roots themselves.
    "image_dirs": ["bin", "etc", "lib", "lib64", "opt", "sbin", "usr"],
    "host_files": ["/etc/passwd", "/etc/group", "/etc/resolv.conf"],
    "extra_binds": [],
    "home": "user",
    "queue_image": {},
    "slurm_node_name": "",
    # Torque: the node's name in pbs_server's server_priv/nodes, for drain.py's
    # pbsnodes calls; "" = the host name as uname -n gives it.
    "torque_node_name": "",
    # Torque: after this many failed prologues of one job on this node, abort
    # it (exit 1) instead of requeueing it (exit 2) once more.
    "max_setup_failures": 3,
    # dm-crypt plain over every job volume (dmcrypt.py); or only for the jobs
    # that ask for it (Slurm: --jobroot-encrypt), if encrypt_on_request.
    "encrypt": False,
    "encrypt_on_request": False,
    # node_exporter's textfile directory for metrics.py's files; "" = none
    "metrics_dir": "",
}


class NodeConfig:
    """All settings of one node: an attribute per key of :data:`DEFAULTS`.

    ``NodeConfig(**values)``: keys not given take their defaults (lists and
    dicts copied); an unknown key raises TypeError. A plain class, not a
    dataclass: importing dataclasses pulls inspect, ast and dis into every
    hook start (issue 18).
    """

    __slots__ = tuple(DEFAULTS)

    def __init__(self, **values):
        unknown = sorted(set(values) - set(DEFAULTS))
        if unknown:
            raise TypeError("NodeConfig got unknown keys: %s" % ", ".join(unknown))
        for name, default in DEFAULTS.items():
            if name in values:
                setattr(self, name, values[name])
            else:
                setattr(self, name, type(default)(default) if isinstance(default, (list, dict)) else default)

    def __eq__(self, other):
        return isinstance(other, NodeConfig) and all(
            getattr(self, name) == getattr(other, name) for name in DEFAULTS)

    __hash__ = None  # mutable, like the dataclass it replaces

    def __repr__(self):
        return "NodeConfig(%s)" % ", ".join("%s=%r" % (name, getattr(self, name)) for name in DEFAULTS)

    def validate(self):
        """Raise ValidationError naming the first bad key; return self."""
        if self.volume_group:
            validate.volume_group(self.volume_group)
        if self.thin_pool:
            validate.lv_name(self.thin_pool)
        if not isinstance(self.max_setup_failures, int) or isinstance(self.max_setup_failures, bool) \
                or self.max_setup_failures < 1:
            raise ValidationError("config max_setup_failures must be a whole number >= 1, got %r"
                                  % (self.max_setup_failures,))
        for name in ("slots", "slot_extents", "extent_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValidationError("config %s must be a whole number >= 0, got %r" % (name, value))
        for name in ("encrypt", "encrypt_on_request"):
            if not isinstance(getattr(self, name), bool):
                raise ValidationError("config %s must be true or false, got %r" % (name, getattr(self, name)))
            if getattr(self, name) and not self.volume_group:
                raise ValidationError("config %s needs a volume_group: directory mode has no "
                                      "volume to encrypt" % name)
        if self.fstype not in ("ext4", "xfs"):
            raise ValidationError("config fstype must be ext4 or xfs, got %r" % (self.fstype,))
        for name in ("root_base", "image_base", "allow_list", "run_dir", "pbs_home"):
            validate.abs_path(getattr(self, name), "config " + name)
        for name in ("root_base", "run_dir"):
            validate.managed_path(getattr(self, name), "config " + name)
        if self.metrics_dir:
            validate.abs_path(self.metrics_dir, "config metrics_dir")
        if self.torque_node_name:
            validate.node_name(self.torque_node_name, "config torque_node_name")
        validate.image_name(self.default_image)
        for d in self.image_dirs:
            validate.rel_path(d, "config image_dirs entry")
        for f in self.host_files:
            validate.abs_path(f, "config host_files entry")
        for b in self.extra_binds:
            if not isinstance(b, dict) or "source" not in b:
                raise ValidationError("config extra_binds entries need a source: %r" % (b,))
            validate.abs_path(b["source"], "config extra_binds source")
        if self.home not in ("user", "all", "none"):
            raise ValidationError("config home must be user, all or none, got %r" % (self.home,))
        for name in self.queue_image.values():
            validate.image_name(name)
        if self.root_base == "/tmp" or self.root_base.startswith("/tmp/"):
            raise ValidationError("config root_base must not be under /tmp (private /tmp "
                                  "namespaces hide it from the batch system)")
        return self


def load(config_dir=CONFIG_DIR):
    """Read ``pool.json`` and ``node.json`` from *config_dir*; return a validated :class:`NodeConfig`.

    A missing file means its defaults. Unknown keys are refused (a typo must
    not silently fall back to a default). Raises ValidationError.
    """
    known = set(DEFAULTS)
    values = {}
    for name in ("pool.json", "node.json"):
        path = os.path.join(config_dir, name)
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            continue
        except ValueError as exc:
            raise ValidationError("%s is not valid JSON: %s" % (path, exc)) from None
        unknown = set(data) - known
        if unknown:
            raise ValidationError("%s has unknown keys: %s" % (path, ", ".join(sorted(unknown))))
        values.update(data)
    return NodeConfig(**values).validate()
