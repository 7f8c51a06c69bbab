# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import multiprocessing
import os
import time

import pytest

from ansible_collections.hpc.jobroot.plugins.module_utils import lock
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import JobrootError


def _try(path, queue):
    queue.put(lock.Lock(path, timeout=0).acquire())


def other_process_gets(path):
    queue = multiprocessing.Queue()
    proc = multiprocessing.Process(target=_try, args=(path, queue))
    proc.start()
    proc.join(10)
    return queue.get(timeout=5)


def test_lock_excludes_other_processes_and_is_released(tmp_path):
    path = str(tmp_path / "run" / "lock")
    with lock.Lock(path):
        assert other_process_gets(path) is False
    assert other_process_gets(path) is True


def test_waiting_times_out_with_a_clear_error(tmp_path):
    path = str(tmp_path / "lock")
    held = lock.Lock(path)
    held.acquire()
    try:
        with pytest.raises(JobrootError, match="timed out after 0.2 s waiting for lock"):
            lock.Lock(path, timeout=0.2).acquire()
    finally:
        held.release()


def test_node_and_job_lock_paths():
    assert lock.node_lock("/run/x").path == "/run/x/lock"
    assert lock.job_lock("/run/x", "17_3").path == "/run/x/locks/17_3"


def test_remove_needs_the_lock_held(tmp_path):
    with pytest.raises(JobrootError, match="not held"):
        lock.Lock(str(tmp_path / "locks" / "1")).remove()


def _open_count(path):
    """How many descriptors of this process have *path* open."""
    fds = os.listdir("/proc/self/fd")
    count = 0
    for fd in fds:
        try:
            count += os.readlink("/proc/self/fd/" + fd) == path
        except OSError:
            pass
    return count


def test_removed_lock_file_is_gone_and_a_waiter_locks_a_fresh_one(tmp_path):
    import threading

    path = str(tmp_path / "locks" / "4711")
    first = lock.Lock(path)
    first.acquire()
    # the waiter opens the file that is about to be removed and waits on it
    waiter = lock.Lock(path, timeout=10)
    got = []
    thread = threading.Thread(target=lambda: got.append(waiter.acquire()))
    thread.start()
    # remove only once the waiter has the file open (two descriptors of this
    # process name it): removed earlier, the waiter would create a fresh file
    # and lock it at once, which is the other case
    deadline = time.monotonic() + 10
    while _open_count(path) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _open_count(path) == 2
    first.remove()
    assert not os.path.exists(path)
    first.release()
    thread.join(10)
    assert got == [True]
    try:
        # the waiter holds the file the path names now, so no one else gets in
        assert os.path.exists(path)
        assert os.fstat(waiter.fd).st_ino == os.stat(path).st_ino
        assert other_process_gets(path) is False
    finally:
        waiter.release()
    assert other_process_gets(path) is True
