"""Shell completion: the committed scripts are current, `completion` needs no daemon, ids complete live."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import BIN, Pmond

ROOT = Path(__file__).resolve().parents[2]
COMPLETIONS = ROOT / "completions"
sys.path.insert(0, str(ROOT / "scripts"))
import completions  # noqa: E402 - scripts/completions.py, what `make completions` runs

FILES = completions.FILES
STALE = "completions/ is stale: run `make completions`"


def run(env: dict[str, str], *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "pmon3"), *args], env={**env, **extra}, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("shell", sorted(FILES))
def test_committed_script_is_current(offline_env: dict[str, str], shell: str) -> None:
    """Byte for byte under the click that generated completions/; under any other click, the parts that
    matter (variable and protocol, program, function names): never skipped for a click upgrade."""
    import importlib.metadata

    res = run(offline_env, "completion", shell)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    committed = (COMPLETIONS / FILES[shell]).read_text()
    assert completions.essentials(res.stdout) == completions.essentials(committed), STALE
    assert len(completions.essentials(committed)) >= 3  # (something to compare)
    if importlib.metadata.version("click") == (COMPLETIONS / ".click-version").read_text().strip():
        assert res.stdout == committed, STALE


def test_committed_surface_is_current() -> None:
    """The commands, options and choices that TAB offers: a command or option added without regenerating
    completions/ fails here, whatever click is installed (click's scripts themselves do not list them)."""
    committed = (COMPLETIONS / completions.SURFACE).read_text()
    assert completions.surface() == committed, STALE


def test_the_surface_sees_a_new_option(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above can fail: an option added to a command shows in the surface."""
    import click
    from pmon3.cli.commands.listing import ls_cmd

    before = completions.surface()
    monkeypatch.setattr(ls_cmd, "params", [*ls_cmd.params, click.Option(["--brand-new"], is_flag=True)])
    after = completions.surface()
    assert after != before and "pmon3 ls -: --all --brand-new --help --json -A -h" in after.splitlines()


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
