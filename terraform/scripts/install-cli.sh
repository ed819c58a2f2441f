#!/usr/bin/env bash
# Installs the OpenTofu CLI used by the acceptance tests and by docs
# generation, and prints its path on stdout (progress goes to stderr).
#
# No binary is downloaded: the source of github.com/opentofu/opentofu comes
# from the Go module proxy and is built here. `go install module@version`
# refuses it (its go.mod has a replace directive), so the module is
# downloaded with `go mod download` and built inside a writable copy.
#
# The result is cached in $FIPD_TF_CACHE (default ~/.cache/fipd-terraform);
# a warm call only checks the cached binary answers `version`.
set -euo pipefail

TOFU_VERSION="${FIPD_TOFU_VERSION:-1.12.6}"
CACHE="${FIPD_TF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fipd-terraform}"
DEST="$CACHE/opentofu-$TOFU_VERSION"
BIN="$DEST/tofu"

log() { printf 'install-cli: %s\n' "$*" >&2; }

works() {
    [[ -x "$BIN" ]] && TF_CLI_CONFIG_FILE=/dev/null "$BIN" version 2>/dev/null | grep -q "^OpenTofu v$TOFU_VERSION\$"
}

if works; then
    echo "$BIN"
    exit 0
fi

command -v go >/dev/null || { log "go is not on PATH (Go >= 1.26 is needed to build OpenTofu)"; exit 1; }
mkdir -p "$DEST"
# One build at a time per cache (two test runs starting together).
exec 9>"$DEST/.lock"
if command -v flock >/dev/null; then
    flock -w 1200 9 || { log "timed out waiting for another build of OpenTofu"; exit 1; }
fi
if works; then
    echo "$BIN"
    exit 0
fi

start=$(date +%s)
log "building OpenTofu v$TOFU_VERSION from the Go module proxy (a few minutes on 2 cores; cached in $DEST)"
dir=$(go mod download -json "github.com/opentofu/opentofu@v$TOFU_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[[ -n "$dir" && -d "$dir" ]] || { log "go mod download did not give a source directory"; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/fipd-tofu-src.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cp -R "$dir/." "$work/"
chmod -R u+w "$work"
(
    cd "$work"
    # GOFLAGS from the caller (e.g. -mod=vendor) must not leak into this build;
    # -p bounds parallel compiles on small machines.
    GOFLAGS="-buildvcs=false -mod=readonly -p=${FIPD_TOFU_BUILD_JOBS:-2}" GOTOOLCHAIN=local CGO_ENABLED=0 \
        go build -trimpath \
        -ldflags "-s -w -X github.com/opentofu/opentofu/version.dev=no" \
        -o "$BIN.tmp" ./cmd/tofu
)
mv -f "$BIN.tmp" "$BIN"
works || { log "the built binary does not report OpenTofu v$TOFU_VERSION"; exit 1; }
log "built $BIN in $(( $(date +%s) - start ))s"
echo "$BIN"
