#!/usr/bin/env bash
# Install the newest manylinux wheel of $WHEEL_DIR into a fresh venv, with no Rust toolchain on PATH and
# only binary packages allowed, then run the CLI offline and a real pmond in a temp dir:
# --version, completion, exec, ls --json, stop, daemon shutdown. Prints how long it took.
# PYTHONS="python3 3.9 3.13": once per interpreter (a version is looked up as pythonX.Y on PATH, then in
# pyenv's versions); one that this machine does not have is reported as SKIPPED, not silently passed.
set -euo pipefail

resolve() {
    local spec=$1 candidate
    for candidate in "$spec" "python$spec" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$spec"*/bin/python"$spec"; do
        if "$candidate" -c 'import sys' >/dev/null 2>&1; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

if [ -n "${PYTHONS:-}" ]; then
    status=0
    for spec in $PYTHONS; do
        if py=$(resolve "$spec"); then
            PYTHONS='' PYTHON="$py" "$0" || status=1
        else
            echo "wheel-smoke: SKIPPED Python $spec: no such interpreter on this machine (PATH or pyenv)" >&2
        fi
    done
    exit $status
fi

start=$EPOCHREALTIME
PYTHON=${PYTHON:-python3}
WHEEL_DIR=${WHEEL_DIR:-dist}
wheel=$(ls -t "$WHEEL_DIR"/pmon3-*-abi3-*manylinux*.whl 2>/dev/null | head -n1)
[ -n "$wheel" ] || { echo "wheel-smoke: no manylinux wheel in $WHEEL_DIR (run make wheel)" >&2; exit 1; }
wheel=$(realpath "$wheel")
py=$(command -v "$PYTHON")

tmp=$(mktemp -d /tmp/pmon3-wheel-smoke.XXXXXX)
pmond_pid=
cleanup() {
    if [ -n "$pmond_pid" ] && kill -0 "$pmond_pid" 2>/dev/null; then
        kill -TERM "$pmond_pid" 2>/dev/null || true
        wait "$pmond_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

"$py" -m venv "$tmp/venv"
# A PATH with the new venv and the system directories only: no cargo, no rustc, no checkout.
export PATH="$tmp/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
unset PYTHONPATH VIRTUAL_ENV
if command -v cargo >/dev/null || command -v rustc >/dev/null; then
    echo "wheel-smoke: note: a Rust toolchain is on the system PATH ($(command -v cargo rustc | head -n1));" \
        "--only-binary keeps pip from using it" >&2
fi
cd "$tmp"
pip install -q --disable-pip-version-check --only-binary=:all: "$wheel"
installed=$EPOCHREALTIME

cat > "$tmp/config.yml" <<YAML
data:
  directory: $tmp/data
logs:
  directory: $tmp/logs
message_queue:
  name_suffix: smoke$$
daemon:
  autostart: false
restart:
  stop_timeout: 2s
YAML
export PMON3_CONF="$tmp/config.yml"

pmon3 --version
pmond --version
pmon3 completion bash | grep -q _PMON3_COMPLETE
pmon3 completion zsh | grep -q compdef
pmon3 completion fish | grep -q 'complete --no-files --command pmon3'

pmond --foreground 2> "$tmp/pmond.log" &
pmond_pid=$!
deadline=$((SECONDS + 20))
until pmon3 ls --json >/dev/null 2>&1; do
    kill -0 "$pmond_pid" 2>/dev/null || { cat "$tmp/pmond.log" >&2; echo "wheel-smoke: pmond died" >&2; exit 1; }
    [ $SECONDS -lt $deadline ] || { cat "$tmp/pmond.log" >&2; echo "wheel-smoke: pmond not ready" >&2; exit 1; }
    sleep 0.05
done

pmon3 exec /bin/sleep --name smoke -a 100 >/dev/null
pmon3 ls --json > "$tmp/ls.json"
python - "$tmp/ls.json" <<'PY'
import json, os, sys
procs = json.load(open(sys.argv[1]))
assert len(procs) == 1 and procs[0]["name"] == "smoke" and procs[0]["status"] == "running", procs
os.kill(procs[0]["pid"], 0)
print(f"wheel-smoke: pid {procs[0]['pid']} running under pmond")
PY
pmon3 stop smoke >/dev/null
pmon3 desc smoke --json | python -c 'import json,sys; s=json.load(sys.stdin)["status"]; assert s=="stopped", s'
kill -TERM "$pmond_pid"
wait "$pmond_pid"
pmond_pid=

end=$EPOCHREALTIME
python -c 'import sys; s, i, e = map(float, sys.argv[2:]); print(f"wheel-smoke: OK {sys.argv[1]} on Python {sys.version.split()[0]} (venv + pip install {i - s:.1f} s, total {e - s:.1f} s)")' \
    "$(basename "$wheel")" "$start" "$installed" "$end"
