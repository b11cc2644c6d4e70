"""_native.stat_as / access_as / open_as: file access with another user's rights, without forking."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pmon3 import _native

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")

NOBODY = 65534
OTHER_GID = 54321  # a group nobody is not in unless the test says so
AS_NOBODY = (NOBODY, NOBODY, [NOBODY])


@pytest.fixture
def tree() -> Iterator[Path]:
    """A directory searchable by all (pytest's tmp_path is below a 0700 one) with private/ 0700
    root, private/f, secret 0600 root, mine 0600 nobody, group 0640 root:OTHER_GID and open/ 0777."""
    tmp_path = Path(tempfile.mkdtemp(prefix="pmon3-fsas-"))
    if any(not os.stat(p).st_mode & 0o001 for p in tmp_path.parents):
        shutil.rmtree(tmp_path)
        pytest.skip(f"{tmp_path.parent} is not searchable by other users")
    try:
        yield fill(tmp_path)
    finally:
        shutil.rmtree(tmp_path)


def fill(tmp_path: Path) -> Path:
    tmp_path.chmod(0o755)
    (tmp_path / "private").mkdir(mode=0o700)
    (tmp_path / "private" / "f").write_text("f")
    for name, mode, uid, gid in [
        ("secret", 0o600, 0, 0),
        ("mine", 0o600, NOBODY, NOBODY),
        ("group", 0o640, 0, OTHER_GID),
    ]:
        p = tmp_path / name
        p.write_text(name)
        p.chmod(mode)
        os.chown(p, uid, gid)
    (tmp_path / "open").mkdir()
    (tmp_path / "open").chmod(0o777)
    return tmp_path


def own_credentials() -> tuple[tuple[int, int, int], tuple[int, int, int], list[int], str]:
    with open(f"/proc/self/task/{threading.get_native_id()}/status") as fh:
        fs = [line for line in fh if line.startswith(("Uid:", "Gid:"))]
    return os.getresuid(), os.getresgid(), sorted(os.getgroups()), "".join(fs)


def test_stat_as_matches_os_stat(tree: Path):
    for path in [tree / "secret", tree / "private" / "f", tree]:
        mine, theirs = os.stat(path), _native.stat_as(str(path), 0, 0, [0])
        assert isinstance(theirs, os.stat_result)
        assert theirs == mine  # the ten sequence fields
        for field in ("st_atime", "st_mtime_ns", "st_ctime_ns", "st_blksize", "st_blocks", "st_rdev", "st_nlink"):
            assert getattr(theirs, field) == getattr(mine, field), field
    link = tree / "link"
    link.symlink_to(tree / "secret")
    assert _native.stat_as(str(link), *AS_NOBODY, follow=False).st_ino == os.lstat(link).st_ino
    assert _native.stat_as(str(link), *AS_NOBODY).st_ino == os.stat(tree / "secret").st_ino


def test_nobody_cannot_stat_through_a_0700_directory(tree: Path):
    with pytest.raises(PermissionError) as exc:
        _native.stat_as(str(tree / "private" / "f"), *AS_NOBODY)
    assert exc.value.errno == errno.EACCES
    assert exc.value.strerror == f"stat {tree / 'private' / 'f'}: Permission denied"
    with pytest.raises(FileNotFoundError):
        _native.stat_as(str(tree / "missing"), *AS_NOBODY)


def test_nobody_cannot_open_or_access_a_root_0600_file(tree: Path):
    secret = str(tree / "secret")
    assert _native.stat_as(secret, *AS_NOBODY).st_uid == 0  # stat needs no read permission
    with pytest.raises(PermissionError):
        _native.open_as(secret, os.O_RDONLY, 0, *AS_NOBODY)
    with pytest.raises(PermissionError):
        _native.access_as(secret, os.R_OK, *AS_NOBODY)
    _native.access_as(secret, os.F_OK, *AS_NOBODY)
    with pytest.raises(FileNotFoundError):
        _native.access_as(str(tree / "missing"), os.F_OK, *AS_NOBODY)
    _native.access_as(secret, os.R_OK | os.W_OK, 0, 0, [0])  # root may


def test_nobody_can_open_its_own_file_and_create_files(tree: Path):
    fd = _native.open_as(str(tree / "mine"), os.O_RDWR, 0, *AS_NOBODY)
    try:
        assert os.read(fd, 10) == b"mine"
        assert not os.get_inheritable(fd)
    finally:
        os.close(fd)
    _native.access_as(str(tree / "mine"), os.R_OK | os.W_OK, *AS_NOBODY)
    with pytest.raises(PermissionError):
        _native.access_as(str(tree / "mine"), os.X_OK, *AS_NOBODY)

    fd = _native.open_as(str(tree / "open" / "new"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640, *AS_NOBODY)
    os.close(fd)
    st = os.stat(tree / "open" / "new")
    assert (st.st_uid, st.st_gid) == (NOBODY, NOBODY)
    with pytest.raises(PermissionError):  # a directory it may not write to
        _native.open_as(str(tree / "new"), os.O_WRONLY | os.O_CREAT, 0o640, *AS_NOBODY)
    assert not (tree / "new").exists()


def test_supplementary_groups_are_the_given_ones(tree: Path):
    group = str(tree / "group")
    with pytest.raises(PermissionError):
        _native.open_as(group, os.O_RDONLY, 0, *AS_NOBODY)
    os.close(_native.open_as(group, os.O_RDONLY, 0, NOBODY, NOBODY, [NOBODY, OTHER_GID]))
    _native.access_as(group, os.R_OK, NOBODY, OTHER_GID, [])  # the primary gid counts too
    with pytest.raises(PermissionError):
        _native.access_as(group, os.W_OK, NOBODY, NOBODY, [OTHER_GID])


def test_the_callers_credentials_are_unchanged(tree: Path):
    before = own_credentials()
    with pytest.raises(PermissionError):
        _native.open_as(str(tree / "secret"), os.O_RDONLY, 0, *AS_NOBODY)
    _native.stat_as(str(tree / "mine"), NOBODY, OTHER_GID, [1, 2, 3])
    assert own_credentials() == before
    # ... and root's rights are still root's on this thread.
    with open(tree / "secret") as fh:
        assert fh.read() == "secret"
