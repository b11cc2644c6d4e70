"""_native.mq_list: POSIX message queues listed without /dev/mqueue in our mount namespace."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from pmon3 import _native

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mq_list needs CAP_SYS_ADMIN")


def mountinfo() -> str:
    return Path("/proc/self/mountinfo").read_text()


@needs_root
def test_a_new_queue_is_listed_until_unlinked():
    name = f"/pmon3-test-{os.getpid()}.r.0.{uuid.uuid4().hex[:12]}"
    before = mountinfo()
    q = _native.MessageQueue(name, create=True, exclusive=True)
    try:
        listed = _native.mq_list()
    finally:
        _native.MessageQueue.unlink(name)
        q.close()
    assert name[1:] in listed
    assert all(n and "/" not in n and n not in (".", "..") for n in listed)
    assert name[1:] not in _native.mq_list()
    # Nothing was mounted (or propagated) where we live.
    assert mountinfo() == before


def test_without_cap_sys_admin_it_is_eperm():
    if os.geteuid() != 0:
        with pytest.raises(PermissionError) as exc:
            _native.mq_list()
        assert exc.value.errno == errno.EPERM
        return
    # Drop root in a child of our own after the import (no file access needed afterwards).
    script = """
import os
from pmon3 import _native
os.setgroups([])
os.setresgid(65534, 65534, 65534)
os.setresuid(65534, 65534, 65534)
try:
    _native.mq_list()
except OSError as e:
    print(e.errno, e.strerror)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout == f"{errno.EPERM} mq_list clone CLONE_NEWNS: Operation not permitted\n", out.stderr


REAP_RACE = """
import threading
from pmon3 import _native
results, errors = [], []
def lister():
    try:
        for _ in range(30):
            results.append(_native.mq_list())
    except OSError as e:
        errors.append(e)
t = threading.Thread(target=lister)
t.start()
reaped = []
while t.is_alive():
    reaped += _native.reap()
t.join()
reaped += _native.reap()
print(len(results), errors, reaped)
"""


@needs_root
def test_the_helper_is_invisible_to_reap():
    """The daemon sweeps with wait4(-1) all the time: it must never take mq_list's helper."""
    out = subprocess.run([sys.executable, "-c", REAP_RACE], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout == "30 [] []\n", out.stderr
