#!/usr/bin/env bash
# The whole test suite, on a fresh machine: formatting, lints, and every test
# (API on SQLite and PostgreSQL, agent in real network namespaces).
#
# PostgreSQL: $DATABASE_URL if set, else a server on 127.0.0.1:5432 if one
# answers, else a throwaway cluster started from the system's binaries
# (installing Debian's postgresql package when root and missing), stopped
# again on exit. iproute2 is installed when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

apt_install() {
    if [ "$(id -u)" -ne 0 ]; then
        log "missing $*; install it (needs root)"; return 1
    fi
    log "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

command -v ip >/dev/null || apt_install iproute2

pg_answers() { # host port
    timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

pg_tmp=""
cleanup() {
    if [ -n "$pg_tmp" ]; then
        log "stopping throwaway PostgreSQL"
        su postgres -s /bin/sh -c "'$pg_bin/pg_ctl' -D '$pg_tmp/data' -m immediate stop" >/dev/null 2>&1 || true
        rm -rf "$pg_tmp"
    fi
}
trap cleanup EXIT

if [ -z "${DATABASE_URL:-}" ]; then
    if pg_answers 127.0.0.1 5432; then
        export DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres"
    else
        pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
        if [ -z "$pg_bin" ]; then
            apt_install postgresql
            pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
        fi
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        pg_tmp=$(mktemp -d /tmp/fipd-pg.XXXXXX)
        chown postgres "$pg_tmp"
        port=55432
        log "starting throwaway PostgreSQL on 127.0.0.1:$port"
        su postgres -s /bin/sh -c "'$pg_bin/initdb' -D '$pg_tmp/data' -U postgres --auth=trust >/dev/null"
        su postgres -s /bin/sh -c "'$pg_bin/pg_ctl' -D '$pg_tmp/data' -w -l '$pg_tmp/log' \
            -o '-c listen_addresses=127.0.0.1 -p $port -k $pg_tmp -c max_connections=300 -c fsync=off' start >/dev/null"
        export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
    fi
fi
log "PostgreSQL for tests: $DATABASE_URL"

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

log "tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
else
    cargo test --workspace --no-fail-fast
fi

# Benchmarks in quick mode: a few iterations, so the benchmark code cannot
# rot. Figures from this run mean nothing; full runs are in the README.
log "benchmarks (quick mode)"
cargo run -q -p fip-bench -- api --quick
if [ "$(id -u)" -eq 0 ]; then cargo build -q -p fipd -p fip-agent && cargo run -q -p fip-bench -- netns --quick; else log "fip-bench netns --quick skipped: it needs root"; fi
