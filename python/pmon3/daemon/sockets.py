"""Listening sockets held by pmond and passed to every start of a process with systemd's socket-activation
protocol (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`, descriptors from 3).

pmond binds them once and keeps them open, so connections wait in the kernel's backlog while the process
restarts, crashes or is reloaded: none is refused. Instances of one process share its sockets (the kernel
balances `accept`). The sockets stay blocking (the process shares their file status flags) and pmond never
accepts on them.

A pmond restart keeps them: the new pmond takes copies back from the running process with pidfd_getfd (its
descriptors 3, 4, ... are the ones it was given); a process that is not running gets freshly bound ones at its
next start.

Address syntax (`--listen`, `listen:`): `tcp:HOST:PORT`, `tcp6:[HOST]:PORT`, `unix:PATH`, each optionally
followed by `,name=NAME` (its LISTEN_FDNAMES entry), `,backlog=N`, and for unix `,mode=0660` and (root only)
`,owner=USER[:GROUP]`.
"""

from __future__ import annotations

import dataclasses
import errno
import grp
import logging
import os
import re
import socket
import stat
from typing import Optional

from .. import _native
from ..errors import ConflictError, InvalidRequestError, PermissionDeniedError
from .accounts import RunAs

log = logging.getLogger("pmond.sockets")
DEFAULT_BACKLOG = 511
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,255}")
# (owner uid, family name): the processes that share one set of sockets (a process and its instances).
Key = tuple[int, str]


@dataclasses.dataclass(frozen=True)
class ListenSpec:
    kind: str  # tcp | tcp6 | unix
    host: str = ""
    port: int = 0
    path: str = ""
    name: str = "unknown"
    backlog: int = DEFAULT_BACKLOG
    mode: Optional[int] = None
    owner: str = ""

    def text(self) -> str:
        """The canonical spelling (what is stored and compared)."""
        if self.kind == "unix":
            base = f"unix:{self.path}"
        elif self.kind == "tcp6":
            base = f"tcp6:[{self.host}]:{self.port}"
        else:
            base = f"tcp:{self.host}:{self.port}"
        opts = [] if self.name == "unknown" else [f"name={self.name}"]
        if self.backlog != DEFAULT_BACKLOG:
            opts.append(f"backlog={self.backlog}")
        if self.mode is not None:
            opts.append(f"mode={self.mode:04o}")
        if self.owner:
            opts.append(f"owner={self.owner}")
        return ",".join([base, *opts])

    @property
    def family(self) -> int:
        return {"tcp": socket.AF_INET, "tcp6": socket.AF_INET6, "unix": socket.AF_UNIX}[self.kind]


def parse(text: str) -> ListenSpec:
    """One --listen value; a one-line error names what is wrong."""
    if not isinstance(text, str) or not text:
        raise InvalidRequestError("listen: expected an address such as tcp:127.0.0.1:8080 or unix:/run/app.sock")
    address, *options = text.split(",")
    kind, sep, rest = address.partition(":")
    if not sep or kind not in ("tcp", "tcp6", "unix"):
        raise InvalidRequestError(f"listen {text!r}: use tcp:HOST:PORT, tcp6:[HOST]:PORT or unix:PATH")
    fields: dict[str, object] = {"kind": kind}
    if kind == "unix":
        if not os.path.isabs(rest) or len(rest.encode()) >= 108:
            raise InvalidRequestError(f"listen {text!r}: a unix socket needs an absolute path under 108 bytes")
        fields["path"] = os.path.normpath(rest)
    else:
        host, _, port = rest.rpartition(":")
        if kind == "tcp6":
            if not (host.startswith("[") and host.endswith("]")):
                raise InvalidRequestError(f"listen {text!r}: write an IPv6 host in brackets, tcp6:[::1]:8080")
            host = host[1:-1]
        if not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
            raise InvalidRequestError(f"listen {text!r}: expected HOST:PORT with a port from 1 to 65535")
        try:
            socket.inet_pton(socket.AF_INET6 if kind == "tcp6" else socket.AF_INET, host)
        except OSError:
            raise InvalidRequestError(
                f"listen {text!r}: {host} is not an IP{'v6' if kind == 'tcp6' else 'v4'} address"
            ) from None
        fields.update(host=host, port=int(port))
    for opt in options:
        key, _, value = opt.partition("=")
        if key == "name" and _NAME.fullmatch(value) and ":" not in value:
            fields["name"] = value
        elif key == "backlog" and value.isascii() and value.isdigit() and 0 < int(value) <= 65535:
            fields["backlog"] = int(value)
        elif key == "mode" and kind == "unix" and re.fullmatch(r"0?[0-7]{3}", value):
            fields["mode"] = int(value, 8)
        elif key == "owner" and kind == "unix" and re.fullmatch(r"[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)?", value):
            fields["owner"] = value
        else:
            raise InvalidRequestError(
                f"listen {text!r}: bad option {opt!r} (name=, backlog=, and for unix mode=, owner=)"
            )
    return ListenSpec(**fields)  # type: ignore[arg-type]


