"""_native.fallocate: the raw syscall, errors as OSError with errno."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from pmon3 import _native


def test_constants_have_the_kernels_values():
    # linux/falloc.h
    assert (_native.FALLOC_FL_KEEP_SIZE, _native.FALLOC_FL_PUNCH_HOLE, _native.FALLOC_FL_COLLAPSE_RANGE) == (1, 2, 8)


def test_fallocate_grows_or_keeps_the_size(tmp_path: Path):
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            _native.fallocate(fd, _native.FALLOC_FL_KEEP_SIZE, 0, 8192)
        except OSError as e:
            assert e.errno == errno.EOPNOTSUPP
            pytest.skip(f"{tmp_path} has no fallocate")
        assert os.fstat(fd).st_size == 0
        _native.fallocate(fd, 0, 0, 100)
        assert os.fstat(fd).st_size == 100
        with pytest.raises(OSError) as exc:
            _native.fallocate(fd, 0, 0, 0)
        assert exc.value.errno == errno.EINVAL
    finally:
        os.close(fd)
    with pytest.raises(OSError) as exc:
        _native.fallocate(fd, 0, 0, 1)
    assert exc.value.errno == errno.EBADF


def test_punch_hole_keeps_size_and_zeroes(tmp_path: Path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 16384)
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            _native.fallocate(fd, _native.FALLOC_FL_PUNCH_HOLE | _native.FALLOC_FL_KEEP_SIZE, 0, 4096)
        except OSError as e:
            assert e.errno == errno.EOPNOTSUPP
            pytest.skip(f"{tmp_path} cannot punch holes")
    finally:
        os.close(fd)
    data = path.read_bytes()
    assert len(data) == 16384 and data[:4096] == b"\0" * 4096 and data[4096:] == b"x" * 12288
