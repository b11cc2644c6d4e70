"""A bounded IPC fuzzer: at least 100,000 random and mutated frames (garbage, short and wrong headers, partial
messages, wrong and inconsistent counts, oversized messages and lengths, deep JSON, integers past 4300 digits,
wrong versions, well-formed requests with bad fields) sent by an unprivileged user in at most 60 s, on each
transport (tests/security/attacker.py, class Fuzzer). pmond must survive, grow by less than 10 MB, keep
answering root (root's `list` through pmon3.Client, so that no CLI start-up is in the figure, every 20 ms
during the run) in under 0.5 s, write no traceback, and leave the victims' processes as they were.

The seed is the run's token (printed; PMON3_FUZZ_SEED replays one). pmond's RSS is measured after a warm-up of
2,000 frames, so that one-time allocations (modules a handler imports on first use) are not counted as growth.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from helpers import RUN, Pmond
from secutil import (
    ATTACKER,
    OTHER,
    TRANSPORTS,
    Latency,
    attack,
    client,
    endpoints,
    log_size,
    needs_root,
    no_traceback,
    ok_as,
    pmond_pid,
    row_state,
    rss_kib,
    sec_daemon,
)

pytestmark = needs_root
FRAMES = 100_000
SECONDS = 60.0
MAX_GROWTH_KIB = 10 * 1024
MAX_LATENCY = 0.5


@pytest.fixture(scope="module", params=TRANSPORTS)
def daemon(request: pytest.FixtureRequest) -> Iterator[Pmond]:
    yield from sec_daemon("fuzz", request.param)


def test_fuzz(daemon: Pmond):
    d = daemon
    ep = endpoints(d)
    seed = int(os.environ.get("PMON3_FUZZ_SEED") or int(RUN, 16))
    d.json("exec", "/bin/sleep", "--name", "fuzzvictim", "-a", "600")
    ok_as(d, OTHER, "exec", "/bin/sleep", "--name", "othervictim", "-a", "600")
    with client(d) as c:
        victims = sorted(row_state(p) for p in c.list())
    start_rss = rss_kib(pmond_pid(d))
    attack(d, ATTACKER, "fuzz", transport_=d.transport, frames=2_000, seconds=SECONDS, seed=seed + 1, **ep)
    offset = log_size(d)
    before = rss_kib(pmond_pid(d))
    with Latency(d) as lat:
        report = attack(d, ATTACKER, "fuzz", transport_=d.transport, frames=FRAMES, seconds=SECONDS, seed=seed, **ep)
    after = rss_kib(pmond_pid(d))
    print(
        f"\nfuzz {d.transport} (seed {seed}): {report['frames']} frames in {report['seconds']:.1f} s ({report}); "
        f"pmond RSS {start_rss} KiB at start, {before} KiB before, {after} KiB after (+{after - before} KiB); {lat}"
    )
    assert d.proc is not None and d.proc.poll() is None, "pmond died"
    assert report["frames"] >= FRAMES and report["seconds"] <= SECONDS, report
    assert after - before < MAX_GROWTH_KIB, f"pmond grew by {after - before} KiB"
    assert not lat.errors, lat.errors[:3]
    assert lat.worst < MAX_LATENCY, lat
    no_traceback(d, offset)
    with client(d) as c:
        now = c.list()
        assert sorted(row_state(p) for p in now if p["owner"] != ATTACKER) == victims
        assert not [p for p in now if p["owner"] == ATTACKER]  # the fuzzer never makes a process
