import pytest
from pmon3.states import TRANSITIONS, Status, TransitionError, check_transition


def test_int_values_are_pmon3s():
    assert [(s.label, int(s)) for s in Status] == [
        ("queued", 0),
        ("init", 1),
        ("running", 2),
        ("stopped", 3),
        ("failed", 4),
        ("closed", 5),
        ("backoff", 6),
        ("restarting", 7),
        ("starting", 8),  # ours: pmon3 has no readiness
    ]


def test_every_status_has_a_transition_row():
    assert set(TRANSITIONS) == set(Status)


def test_illegal_transition_is_refused():
    with pytest.raises(TransitionError):
        check_transition(Status.INIT, Status.CLOSED)
    check_transition(Status.STOPPED, Status.RUNNING)