def parse_all(values: list[str]) -> list[ListenSpec]:
    specs = [parse(v) for v in values]
    where = [s.path if s.kind == "unix" else f"{s.host}:{s.port}/{s.kind}" for s in specs]
    if len(set(where)) != len(where):
        raise InvalidRequestError("listen: the same address twice")
    return specs


def _unprivileged_port_start() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as fh:
            return int(fh.read())
    except (OSError, ValueError):
        return 1024


class Sockets:
    """The sockets pmond holds, per (owner, family name)."""

    def __init__(self) -> None:
        self.held: dict[Key, list[tuple[ListenSpec, socket.socket]]] = {}

    def fds(self, key: Key) -> list[int]:
        return [s.fileno() for _spec, s in self.held.get(key, [])]

    def names(self, key: Key) -> list[str]:
        return [spec.name for spec, _s in self.held.get(key, [])]

    def spawn_env(self, key: Key) -> list[str]:
        held = self.held.get(key, [])
        if not held:
            return []
        return [f"LISTEN_FDS={len(held)}", f"LISTEN_FDNAMES={':'.join(spec.name for spec, _s in held)}"]

    def ensure(self, key: Key, texts: list[str], caller_uid: int, run: RunAs) -> None:
        """Hold exactly the sockets `texts` name for `key` (binding what is new, closing what is gone). A port
        in use is a clear error, and nothing is held then. Binding is done with the caller's rights where the
        kernel would check them: a non-root caller gets no privileged port, and a unix socket file is created
        as the caller, where the caller may create files."""
        wanted = parse_all(texts)
        current = {spec.text(): (spec, s) for spec, s in self.held.get(key, [])}
        fresh: list[tuple[ListenSpec, socket.socket]] = []
        made: list[socket.socket] = []
        try:
            for spec in wanted:
                kept = current.get(spec.text())
                if kept is not None:
                    fresh.append(kept)
                    continue
                s = self._bind(spec, caller_uid, run)
                made.append(s)
                fresh.append((spec, s))
        except BaseException:
            for s in made:
                self._close(ListenSpec("tcp"), s)
            raise
        keep = {id(s) for _spec, s in fresh}
        for spec, s in self.held.get(key, []):
            if id(s) not in keep:
                self._close(spec, s)
        if fresh:
            self.held[key] = fresh
        else:
            self.held.pop(key, None)

    def recover(self, key: Key, texts: list[str], pidfd: int, pid: int = 0) -> bool:
        """After a pmond restart: take the running process's copies back (its fds 3, 4, ...), checking each is
        still the listening socket of that address. False if any is missing: they are bound at its next start."""
        specs = parse_all(texts)
        got: list[tuple[ListenSpec, socket.socket]] = []
        for i, spec in enumerate(specs):
            s = _take_back(pidfd, 3 + i, spec)
            if s is None:  # moved or closed fd 3+i (some programs do): any of its descriptors may be it
                s = next((t for fd in _socket_fds(pid) if (t := _take_back(pidfd, fd, spec)) is not None), None)
            if s is None:
                log.warning("cannot take back %s from the running process", spec.text())
                break
            got.append((spec, s))
        if len(got) != len(specs):
            for _spec, s in got:
                s.close()
            return False
        self.held[key] = got
        return True

    def release(self, key: Key) -> None:
        for spec, s in self.held.pop(key, []):
            self._close(spec, s)

    def close(self) -> None:
        for key in list(self.held):
            for _spec, s in self.held.pop(key):
                s.close()  # a pmond going away keeps unix socket files: the next one (or a restart) reuses them

    # -- one socket ----------------------------------------------------------------------------------------
    def _bind(self, spec: ListenSpec, caller_uid: int, run: RunAs) -> socket.socket:
        if spec.kind != "unix" and caller_uid != 0 and spec.port < _unprivileged_port_start():
            raise PermissionDeniedError(f"listen {spec.text()}: port {spec.port} needs root")
        s = socket.socket(spec.family, socket.SOCK_STREAM)
        try:
            if spec.kind == "unix":
                self._bind_unix(s, spec, caller_uid, run)
            else:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if spec.kind == "tcp6":
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                try:
                    s.bind((spec.host, spec.port))
                except OSError as exc:
                    if exc.errno == errno.EADDRINUSE:
                        raise ConflictError(f"listen {spec.text()}: address already in use") from None
                    raise InvalidRequestError(f"listen {spec.text()}: {exc.strerror}") from None
            s.listen(spec.backlog)
        except BaseException:
            s.close()
            raise
        s.set_inheritable(False)
        return s

    def _bind_unix(self, s: socket.socket, spec: ListenSpec, caller_uid: int, run: RunAs) -> None:
        if spec.owner and caller_uid != 0:
            raise PermissionDeniedError(f"listen {spec.text()}: only root may set a socket's owner")
        if caller_uid == 0:  # never unlinked by root on a user's behalf: a user removes their own stale file
            try:
                st = os.lstat(spec.path)
                if stat.S_ISSOCK(st.st_mode) and not _answers(spec.path):
                    os.unlink(spec.path)  # stale (a dead process's or a dead pmond's): replaced
            except OSError:
                pass
        try:
            if caller_uid == 0 or os.geteuid() != 0:  # root's own, or a user's own pmond: already their rights
                _native.bind_unix(s.fileno(), spec.path, spec.mode)
            else:  # the file is created as the caller, where the caller may create files
                _native.bind_unix(s.fileno(), spec.path, spec.mode, run.uid, run.gid, list(run.groups))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConflictError(f"listen {spec.text()}: address already in use (a stale socket file?)") from None
            raise InvalidRequestError(f"listen {spec.text()}: {exc.strerror}") from None
        if spec.owner:
            user, _, group = spec.owner.partition(":")
            try:
                uid = _uid(user)
                gid = grp.getgrnam(group).gr_gid if group else -1
            except KeyError:
                raise InvalidRequestError(f"listen {spec.text()}: unknown owner {spec.owner}") from None
            os.lchown(spec.path, uid, gid)

    @staticmethod
    def _close(spec: ListenSpec, s: socket.socket) -> None:
        """Closing a unix socket leaves its file: deleting a path (perhaps in a user's directory) is not ours to
        do with root's rights; a later bind of the same path replaces it (root) or says it is stale (users)."""
        s.close()


def _uid(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_uid


def _answers(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(0.2)
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def _take_back(pidfd: int, target: int, spec: ListenSpec) -> Optional[socket.socket]:
    """A copy of the process's descriptor `target` if it is the listening socket of `spec`."""
    try:
        fd = _native.pidfd_getfd(pidfd, target)
    except OSError:
        return None
    s = socket.socket(fileno=fd)
    if _is_listening(s, spec):
        return s
    s.detach()
    os.close(fd)
    return None


def _socket_fds(pid: int) -> list[int]:
    """The descriptors of `pid` that are sockets (from /proc: pmond is root or the process's own user)."""
    if not pid:
        return []
    found = []
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return []
    for name in names:
        try:
            if os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                found.append(int(name))
        except (OSError, ValueError):
            continue
    return sorted(found)


def _is_listening(s: socket.socket, spec: ListenSpec) -> bool:
    try:
        if s.family != spec.family or not s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            return False
        addr = s.getsockname()
    except OSError:
        return False
    if spec.kind == "unix":
        return bool(addr == spec.path)
    return bool(
        addr[1] == spec.port and socket.inet_pton(spec.family, addr[0]) == socket.inet_pton(spec.family, spec.host)
    )
