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
