"""exec|run BINARY [flags] [-- ARG ...]: start a new supervised process."""

from __future__ import annotations

import os
from typing import Optional

import click

from ..output import CliError
from . import Command, handle_errors, json_option, session, show_process


def env_list(env_vars: tuple[str, ...]) -> list[str]:
    """-e values, each split with shell-like quoting (`-e 'A=1 B="x y"'`)."""
    if not env_vars:
        return []
    import shlex  # only then: ~0.4 ms

    items: list[str] = []
    for value in env_vars:
        try:
            items += shlex.split(value)
        except ValueError as exc:
            raise CliError(f"invalid env vars {value!r}: {exc}") from None
    return items


def user_flag_check(user: Optional[str]) -> None:
    if user == "root" and os.geteuid() != 0:
        raise CliError("cannot set process user to root without sudo")


@click.command("exec", cls=Command, context_settings={"ignore_unknown_options": False})
@click.argument("binary", type=click.Path(dir_okay=False))
@click.argument("extra", nargs=-1, type=click.UNPROCESSED)
@click.option("--name", help="process name (default: the binary's file name)")
@click.option("-l", "--log", help="absolute path of the log file")
@click.option("--log-dir", help="directory of the log file <dir>/<name>.log")
@click.option("-a", "--args", "args_", help='arguments as one string, e.g. -a "--port 80"')
@click.option("-e", "--env-vars", multiple=True, help="KEY=VALUE environment variables (repeatable)")
@click.option("-u", "--user", help="run the process as this user (default: you)")
@click.option("-n", "--no-autorestart", is_flag=True, help="do not restart upon process failure")
@click.option("-d", "--dependencies", multiple=True, help="names this process depends on (repeatable or a,b)")
@click.option("-g", "--groups", multiple=True, help="group names (repeatable or a,b)")
@click.option("--cwd", help="working directory (default: the binary's directory)")
@click.option("--env-file", type=click.Path(dir_okay=False), help="dotenv file of KEY=VALUE lines")
@click.option(
    "--restart",
    "restart_mode",
    type=click.Choice(["always", "on-failure", "never"]),
    help="when to restart (default: config.yml restart.mode, always)",
)
@click.option("--success-exit-codes", help="exit codes that count as success for on-failure, e.g. 0,2")
@click.option("--min-uptime", help="up at least this long => restarted at once (e.g. 1s)")
@click.option("--restart-delay", help="first delay after a quicker death, doubled each time (e.g. 100ms)")
@click.option("--max-restart-delay", help="cap of that delay (e.g. 30s)")
@click.option("--stop-signal", help="signal for a graceful stop (e.g. SIGINT, TERM, 15)")
@click.option("--stop-timeout", help="SIGKILL after this long (e.g. 10s)")
@click.option(
    "--listen",
    multiple=True,
    help="a listening socket pmond holds and passes as LISTEN_FDS: tcp:HOST:PORT, tcp6:[HOST]:PORT, unix:PATH "
    "(options ,name= ,backlog= ,mode= ,owner=); repeatable",
)
@click.option("--ready", help="when it is ready: none, notify, tcp[:PORT], http:PATH, log:REGEX, delay:DURATION")
@click.option("--ready-timeout", help="stopped (as a crash) when not ready by then (default 60s)")
@click.option("--watchdog", help="with --ready notify: restarted when it sends no WATCHDOG=1 for this long")
@click.option("-i", "--instances", type=click.IntRange(1, 256), help="run N copies sharing its sockets (NAME@1 ...)")
@click.option(
    "--no-strict-modes",
    is_flag=True,
    help="run it even if a user other than the run user (and root) can modify the executable or a directory above it",
)
@click.option(
    "--limit",
    "limits",
    multiple=True,
    help="resource limit NAME=SOFT[:HARD] (nofile, nproc, core, memlock, as, cpu, stack; unlimited; "
    "repeatable or a,b), e.g. --limit nofile=65536,core=0",
)
@click.option("--max-memory", help="restart when the whole tree's memory stays above this (e.g. 512M)")
@click.option("--memory-max", help="cgroup memory.max of the tree (needs the memory controller), e.g. 1G")
@click.option("--cpu-max", help="cgroup cpu.max of the tree (needs the cpu controller), e.g. 50% or 1.5")
@click.option("--pids-max", help="cgroup pids.max of the tree (needs the pids controller)")
@json_option
@handle_errors
def exec_cmd(
    binary: str,
    extra: tuple[str, ...],
    name: Optional[str],
    log: Optional[str],
    log_dir: Optional[str],
    args_: Optional[str],
    env_vars: tuple[str, ...],
    user: Optional[str],
    no_autorestart: bool,
    dependencies: tuple[str, ...],
    groups: tuple[str, ...],
    cwd: Optional[str],
    env_file: Optional[str],
    restart_mode: Optional[str],
    success_exit_codes: Optional[str],
    min_uptime: Optional[str],
    restart_delay: Optional[str],
    max_restart_delay: Optional[str],
    stop_signal: Optional[str],
    stop_timeout: Optional[str],
    listen: tuple[str, ...],
    ready: Optional[str],
    ready_timeout: Optional[str],
    watchdog: Optional[str],
    instances: Optional[int],
    no_strict_modes: bool,
    limits: tuple[str, ...],
    max_memory: Optional[str],
    memory_max: Optional[str],
    cpu_max: Optional[str],
    pids_max: Optional[str],
    as_json: bool,
) -> None:
    """Spawn a new process."""
    user_flag_check(user)
    if extra and args_:
        raise CliError("give arguments either with --args or after --, not both")
    with session() as c:
        p = c.exec(
            binary,  # relative to where the user is, not to the daemon
            name=name or "",
            args=args_ or "",
            argv=list(extra) if extra else None,
            env=env_list(env_vars),
            env_file=env_file,  # read here, with the caller's own rights (never by pmond)
            user=user or "",
            log=log or "",
            log_dir=log_dir or "",
            no_auto_restart=no_autorestart,
            dependencies=list(dependencies),
            groups=list(groups),
            cwd=cwd or "",
            restart=restart_mode,
            success_exit_codes=success_exit_codes or None,
            min_uptime=min_uptime or None,
            restart_delay=restart_delay or None,
            max_restart_delay=max_restart_delay or None,
            stop_signal=stop_signal or None,
            stop_timeout=stop_timeout or None,
            strict_modes=False if no_strict_modes else None,
            listen=list(listen),
            ready=ready,
            ready_timeout=ready_timeout,
            watchdog=watchdog,
            instances=instances,
            limits=",".join(limits) or None,
            max_memory=max_memory or None,
            memory_max=memory_max or None,
            cpu_max=cpu_max or None,
            pids_max=pids_max or None,
        )
    show_process(dict(p), as_json)
