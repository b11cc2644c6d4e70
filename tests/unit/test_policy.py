import pytest
from pmon3.config import ConfigError, from_mapping
from pmon3.daemon import policy
from pmon3.daemon.policy import FlapSettings, RestartSettings, after_exit

S = RestartSettings(min_uptime=1.0, restart_delay=0.1, max_restart_delay=30.0)


def test_long_runner_restarts_at_once_and_forgets_its_streak():
    d = after_exit(settings=S, uptime=5.0, quick_deaths=7, code=1)
    assert (d.restart, d.delay, d.quick_deaths) == (True, 0.0, 0)


def test_quick_deaths_double_the_delay_up_to_the_cap():
    delays, streak = [], 0
    for _ in range(12):
        d = after_exit(settings=S, uptime=0.01, quick_deaths=streak, code=1)
        delays.append(d.delay)
        streak = d.quick_deaths
    assert delays[:5] == [0.1, 0.2, 0.4, 0.8, 1.6]
    assert max(delays) == 30.0 and delays[-1] == 30.0


def test_exactly_min_uptime_counts_as_good_running():
    assert after_exit(settings=S, uptime=1.0, quick_deaths=3, code=0).delay == 0.0


def test_huge_streak_stays_finite():
    assert after_exit(settings=S, uptime=0.0, quick_deaths=10_000, code=1).delay == 30.0


@pytest.mark.parametrize(
    "mode, code, sig, restart, outcome",
    [
        ("always", 0, None, True, "running"),
        ("always", 3, None, True, "running"),
        ("on-failure", 0, None, False, "stopped"),
        ("on-failure", 2, None, False, "stopped"),  # 2 is declared a success below
        ("on-failure", 3, None, True, "running"),
        ("on-failure", None, 9, True, "running"),  # a signal death is a failure
        ("never", 0, None, False, "stopped"),
        ("never", 1, None, False, "failed"),
        ("never", None, 15, False, "failed"),
    ],
)
def test_restart_modes(mode, code, sig, restart, outcome):
    s = RestartSettings(mode=mode, success_exit_codes=(0, 2))
    d = after_exit(settings=s, uptime=10.0, quick_deaths=0, code=code, signal=sig)
    assert (d.restart, d.outcome) == (restart, outcome)


def test_effective_policy_layers_process_over_config_and_no_autorestart_wins():
    cfg = from_mapping({"restart": {"mode": "on-failure", "min_uptime": "2s", "stop_signal": "int"}}, "c", "system")
    eff = policy.effective(cfg, True, policy.normalize_overrides({"restart_delay": "250ms", "stop_timeout": 3}))
    assert (eff.mode, eff.min_uptime, eff.restart_delay, eff.stop_signal, eff.stop_timeout) == (
        "on-failure",
        2.0,
        0.25,
        "SIGINT",
        0.003,
    )
    assert policy.effective(cfg, False, {"restart": "always"}).mode == "never"


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"restart": "sometimes"}, "expected one of"),
        ({"stop_signal": "SIGNOPE"}, "unknown signal"),
        ({"success_exit_codes": "0,300"}, "0 to 255"),
        ({"min_uptime": "soon"}, "invalid duration"),
    ],
)
def test_bad_overrides_are_refused(overrides, fragment):
    with pytest.raises(ConfigError, match=fragment):
        policy.normalize_overrides(overrides)


F = FlapSettings(enabled=True, threshold=3, window=60.0, decrement=30.0)


def test_flap_backs_off_after_threshold_restarts_inside_the_window():
    state: dict = {}
    now = 1000.0
    for i in range(3):
        state, retry = policy.flap_check(state, now + i, F)
        assert retry is None
        state = policy.flap_note_restart(state, now + i, F)
    state, retry = policy.flap_check(state, now + 3, F)
    assert retry == now + 3 + 30.0 and state["backoff_until"] == retry


def test_restarts_outside_the_window_do_not_count():
    state = {"restarts": [0.0, 1.0, 2.0]}
    state, retry = policy.flap_check(state, 100.0, F)  # all older than 60 s
    assert retry is None and state["restarts"] == []


def test_decrement_forgives_one_restart_so_a_failing_process_backs_off_again_after_one_try():
    state = {"restarts": [10.0, 11.0, 12.0]}
    state = policy.flap_retry(state, 42.0, F)
    assert len(state["restarts"]) == 2
    state = policy.flap_note_restart(state, 42.0, F)
    assert policy.flap_check(state, 43.0, F)[1] is not None


def test_without_decrement_the_whole_countdown_is_waited_and_the_count_cleared():
    f = FlapSettings(enabled=True, threshold=3, window=60.0, decrement=0.0)
    state, retry = policy.flap_check({"restarts": [1.0, 2.0, 3.0]}, 4.0, f)
    assert retry == 64.0
    assert policy.flap_retry(state, 64.0, f) == {"restarts": []}


def test_disabled_flap_detection_keeps_no_state():
    off = FlapSettings(enabled=False, threshold=1, window=1.0, decrement=0.0)
    assert policy.flap_check({"restarts": [1.0]}, 1.0, off) == ({}, None)


def test_one_restart_settings_type_for_config_and_policy():
    from pmon3 import config

    assert RestartSettings is config.RestartSettings
    cfg = from_mapping({"restart": {"stop_timeout": "4s"}}, "c", "system")
    assert policy.effective(cfg, True, {}) is cfg.restart  # no overrides: the config's own settings
    assert policy.effective(cfg, True, policy.normalize_overrides({"success_exit_codes": "0,3"})) == (
        config.RestartSettings(success_exit_codes=(0, 3), stop_timeout=4.0)
    )


def test_restarts_at_once_is_after_exit_without_a_delay():
    """The restart hot path asks policy.restarts_at_once alone: it must agree with after_exit everywhere."""
    for mode in ("always", "on-failure", "never"):
        for codes in ((0,), (0, 2)):
            s = RestartSettings(mode=mode, success_exit_codes=codes, min_uptime=1.0)
            for uptime in (0.0, 0.999, 1.0, 5.0):
                for code, sig in ((0, None), (2, None), (1, None), (None, 9), (None, None)):
                    d = after_exit(settings=s, uptime=uptime, quick_deaths=3, code=code, signal=sig)
                    expected = d.restart and d.delay == 0
                    assert policy.restarts_at_once(s, uptime, code, sig) == expected, (mode, codes, uptime, code, sig)
