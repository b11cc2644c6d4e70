"""`pmon3 import` through the real CLI: the document on stdout or in -o FILE, warnings on stderr, errors in one line."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import BIN
from pmon3 import procconfig

DATA = Path(__file__).resolve().parents[1] / "unit" / "data" / "import"
ECOSYSTEM = DATA / "pm2" / "ecosystem.json"


@pytest.fixture(scope="module")
def env(offline_env: dict[str, str]) -> dict[str, str]:
    return offline_env


def pmon3(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "pmon3"), *args], env=env, capture_output=True, text=True, timeout=60)


def one_line_error(res: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert res.returncode == 1, res
    assert res.stdout == ""
    assert res.stderr.count("\n") == 1 and fragment in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


def test_pm2_to_stdout(env):
    res = pmon3(env, "import", "pm2", str(ECOSYSTEM), "--env", "production")
    assert res.returncode == 0, res.stderr
    processes = json.loads(res.stdout)["processes"]
    assert [p["name"] for p in processes] == ["api", "worker", "ticker"]
    assert "NODE_ENV=production" in processes[0]["env_vars"]
    lines = res.stderr.splitlines()
    assert all(line.startswith(("warning: ", "info: ")) for line in lines)
    assert f"info: {ECOSYSTEM}: apps[0] (api): instances: 4 copies api, api@1 ... api@3" in res.stderr
    assert f"all writing to {ECOSYSTEM.parent}/api-out.log;" in res.stderr  # the copies share the log: set
    assert f"warning: {ECOSYSTEM}: apps[0] (api): exec_mode: PM2's cluster mode shares one port" in res.stderr
    assert f"info: {ECOSYSTEM}: apps[0] (api): max_memory_restart: max_memory 300M" in res.stderr
    assert (processes[0]["instances"], processes[0]["max_memory"]) == (4, "300M")  # mapped


def test_pm2_bad_values_are_warnings_not_errors(env, tmp_path):
    """A max_memory_restart or instances pmon3 cannot take is left out with a warning; the import succeeds."""
    eco = tmp_path / "eco.json"
    app = {"name": "a", "script": "/bin/sleep", "interpreter": "none", "args": "9", "kill_timeout": 3000}
    eco.write_text(json.dumps({"apps": [{**app, "max_memory_restart": "lots", "instances": "many"}]}))
    res = pmon3(env, "import", "pm2", str(eco))
    assert res.returncode == 0, res.stderr
    (process,) = json.loads(res.stdout)["processes"]
    assert process["stop_timeout"] == "3s" and not {"max_memory", "instances"} & set(process)
    assert (
        f'warning: {eco}: apps[0] (a): max_memory_restart: "lots" is not a size (bytes, or e.g. 300M, 1G, 512K): '
        "left out, no memory limit\n" in res.stderr
    )
    assert f'warning: {eco}: apps[0] (a): instances: "many" is not a whole number of instances or max' in res.stderr


@pytest.mark.parametrize("fmt", ["json", "yaml", "toml"])
def test_formats_load_back(env, tmp_path, fmt):
    res = pmon3(env, "import", "pm2", str(ECOSYSTEM), "--format", fmt)
    assert res.returncode == 0, res.stderr
    f = tmp_path / f"p.{fmt}"
    f.write_text(res.stdout)
    assert [e["name"] for e in procconfig.load(str(f))] == ["api", "worker", "ticker"]


def test_output_file_is_never_overwritten_without_force(env, tmp_path):
    out = tmp_path / "process.config.yaml"
    res = pmon3(env, "import", "pm2", str(ECOSYSTEM), "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""
    assert res.stderr.splitlines()[-1].startswith(f"wrote 3 processes to {out} (")
    assert [e["name"] for e in procconfig.load(str(out))] == ["api", "worker", "ticker"]
    out.write_text("processes: []\n")
    one_line_error(pmon3(env, "import", "pm2", str(ECOSYSTEM), "-o", str(out)), "exists: use --force")
    assert out.read_text() == "processes: []\n"
    assert pmon3(env, "import", "pm2", str(ECOSYSTEM), "-o", str(out), "--force").returncode == 0
    assert len(procconfig.load(str(out))) == 3
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temp file left behind


def test_write_never_goes_through_an_existing_file(tmp_path):
    from pmon3.cli.commands.import_ import write
    from pmon3.cli.output import CliError

    out = tmp_path / "p.json"
    out.write_text("{}")  # e.g. created between the check and the write
    with pytest.raises(CliError, match="exists: use --force"):
        write(str(out), "new", force=False)
    assert out.read_text() == "{}"
    write(str(out), "new", force=True)
    assert out.read_text() == "new"


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["pm2", "/nonexistent/ecosystem.json"], "/nonexistent/ecosystem.json: No such file or directory"),
        (["pm2", str(ECOSYSTEM), "-o", "x.json", "--format", "toml"], "x.json is read as json, not toml"),
        (["pm2", str(ECOSYSTEM), "-o", "x.conf"], "use a .json, .yaml, .yml or .toml file name"),
        (["supervisord", str(ECOSYSTEM), "--env", "production"], "--env applies to pm2"),
        (["pm2", str(ECOSYSTEM), "--port-base", "3000"], "--port-base applies to Procfiles"),
    ],
)
def test_errors_are_one_line(env, tmp_path, args, fragment):
    res = subprocess.run(
        [str(BIN / "pmon3"), "import", *args], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    one_line_error(res, fragment)


def test_procfile_program_not_in_path(env, tmp_path):
    (tmp_path / "Procfile").write_text("web: /bin/sleep 1\nworker: no-such-program-here\n")
    one_line_error(
        pmon3(env, "import", "procfile", str(tmp_path / "Procfile")),
        f"{tmp_path}/Procfile:2: worker: 'no-such-program-here' is not found in PATH",
    )


def test_supervisords_own_sample(env, tmp_path):
    """echo_supervisord_conf's sample as printed (its programs commented out), then with our programs added."""
    sample = subprocess.run([str(BIN / "echo_supervisord_conf")], capture_output=True, text=True, check=True).stdout
    conf = tmp_path / "supervisord.conf"
    conf.write_text(sample)
    res = pmon3(env, "import", "supervisord", str(conf))
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"processes": []}
    assert {line.split(": ")[2] for line in res.stderr.splitlines()} == {
        "[unix_http_server]",
        "[supervisord]",
        "[rpcinterface:supervisor]",
        "[supervisorctl]",
    }
    shutil.copytree(DATA / "supervisord", tmp_path / "site")
    conf = tmp_path / "site" / "supervisord.conf"
    conf.write_text(sample + (tmp_path / "site" / "programs.conf").read_text())
    res = pmon3(env, "import", "supervisord", str(conf), "--format", "yaml")
    assert res.returncode == 0, res.stderr
    out = tmp_path / "p.yaml"
    out.write_text(res.stdout)
    assert [e["name"] for e in procconfig.load(str(out))] == ["web_00", "web_01", "web_02", "db", "cache"]
    assert f"warning: {conf}: [program:web]: startretries: " in res.stderr


def test_procfile_with_port_base(env):
    res = pmon3(
        env, "import", "procfile", str(DATA / "procfile" / "Procfile"), "--port-base", "7000", "--format", "toml"
    )
    assert res.returncode == 0, res.stderr
    assert 'EnvVars = "PORT=7000"' in res.stdout and "PORT=7100" in res.stdout
    assert "clock: $INTERVAL is passed on literally" in res.stderr


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["import", "--help"]])
def test_start_up_does_not_load_the_importers(env, args):
    code = (
        "import sys\nfrom pmon3.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print('LOADED' if [m for m in sys.modules if m.startswith('pmon3.importers')] else 'CLEAN', file=sys.stderr)\n"
    )
    res = subprocess.run([str(BIN / "python"), "-c", code, *args], env=env, capture_output=True, text=True, timeout=60)
    assert res.stderr.strip().splitlines()[-1] == "CLEAN", res.stderr
