#!/usr/bin/env bash
# `make install-systemd` / `make uninstall-systemd`. Run as root on a systemd host.
#   install:   unit (ExecStart = the installed pmond), /etc/pmon3/config/config.yml only if there is
#              none, /etc/logrotate.d/pmond, bash/zsh/fish completions; then daemon-reload, enable --now.
#   uninstall: disable --now, remove unit, logrotate file and completions; config, data and logs stay.
# PMOND=/path/to/pmond overrides the lookup on PATH; DESTDIR=/some/dir stages the files (no systemctl).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
action=${1:-}
DESTDIR=${DESTDIR:-}
DESTDIR=${DESTDIR%/}

unit=$DESTDIR/etc/systemd/system/pmond.service
config=$DESTDIR/etc/pmon3/config/config.yml
logrotate=$DESTDIR/etc/logrotate.d/pmond
bash_comp=$DESTDIR/usr/share/bash-completion/completions/pmon3
zsh_comp=$DESTDIR/usr/share/zsh/site-functions/_pmon3
fish_comp=$DESTDIR/usr/share/fish/vendor_completions.d/pmon3.fish

say() { printf 'pmon3: %s\n' "$*"; }
die() { printf 'pmon3: %s\n' "$*" >&2; exit 1; }

# systemctl is only worth calling when systemd runs this machine (sd_booted) and nothing is staged.
systemd_usable() {
    [ -z "$DESTDIR" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null
}

install_completion() {  # shell, destination
    local src
    mkdir -p "$(dirname "$2")"
    case $1 in bash) src=pmon3.bash ;; zsh) src=_pmon3 ;; fish) src=pmon3.fish ;; esac
    # The installed pmon3 (next to pmond) knows its own commands best; the checkout's copy otherwise.
    if [ -x "$pmon3" ] && "$pmon3" completion "$1" > "$2.tmp" 2>/dev/null; then
        mv -f "$2.tmp" "$2" && chmod 0644 "$2"
    else
        rm -f "$2.tmp"
        install -m 0644 "$here/completions/$src" "$2"
    fi
}

case $action in
install)
    [ -n "$DESTDIR" ] || [ "$(id -u)" = 0 ] || die "install-systemd needs root (or DESTDIR=... to stage)"
    pmond=${PMOND:-$(command -v pmond || true)}
    [ -n "$pmond" ] || die "pmond is not on PATH: install pmon3 first (pip install pmon3-*.whl), or pass PMOND=/path/to/pmond"
    pmond=$(realpath -s "$pmond")
    [ -x "$pmond" ] || die "$pmond is not executable"
    pmon3=$(dirname "$pmond")/pmon3

    mkdir -p "$(dirname "$unit")"
    sed "s|^ExecStart=.*|ExecStart=$pmond|" "$here/systemd/pmond.service" > "$unit.tmp"
    chmod 0644 "$unit.tmp" && mv -f "$unit.tmp" "$unit"
    say "installed $unit (ExecStart=$pmond)"

    if [ -e "$config" ]; then
        say "kept the existing $config"
    else
        install -d -m 0755 "$(dirname "$config")"
        install -m 0644 "$here/systemd/config.yml" "$config"
        say "installed the default $config (daemon.autostart: false)"
    fi

    install -D -m 0644 "$here/systemd/pmond.logrotate" "$logrotate"
    install_completion bash "$bash_comp"
    install_completion zsh "$zsh_comp"
    install_completion fish "$fish_comp"
    say "installed $logrotate and completions ($bash_comp, $zsh_comp, $fish_comp)"

    if systemd_usable; then
        systemctl daemon-reload
        systemctl enable --now pmond
        say "pmond is enabled and running: systemctl status pmond"
    else
        say "systemd is not running here (or DESTDIR is set): skipped 'systemctl daemon-reload && systemctl enable --now pmond'"
    fi
    ;;
uninstall)
    [ -n "$DESTDIR" ] || [ "$(id -u)" = 0 ] || die "uninstall-systemd needs root (or DESTDIR=...)"
    if systemd_usable; then
        # KillMode=process: pmond stops its processes itself when handle_interrupts is true.
        systemctl disable --now pmond 2>/dev/null || true
    else
        say "systemd is not running here (or DESTDIR is set): skipped 'systemctl disable --now pmond'"
    fi
    rm -f "$unit" "$logrotate" "$bash_comp" "$zsh_comp" "$fish_comp"
    if systemd_usable; then
        systemctl daemon-reload
    fi
    say "removed the unit, $logrotate and the completions"
    say "kept $DESTDIR/etc/pmon3 (config and data) and $DESTDIR/var/log/pmond"
    ;;
*)
    die "usage: $0 install|uninstall"
    ;;
esac
