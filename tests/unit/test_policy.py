from pmon3.daemon.policy import RestartSettings, after_exit

S = RestartSettings(min_uptime=1.0, restart_delay=0.1, max_restart_delay=30.0)


def test_long_runner_restarts_at_once_and_forgets_its_streak():
    d = after_exit(auto_restart=True, uptime=5.0, quick_deaths=7, settings=S)
    assert (d.restart, d.delay, d.quick_deaths) == (True, 0.0, 0)


def test_quick_deaths_double_the_delay_up_to_the_cap():
    delays, streak = [], 0
    for _ in range(12):
        d = after_exit(auto_restart=True, uptime=0.01, quick_deaths=streak, settings=S)
        delays.append(d.delay)
        streak = d.quick_deaths
    assert delays[:5] == [0.1, 0.2, 0.4, 0.8, 1.6]
    assert max(delays) == 30.0 and delays[-1] == 30.0


def test_exactly_min_uptime_counts_as_good_running():
    assert after_exit(auto_restart=True, uptime=1.0, quick_deaths=3, settings=S).delay == 0.0


def test_no_autorestart_never_restarts():
    d = after_exit(auto_restart=False, uptime=100.0, quick_deaths=0, settings=S)
    assert not d.restart


def test_huge_streak_stays_finite():
    d = after_exit(auto_restart=True, uptime=0.0, quick_deaths=10_000, settings=S)
    assert d.delay == 30.0
