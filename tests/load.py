"""A small HTTP load generator for the reload tests and benches: threads issuing GETs on fresh connections
(keep-alive off) to 127.0.0.1, as fast as the server answers, counting what succeeded, what was refused and
what else failed. Loopback only, bounded by the caller's start/stop."""

from __future__ import annotations

import collections
import dataclasses
import socket
import threading
import time


@dataclasses.dataclass
class Result:
    ok: int = 0
    refused: int = 0
    failed: int = 0
    errors: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    latencies: list[float] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return (self.ok + self.refused + self.failed) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> str:
        return (
            f"{self.ok + self.refused + self.failed} requests in {self.seconds:.1f} s ({self.rate:.0f}/s): "
            f"{self.ok} ok, {self.refused} refused, {self.failed} failed {dict(self.errors)}; "
            f"p50 {self.percentile(0.5) * 1000:.1f} ms, p99 {self.percentile(0.99) * 1000:.1f} ms"
        )


class Load:
    def __init__(self, port: int, threads: int = 4, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
        self.address = (host, port)
        self.threads = threads
        self.timeout = timeout
        self.result = Result()
        self.lock = threading.Lock()
        self.running = threading.Event()
        self.workers: list[threading.Thread] = []
        self.started = 0.0

    def __enter__(self) -> Load:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.running.set()
        self.started = time.monotonic()
        for _ in range(self.threads):
            t = threading.Thread(target=self._work, daemon=True)
            t.start()
            self.workers.append(t)

    def stop(self) -> Result:
        self.running.clear()
        for t in self.workers:
            t.join(self.timeout + 5)
        self.result.seconds = time.monotonic() - self.started
        return self.result

    def _one(self) -> str:
        with socket.create_connection(self.address, timeout=self.timeout) as s:
            s.sendall(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        if not data.startswith(b"HTTP/1.0 200") and not data.startswith(b"HTTP/1.1 200"):
            return f"status {data[:12]!r}"
        return ""

    def _work(self) -> None:
        while self.running.is_set():
            t0 = time.monotonic()
            try:
                problem = self._one()
            except ConnectionRefusedError:
                with self.lock:
                    self.result.refused += 1
                continue
            except OSError as exc:
                problem = type(exc).__name__
            took = time.monotonic() - t0
            with self.lock:
                if problem:
                    self.result.failed += 1
                    self.result.errors[problem] += 1
                else:
                    self.result.ok += 1
                    self.result.latencies.append(took)

    def wait_for_requests(self, n: int, deadline: float = 30.0) -> None:
        """Until `n` more requests have been answered (so that a test runs its steps under load)."""
        with self.lock:
            target = self.result.ok + n
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            with self.lock:
                if self.result.ok >= target:
                    return
            time.sleep(0.005)
        raise AssertionError(f"the server answered fewer than {n} requests in {deadline} s")
