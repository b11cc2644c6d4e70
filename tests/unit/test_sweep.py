"""The SIGCHLD sweep (wait4(-1): the kernel walks every child of pmond) is spaced out with many children, so
that at 10,000 its ~1 ms walk does not keep landing on restarts; with a few it runs 50 ms after the signal."""

from pmon3.daemon import supervisor


def test_few_children_are_swept_within_50_ms():
    assert [supervisor.sweep_delay(n) for n in (0, 1, 100, 500)] == [0.05] * 4


def test_many_children_make_sweeps_further_apart_up_to_a_bound():
    delays = [supervisor.sweep_delay(n) for n in (1000, 5000, 10_000, 20_000, 100_000)]
    assert delays == sorted(delays) and delays[0] > 0.05
    assert delays[2] >= 1.0  # 10,000 children: the walk (~1.2 ms) is at most ~0.1 % of the loop
    assert delays[-1] == supervisor.SWEEP_MAX  # an orphan's zombie is still reaped within 2 s
