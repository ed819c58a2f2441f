#!/usr/bin/env bash
# Runs schemathesis (every check) against a fresh fipd, with an admin token
# and a host's agent token, and fails on any failure it finds.
#
#   scripts/schemathesis/run.sh [sqlite|postgres] [--seed N|random] [--max-time S]
#
# postgres uses $DATABASE_URL (a throwaway database is created in it and
# dropped again). fipd is $FIPD_BIN, else target/debug/fipd. schemathesis
# comes from PyPI into a virtualenv under ~/.cache/fipd-schemathesis.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

backend="${1:-sqlite}"; shift || true
seed=1
max_time=60
while [ $# -gt 0 ]; do
    case "$1" in
        --seed) seed="$2"; shift 2 ;;
        --max-time) max_time="$2"; shift 2 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
case "$backend" in sqlite|postgres) ;; *) echo "backend must be sqlite or postgres, not $backend" >&2; exit 2 ;; esac

log() { printf '==> schemathesis: %s\n' "$*" >&2; }

version=4.32.5
venv="${FIPD_ST_VENV:-$HOME/.cache/fipd-schemathesis/$version}"
if ! "$venv/bin/schemathesis" --version >/dev/null 2>&1; then
    log "installing schemathesis $version into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$version"
fi

fipd="${FIPD_BIN:-$root/target/debug/fipd}"
[ -x "$fipd" ] || { echo "no fipd at $fipd; run cargo build -p fipd" >&2; exit 2; }

work="$(mktemp -d "${TMPDIR:-/tmp}/fipd-st.XXXXXX")"
pid=""
db=""
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    if [ -n "$db" ]; then psql_run "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

psql_run() {
    local psql
    psql="$(command -v psql || ls /usr/lib/postgresql/*/bin/psql 2>/dev/null | sort -V | tail -n1)"
    "$psql" -q -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "$1"
}

database_url=""
if [ "$backend" = postgres ]; then
    : "${DATABASE_URL:?postgres needs DATABASE_URL}"
    db="fipd_st_$$"
    psql_run "CREATE DATABASE $db" >/dev/null
    database_url="${DATABASE_URL%/*}/$db"
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
admin="st-admin-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
args=(serve --listen "127.0.0.1:$port" --data-dir "$work/data" --admin-token "$admin")
[ -n "$database_url" ] && args+=(--database-url "$database_url")
FIPD_LOG=warn "$fipd" "${args[@]}" >"$work/fipd.log" 2>&1 &
pid=$!
url="http://127.0.0.1:$port"
# Waits for readiness, then creates a host for the agent token, which the
# agent operations act as (python3 rather than curl: one tool less).
agent=$(FIPD_ST_URL="$url" FIPD_ST_ADMIN="$admin" FIPD_PID="$pid" python3 - <<'PY'
import json, os, sys, time, urllib.request
url, admin, pid = os.environ["FIPD_ST_URL"], os.environ["FIPD_ST_ADMIN"], int(os.environ["FIPD_PID"])
for _ in range(200):
    try:
        urllib.request.urlopen(url + "/readyz", timeout=1)
        break
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            sys.exit("fipd exited")
        time.sleep(0.1)
else:
    sys.exit("fipd did not become ready")
req = urllib.request.Request(url + "/v1/hosts", data=json.dumps({"name": "st-host-1"}).encode(),
    headers={"Authorization": "Bearer " + admin, "Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(req, timeout=10))["token"])
PY
) || { cat "$work/fipd.log" >&2; exit 1; }

log "fipd on $backend at $url, seed $seed, $max_time s"
seed_args=(--seed "$seed")
[ "$seed" = random ] && seed_args=()
status=0
# From the scratch directory: schemathesis keeps a cache where it runs. One
# worker: with two, Python 3.11's ast module failed in hypothesis
# ("AST constructor recursion depth mismatch"), a tool error, not fipd's.
(cd "$work" && FIPD_ST_URL="$url" FIPD_ST_ADMIN_TOKEN="$admin" FIPD_ST_AGENT_TOKEN="$agent" \
    "$venv/bin/schemathesis" --config-file "$here/schemathesis.toml" --no-color \
    run "$url/openapi.json" "${seed_args[@]}" --max-time "$max_time" \
    --workers 1 </dev/null) | tee "$work/report.txt" || status=$?
if [ "$status" -ne 0 ]; then
    log "FAILED on $backend (fipd log follows)"
    tail -n 50 "$work/fipd.log" >&2
fi
exit "$status"
