"""Resource limits as the CLI, process configs and pmond spell them (pmon3/limits.py), and the config keys."""

from __future__ import annotations

import pytest
from pmon3 import config, limits
from pmon3.errors import ConfigError
from pmon3.limits import UNLIMITED, LimitError


def test_one_value_sets_both_and_soft_hard_sets_each():
    assert limits.parse_limits("nofile=65536,core=0") == {"core": [0, 0], "nofile": [65536, 65536]}
    assert limits.parse_limits("nofile=1024:65536") == {"nofile": [1024, 65536]}
    assert limits.parse_limits("AS=unlimited") == {"as": [UNLIMITED, UNLIMITED]}
    assert limits.parse_limits("stack=8M:unlimited") == {"stack": [8 << 20, UNLIMITED]}
    assert limits.parse_limits("RLIMIT_NOFILE=10") == {"nofile": [10, 10]}


def test_every_spelling_is_the_same_limits():
    text = limits.parse_limits("nofile=4096,memlock=64K")
    assert limits.parse_limits(["nofile=4096", "memlock=64K"]) == text
    assert limits.parse_limits({"nofile": 4096, "memlock": "65536"}) == text
    assert limits.parse_limits({"NOFILE": "4096", "memlock": [65536, 65536]}) == text
    assert limits.parse_limits(None) == limits.parse_limits("") == {}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("nofile", "expected NAME=VALUE"),
        ("files=10", "unknown limit 'files'"),
        ("nofile=ten", "nofile: expected a number or unlimited"),
        ("nofile=20:10", "soft limit is above the hard one"),
        ("nofile=unlimited:10", "soft limit is above the hard one"),
        ("as=12Q", "as: expected a size"),
        ({"nofile": True}, "nofile: expected soft[:hard]"),
        ([3], "expected NAME=VALUE items"),
    ],
)
def test_bad_limits_name_the_problem(value: object, message: str):
    with pytest.raises(LimitError, match=message.replace("[", r"\[").replace("]", r"\]")):
        limits.parse_limits(value)


def test_text_round_trips():
    for text in ("core=0,nofile=65536", "as=unlimited,stack=8M:unlimited", "cpu=10:20,nproc=64", "memlock=1000"):
        parsed = limits.parse_limits(text)
        assert limits.limits_text(parsed) == text
        assert limits.parse_limits(limits.limits_text(parsed)) == parsed


def test_rlimits_are_what_spawn_takes():
    import resource

    got = limits.rlimits(limits.parse_limits("nofile=1:2,core=unlimited,cpu=5"))
    assert got == [(resource.RLIMIT_CORE, -1, -1), (resource.RLIMIT_CPU, 5, 5), (resource.RLIMIT_NOFILE, 1, 2)]
    for name, number in limits.RLIMITS.items():
        assert getattr(resource, f"RLIMIT_{name.upper()}") == number


def test_sizes_and_cgroup_values():
    assert limits.parse_size("512M", "x") == 512 << 20
    assert limits.parse_size("1.5G", "x") == 3 << 29
    assert limits.parse_size("64KiB", "x") == 64 << 10
    assert limits.parse_size(100, "x") == 100
    assert limits.size_text(512 << 20) == "512M" and limits.size_text(1000) == "1000"
    assert limits.parse_cpu_max("50%") == "50000 100000"
    assert limits.parse_cpu_max("1.5") == "150000 100000"
    assert limits.parse_cpu_max("20000 50000") == "20000 50000"
    with pytest.raises(LimitError, match="cpu_max"):
        limits.parse_cpu_max("0.1%")
    with pytest.raises(LimitError, match="pids_max"):
        limits.parse_count("0", "pids_max")


def test_memory_check_interval(tmp_path):
    path = str(tmp_path / "c.yml")
    assert config.from_mapping({"limits": {"memory_check_interval": "2s"}}, path, "system").memory_check_ms == 2000
    assert config.from_mapping({}, path, "system").memory_check_ms == 5000
    with pytest.raises(ConfigError, match="at least 100ms"):
        config.from_mapping({"limits": {"memory_check_interval": "10ms"}}, path, "system")
