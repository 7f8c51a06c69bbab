# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import os

import pytest

from ansible_collections.hpc.jobroot.plugins.module_utils import image_select
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import RefusedError, ValidationError

ENTRIES = {"sl5": "/img/sl5", "el7": "/img/el7"}


def test_select_requested_default_and_host():
    assert image_select.select("sl5", ENTRIES, "host") == ("sl5", "/img/sl5")
    assert image_select.select(None, ENTRIES, "el7") == ("el7", "/img/el7")
    assert image_select.select("", ENTRIES, "host") == ("host", "/")
    assert image_select.select("host", ENTRIES) == ("host", "/")


def test_unknown_name_is_refused_with_the_choices():
    with pytest.raises(RefusedError, match="choose one of: host, sl5, el7"):
        image_select.select("sl6", ENTRIES, "host")


def test_fallback_only_when_configured():
    assert image_select.select("sl6", ENTRIES, "el7", fallback=True) == ("el7", "/img/el7")
    with pytest.raises(RefusedError):
        image_select.select("sl6", ENTRIES, None, fallback=True)
    with pytest.raises(RefusedError, match="no default"):
        image_select.select(None, ENTRIES, None)


def test_malformed_request_is_a_validation_error():
    with pytest.raises(ValidationError):
        image_select.select("../etc", ENTRIES, "host")


@pytest.fixture
def allow(tmp_path):
    path = tmp_path / "images.conf"
    os.chmod(tmp_path, 0o755)
    return path


@pytest.mark.skipif(os.geteuid() != 0, reason="ownership checks need root")
def test_allow_list_parsing(allow):
    allow.write_text("# comment\n\nsl5:/img/sl5  # trailing comment\n el7 : /img/el7\n")
    os.chmod(allow, 0o644)
    assert image_select.read_allow_list(str(allow)) == {"sl5": "/img/sl5", "el7": "/img/el7"}


@pytest.mark.skipif(os.geteuid() != 0, reason="ownership checks need root")
@pytest.mark.parametrize("text,mode,message", [
    ("sl5 /img/sl5\n", 0o644, "expected name:path"),
    ("sl5:img/sl5\n", 0o644, "must be absolute"),
    ("sl5:/img/sl5\nsl5:/img/x\n", 0o644, "listed twice"),
    ("host:/img/x\n", 0o644, "reserved"),
    ("../x:/img/x\n", 0o644, "image name"),
    ("sl5:/img/sl5\n", 0o664, "group- or world-writable"),
    ("sl5:/img/sl5\n", 0o646, "group- or world-writable"),
])
def test_bad_allow_lists(allow, text, mode, message):
    allow.write_text(text)
    os.chmod(allow, mode)
    with pytest.raises(ValidationError, match=message):
        image_select.read_allow_list(str(allow))


def test_symlinked_allow_list_is_refused(tmp_path):
    real = tmp_path / "real.conf"
    real.write_text("sl5:/img/sl5\n")
    link = tmp_path / "link.conf"
    link.symlink_to(real)
    with pytest.raises(ValidationError, match="not a symlink"):
        image_select.read_allow_list(str(link))


def test_record_paths():
    assert image_select.record_path("torque", "123[4].srv", "/run/x", "/var/spool/pbs") == \
        "/var/spool/pbs/mom_priv/jobs/123[4].srv.root"
    assert image_select.record_path("slurm", "17[3]", "/run/x", "/pbs") == "/run/x/jobs/17_3.root"
    assert image_select.record_path("none", "1", "/run/x", "/pbs") is None
    with pytest.raises(ValidationError):
        image_select.record_path("lsf", "1", "/run/x", "/pbs")


def test_records_and_pins_are_atomic_and_idempotent(tmp_path):
    run = str(tmp_path / "run")
    record = image_select.record_path("slurm", "4711", run, "/pbs")
    assert image_select.write_record(record, "/roots/4711") is True
    assert image_select.write_record(record, "/roots/4711") is False
    assert open(record, encoding="utf-8").read() == "/roots/4711\n"
    assert oct(os.stat(record).st_mode & 0o777) == "0o644"
    assert image_select.pin(run, "4711", "/img/sl5-2") is True
    assert image_select.pin(run, "4711", "/img/sl5-2") is False
    assert image_select.pinned(run) == {"4711": "/img/sl5-2"}
    assert sorted(os.listdir(os.path.dirname(record))) == ["4711.root"]
    with pytest.raises(ValidationError):
        image_select.write_record(record, "/roots/4711\nevil")
