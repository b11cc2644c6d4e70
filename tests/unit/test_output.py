from pmon3.cli import output


def test_table_aligns_wide_characters_and_shows_control_characters(capsys):
    text = output.render_table(["A", "B"], [["日本", "x"], ["ab", "\x1b[31mred\n"]], ["left", "right"])
    lines = text.splitlines()
    assert len({output.display_width(line) for line in lines}) == 1  # every line equally wide
    assert "\x1b" not in text and "\\x1b[31mred\\n" in text  # no escape sequence reaches the terminal
    assert lines[0].startswith("╭") and lines[-1].startswith("╰")


def test_no_colour_when_not_a_terminal(capsys):
    output.process_table(
        [{"id": 1, "name": "n", "pid": 2, "restart_count": 0, "status": "running", "username": "u", "updated_at": "d"}]
    )
    out = capsys.readouterr().out
    assert "running" in out and "\x1b[" not in out


def test_json_output_is_exactly_what_json_dumps_indent_2_writes(capsys):
    """print_json re-indents the C encoder's compact text natively: the same text as json.dumps(indent=2)."""
    import json
    import random

    rnd = random.Random(7)
    scalars = [0, -5, 1.25, 1e300, -0.0, 10**30, "s", 'q"\\,:[]{}', "ünï\u2028\x1b", "", None, True, False]

    def gen(depth: int) -> object:
        r = rnd.random()
        if depth > 3 or r < 0.4:
            return rnd.choice(scalars)
        if r < 0.7:
            return [gen(depth + 1) for _ in range(rnd.randint(0, 3))]
        return {
            rnd.choice(["a", "b,", 'c"', "d:", "ü", "{"]) + str(i): gen(depth + 1) for i in range(rnd.randint(0, 3))
        }

    samples = [[], {}, [[]], [{}], float("nan"), float("inf"), {1: 2, None: 3}, *[gen(0) for _ in range(2000)]]
    for sample in samples:
        output.print_json(sample)
        assert capsys.readouterr().out == json.dumps(sample, indent=2) + "\n"


def test_ls_on_a_terminal_shows_a_screenful_and_says_what_is_not_shown(monkeypatch, capsys):
    procs = [
        {
            "id": i,
            "name": f"p{i}",
            "pid": i,
            "restart_count": 0,
            "status": "failed" if i % 10 == 0 else "running",
            "username": "u",
            "updated_at": "d",
        }
        for i in range(1, 101)
    ]
    monkeypatch.setattr(output.sys.stdout, "isatty", lambda: True)
    monkeypatch.setenv("LINES", "40")
    monkeypatch.setenv("NO_COLOR", "1")
    output.process_table_for_terminal(procs)
    out = capsys.readouterr().out.splitlines()
    rows = [line for line in out if line.startswith("│") and "p" in line and "Name" not in line]
    assert len(rows) == 40 - output.TABLE_CHROME and "p1 " in rows[0] and "p33 " in rows[-1]
    assert out[-1] == (
        "… 67 more not shown (100 processes: 90 running, 10 failed); every one: pmon3 ls --all, or pmon3 ls | less; "
        "for scripts: pmon3 ls --json"
    )
    output.process_table_for_terminal(procs[:30])  # it fits: the whole table, no summary
    out = capsys.readouterr().out
    assert "p30" in out and "not shown" not in out
    monkeypatch.setattr(output.sys.stdout, "isatty", lambda: False)  # a pipe or a file: every row
    output.process_table_for_terminal(procs)
    assert "p100" in capsys.readouterr().out
