"""Process config files: formats, dependency order, export byte for byte (pmon3 reference App. A)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pmon3 import procconfig

DATA = Path(__file__).with_name("data")

# The four processes of reference Appendix A, as the daemon sends them.
WIRE = [
    {
        "process_file": "/tmp/pmon3/test_app",
        "username": "root",
        "log": "/var/log/export-test-server-1/export-test-server-1.log",
        "args": "",
        "env_vars": "TEST_APP_PORT=11020",
        "name": "export-test-server-1",
        "dependencies": ["export-test-server-2", "export-test-server-3"],
        "groups": ["groupA", "groupB"],
        "auto_restart": True,
    },
    {
        "process_file": "/tmp/pmon3/test_app",
        "username": "root",
        "log": "/tmp/pmon3/logs/export-test-server-2.log",
        "args": "",
        "env_vars": "TEST_APP_PORT=11021",
        "name": "export-test-server-2",
        "dependencies": [],
        "groups": [],
        "auto_restart": False,
    },
    {
        "process_file": "/tmp/pmon3/test_app",
        "username": "root",
        "log": "/var/log/export-test-server-3.log",
        "args": "-e example_args",
        "env_vars": "TEST_APP_PORT=11022",
        "name": "export-test-server-3",
        "dependencies": [],
        "groups": ["groupC"],
        "auto_restart": True,
    },
    {
        "process_file": "/tmp/pmon3/test_app",
        "username": "root",
        "log": "/tmp/pmon3/logs/export-test-server-4.log",
        "args": "",
        "env_vars": "TEST_APP_PORT=11023",
        "name": "export-test-server-4",
        "dependencies": ["export-test-server-3"],
        "groups": [],
        "auto_restart": True,
    },
]


@pytest.mark.parametrize("fmt", ["json", "yaml", "toml"])
def test_export_is_byte_for_byte_pmon3(fmt):
    entries = [procconfig.export_entry(p) for p in WIRE]
    expected = (DATA / f"export.{fmt}").read_text()
    rendered = procconfig.render(entries, fmt)
    assert rendered + ("\n" if fmt == "json" else "") == expected


@pytest.mark.parametrize("fmt", ["json", "yaml", "toml"])
def test_export_reads_back_as_the_same_entries(tmp_path, fmt):
    entries = [procconfig.export_entry(p) for p in WIRE]
    f = tmp_path / f"process.config.{fmt}"
    f.write_text(procconfig.render(entries, fmt))
    loaded = procconfig.load(str(f))
    for got, want in zip(loaded, entries):
        for key, value in want.items():
            if key == "no_auto_restart" and not value:
                assert not got.get(key)
            else:
                assert got[key] == value, (fmt, key)


def test_worked_example_order():
    # reference §8.3: 1→2, 2→{3,4}, 4→3, 5 independent ⇒ 3,4,2,1 then 5
    items = [("p1", ["p2"]), ("p2", ["p3", "p4"]), ("p3", []), ("p4", ["p3"]), ("p5", [])]
    ordered, independent, unknown = procconfig.dependency_order(items)
    assert ordered == ["p3", "p4", "p2", "p1"] and independent == ["p5"] and unknown == []


def test_ties_are_broken_by_name():
    items = [("web", ["db", "cache"]), ("cache", []), ("db", []), ("zeta", []), ("alpha", [])]
    assert procconfig.dependency_order(items)[:2] == (["cache", "db", "web"], ["alpha", "zeta"])


def test_no_dependencies_keeps_original_order():
    assert procconfig.dependency_order([("b", []), ("a", [])]) == ([], ["b", "a"], [])


@pytest.mark.parametrize(
    "items, message",
    [
        ([("a", ["b"]), ("b", ["a"])], "circular dependencies not allowed"),
        ([("a", ["b"]), ("b", ["c"]), ("c", ["a"])], "circular dependencies not allowed"),
        ([("a", ["a"]), ("b", [])], "self-referential dependencies not allowed"),
    ],
)
def test_cycles_are_refused_with_pmon3_texts(items, message):
    with pytest.raises(procconfig.DependencyError, match=message):
        procconfig.dependency_order(items)


def test_unknown_dependencies_are_reported_and_skipped():
    ordered, independent, unknown = procconfig.dependency_order([("a", ["ghost"]), ("b", [])])
    assert unknown == ["ghost"] and set(ordered + independent) == {"a", "b"}
    # pmon3 keeps a process whose only dependency is unknown in the dependency order (it still waits there)
    assert ordered == ["a"] and independent == ["b"]


def test_dependents_of_an_unknown_name_keep_their_place_after_known_ones():
    items = [("c", ["nosuch"]), ("d", ["c"]), ("e", [])]
    assert procconfig.dependency_order(items) == (["c", "d"], ["e"], ["nosuch"])


def test_toml_keys_are_case_insensitive(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text('[[processes]]\n  file = "/bin/sleep"\n  NAME = "s"\n  noautorestart = true\n  ENVVARS = "A=1"\n')
    assert procconfig.load(str(f)) == [
        {
            "file": "/bin/sleep",
            "name": "s",
            "no_auto_restart": True,
            "env_vars": "A=1",
            "dependencies": [],
            "groups": [],
        }
    ]


@pytest.mark.parametrize(
    "name, text, fragment",
    [
        ("p.json", "{", "cannot parse"),
        ("p.json", '{"processes": {"a": 1}}', "must be a list"),
        ("p.json", '{"processes": [{"name": "x"}]}', "`file` is required"),
        ("p.json", '{"processes": [{"file": "/bin/a", "bogus": 1}]}', "unknown key"),
        ("p.yaml", "processes:\n  - file: /bin/a\n    name: x\n  - file: /bin/b\n    name: x\n", "duplicate name"),
        ("p.ini", "", "unknown format"),
    ],
)
def test_broken_files_name_the_problem(tmp_path, name, text, fragment):
    f = tmp_path / name
    f.write_text(text)
    with pytest.raises(procconfig.ProcessConfigError, match=fragment):
        procconfig.load(str(f))


def test_missing_file_is_empty(tmp_path):
    assert procconfig.load(str(tmp_path / "nope.json")) == []


def test_env_file_dotenv_syntax(tmp_path):
    f = tmp_path / ".env"
    f.write_text("# comment\nA=1\nexport B=\"two words\"\nC='x y'\nD=plain # trailing\n\nE=\n")
    assert procconfig.parse_env_file(str(f)) == ["A=1", "B=two words", "C=x y", "D=plain", "E="]
    f.write_text("not a pair\n")
    with pytest.raises(procconfig.ProcessConfigError, match=":1: expected KEY=VALUE"):
        procconfig.parse_env_file(str(f))


def test_json_fixture_is_valid_json():
    json.loads((DATA / "export.json").read_text())


def test_every_entry_key_has_a_toml_name():
    assert set(procconfig._TOML_OUT) == set(procconfig._TOML_KEYS.values())


@pytest.mark.parametrize("fmt", ["json", "yaml", "toml"])
def test_our_keys_render_and_read_back(tmp_path, fmt):
    # `pmon3 import` writes the keys pmon3 1.18 does not have through the same writers.
    entry = {
        "file": "/bin/sleep",
        "user": "nobody",
        "log": "/tmp/s.log",
        "args": "'a b' 3",
        "env_vars": "A=1 'B=two words'",
        "name": "s",
        "dependencies": ["db"],
        "groups": ["g"],
        "no_auto_restart": True,
        "cwd": "/tmp",
        "env_file": "/tmp/.env",
        "restart": "on-failure",
        "success_exit_codes": [0, 2],
        "min_uptime": "5s",
        "restart_delay": "250ms",
        "max_restart_delay": "15s",
        "stop_signal": "SIGINT",
        "stop_timeout": "30s",
    }
    f = tmp_path / f"p.{fmt}"
    f.write_text(procconfig.render([entry], fmt))
    assert procconfig.load(str(f)) == [entry]
