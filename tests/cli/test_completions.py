"""Shell completion: the committed scripts are current, `completion` needs no daemon, ids complete live."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from helpers import BIN, Pmond

ROOT = Path(__file__).resolve().parents[2]
FILES = {"bash": "pmon3.bash", "zsh": "_pmon3", "fish": "pmon3.fish"}


def run(env: dict[str, str], *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "pmon3"), *args], env={**env, **extra}, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("shell", sorted(FILES))
def test_committed_script_is_current(offline_env: dict[str, str], shell: str) -> None:
    import importlib.metadata

    made_with = (ROOT / "completions" / ".click-version").read_text().strip()
    if importlib.metadata.version("click") != made_with:
        pytest.skip(f"completions/ was generated with click {made_with}: compare after `make completions`")
    res = run(offline_env, "completion", shell)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    committed = (ROOT / "completions" / FILES[shell]).read_text()
    assert res.stdout == committed, f"completions/{FILES[shell]} is stale: run `make completions`"


def test_scripts_hook_the_right_program(offline_env: dict[str, str]) -> None:
    assert "complete -o nosort -F _pmon3_completion pmon3" in run(offline_env, "completion", "bash").stdout
    assert "compdef _pmon3_completion pmon3" in run(offline_env, "completion", "zsh").stdout
    assert "complete --no-files --command pmon3" in run(offline_env, "completion", "fish").stdout


def test_unknown_shell_is_a_usage_error(offline_env: dict[str, str]) -> None:
    res = run(offline_env, "completion", "powershell")
    assert res.returncode == 2
    assert res.stdout == ""
    assert "powershell" in res.stderr


def complete(env: dict[str, str], line: str) -> list[str]:
    """click's bash protocol: COMP_WORDS/COMP_CWORD in, `type,value` lines out."""
    words = line.split(" ")
    res = run(env, _PMON3_COMPLETE="bash_complete", COMP_WORDS=line, COMP_CWORD=str(len(words) - 1))
    assert res.returncode == 0, res.stderr
    return [line for line in res.stdout.splitlines() if line]  # click prints a bare newline for none


def test_commands_complete_offline(offline_env: dict[str, str]) -> None:
    offered = complete(offline_env, "pmon3 st")
    assert "plain,stop" in offered and "plain,start" in offered  # start is its own command here (not restart)
    assert "plain,list" not in complete(offline_env, "pmon3 l")  # aliases are not offered twice


def test_ids_without_a_daemon_complete_to_nothing(offline_env: dict[str, str]) -> None:
    res = run(offline_env, _PMON3_COMPLETE="bash_complete", COMP_WORDS="pmon3 stop we", COMP_CWORD="2")
    assert (res.returncode, res.stdout.strip(), res.stderr) == (0, "", "")  # silent, no daemon started
    assert not (Path(offline_env["PMON3_CONF"]).parent / "data").exists()


@pytest.fixture(scope="module")
def webapp(pmond: Pmond) -> dict[str, object]:
    return pmond.json("exec", "/bin/sleep", "--name", "webapp", "-a", "300")


@pytest.mark.parametrize("command", ["stop", "restart", "start", "del", "desc", "log", "logf", "reset"])
def test_names_complete_live(pmond: Pmond, webapp: dict[str, object], command: str) -> None:
    assert complete(pmond.env, f"pmon3 {command} we") == ["plain,webapp"]


def test_ids_complete_live(pmond: Pmond, webapp: dict[str, object]) -> None:
    offered = complete(pmond.env, "pmon3 stop ")
    assert "plain,webapp" in offered
    assert f"plain,{webapp['id']}" in offered
    assert complete(pmond.env, "pmon3 stop nomatch") == []
