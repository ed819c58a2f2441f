#!/usr/bin/env bash
# The whole test suite, on a fresh machine: formatting, lints, and every test
# (API on SQLite and PostgreSQL, agent and end-to-end tests in real network
# namespaces, the fault-injection suite's quick mode, schemathesis against
# the OpenAPI document on both backends, the Terraform
# provider's acceptance tests with a real CLI, the benchmarks' quick mode).
#
# PostgreSQL: $DATABASE_URL if set, else a server on 127.0.0.1:5432 if one
# answers, else a throwaway cluster started from the system's binaries,
# stopped again on exit. Missing tools come from Debian's packages:
# iproute2, nftables (cuts with the carrier up), faketime (clock steps),
# postgresql (the server binaries; the fault suite runs its own cluster),
# python3-venv (schemathesis's virtualenv).
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

missing=()
command -v ip >/dev/null || missing+=(iproute2)
command -v nft >/dev/null || missing+=(nftables)
[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 ] || missing+=(faketime)
ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 || missing+=(postgresql)
python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi

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

# rustfmt and clippy cannot be installed on every machine (no network
# beyond the registries); when one is missing, say so plainly and go on.
if cargo fmt --version >/dev/null 2>&1; then
    log "cargo fmt --check"
    cargo fmt --all -- --check
else
    log "SKIPPED: cargo fmt is not installed on this machine (rustup component rustfmt)"
fi
if cargo clippy --version >/dev/null 2>&1; then
    log "cargo clippy"
    cargo clippy --workspace --all-targets -- -D warnings
else
    log "SKIPPED: cargo clippy is not installed on this machine (rustup component clippy)"
fi

# The namespace tests and the fault suite run the workspace's binaries.
log "cargo build --workspace"
cargo build --workspace

log "tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
else
    cargo test --workspace --no-fail-fast
fi

# The OpenAPI document against the server: schemathesis with every check,
# seed 1, a minute on each backend (docs/api.md, "Checking the document").
# It installs itself from PyPI into a virtualenv on first use.
log "schemathesis (scripts/schemathesis/run.sh) on SQLite and PostgreSQL"
FIPD_BIN="$PWD/target/debug/fipd" scripts/schemathesis/run.sh sqlite --seed 1 --max-time 60
FIPD_BIN="$PWD/target/debug/fipd" scripts/schemathesis/run.sh postgres --seed 1 --max-time 60

# The Terraform provider: gofmt, go vet, generated docs current, and the
# acceptance tests against fipd with a real OpenTofu CLI (built from the Go
# module proxy on first use, then cached).
log "Terraform provider (terraform/test.sh)"
FIPD_BIN="$PWD/target/debug/fipd" terraform/test.sh

# Benchmarks in quick mode: a few iterations, so the benchmark code cannot
# rot. Figures from this run mean nothing; full runs are in the README.
log "benchmarks (quick mode)"
cargo run -q -p fip-bench -- api --quick
cargo run -q -p fip-bench -- fleet --quick
if [ "$(id -u)" -eq 0 ]; then cargo build -q -p fipd -p fip-agent && cargo run -q -p fip-bench -- netns --quick; else log "fip-bench netns --quick skipped: it needs root"; fi
