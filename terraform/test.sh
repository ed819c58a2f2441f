#!/usr/bin/env bash
# Tests the fipd Terraform provider, from any working directory, with no
# input (CI=true is fine):
#   - installs the OpenTofu CLI when missing (scripts/install-cli.sh, cached);
#   - gofmt, go vet, go mod tidy -diff of both modules;
#   - checks that generated files (API models, docs/, examples formatting)
#     are current, by regenerating them in a temporary copy;
#   - builds the provider;
#   - runs the unit tests and the acceptance tests (TF_ACC=1) against the
#     fipd binary (FIPD_BIN, else target/debug/fipd, built if missing) and
#     the real CLI.
# Environment: FIPD_BIN, FIPD_TF_CLI (a terraform/tofu binary to use instead
# of the built OpenTofu), FIPD_TF_CACHE (where the CLI is cached),
# FIPD_TEST_RUN (a go test -run pattern).
set -euo pipefail

started=$(date +%s)
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
cd "$here"

step() { printf '\n== terraform/test.sh: %s\n' "$*"; }
fail() { printf 'terraform/test.sh: FAILED: %s\n' "$*" >&2; exit 1; }

tmp="$(mktemp -d "${TMPDIR:-/tmp}/fipd-tf-test.XXXXXX")"
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1
# The machine's own CLI config (if any) must not change the tests.
: >"$tmp/empty.tfrc"
export TF_CLI_CONFIG_FILE="$tmp/empty.tfrc"

step "Terraform CLI"
cli="${FIPD_TF_CLI:-$(scripts/install-cli.sh)}"
[[ -x "$cli" ]] || fail "no CLI at $cli"
"$cli" version | head -n1

step "gofmt, go vet, go mod tidy"
unformatted="$(gofmt -l . )"
[[ -z "$unformatted" ]] || fail "gofmt wants to change: $unformatted"
go vet ./...
(cd tools && go vet ./...)
go mod tidy -diff || fail "go.mod/go.sum are not tidy: run go mod tidy"
(cd tools && go mod tidy -diff) || fail "tools/go.mod is not tidy: run (cd tools && go mod tidy)"

step "generated files are current"
# Regenerate in a copy, so a stale tree is reported, not silently changed.
mkdir -p "$tmp/copy/terraform" "$tmp/copy/openapi"
cp "$repo/openapi/fipd.json" "$tmp/copy/openapi/"
tar -C "$here" --exclude=./.bin --exclude=.terraform -cf - . | tar -C "$tmp/copy/terraform" -xf -
FIPD_TF_CLI="$cli" bash "$tmp/copy/terraform/generate.sh"
stale=0
for p in docs examples; do
    diff -ru "$here/$p" "$tmp/copy/terraform/$p" || stale=1
done
[[ $stale == 0 ]] || fail "docs/ or examples/ are stale (the provider's schema or examples changed): run terraform/generate.sh and commit the result"
# The API models follow openapi/fipd.json, which the API's authors change.
# Additive changes do not break the provider (the contract test in
# internal/fipdapi fails on those that do), so a stale model is a warning.
for p in internal/fipdapi/models.gen.go internal/fipdapi/constraints.gen.go; do
    if ! cmp -s "$here/$p" "$tmp/copy/terraform/$p"; then
        echo "WARNING: terraform/$p is older than openapi/fipd.json; run terraform/generate.sh and commit it:"
        diff -u "$here/$p" "$tmp/copy/terraform/$p" | grep -E '^[-+][^-+]' | head -n 20 || true
    fi
done

step "fipd binary"
fipd="${FIPD_BIN:-$repo/target/debug/fipd}"
if [[ ! -x "$fipd" ]]; then
    [[ -z "${FIPD_BIN:-}" ]] || fail "FIPD_BIN=$FIPD_BIN is not an executable"
    # The Rust workspace may be mid-edit: a failed build is retried.
    for attempt in 1 2 3; do
        if (cd "$repo" && cargo build -q -p fipd); then break; fi
        [[ $attempt == 3 ]] && fail "cargo build -p fipd failed 3 times"
        echo "cargo build -p fipd failed (attempt $attempt); retrying in 30 s" >&2
        sleep 30
    done
fi
echo "$fipd"

step "build the provider"
go build -o "$tmp/terraform-provider-fipd" .

step "unit and acceptance tests"
accstart=$(date +%s)
set +e
TF_ACC=1 TF_ACC_TERRAFORM_PATH="$cli" FIPD_BIN="$fipd" \
    TF_ACC_PROVIDER_HOST="${TF_ACC_PROVIDER_HOST:-$([[ $(basename "$cli") == tofu* ]] && echo registry.opentofu.org || echo registry.terraform.io)}" \
    TF_ACC_PROVIDER_NAMESPACE="${TF_ACC_PROVIDER_NAMESPACE:-hashicorp}" \
    go test -count=1 -timeout 15m -v -run "${FIPD_TEST_RUN:-.}" ./... >"$tmp/go-test.log" 2>&1
rc=$?
set -e
grep -E '^(--- (PASS|FAIL|SKIP)|ok |FAIL|panic:|\s+\S+_test\.go:[0-9]+:)' "$tmp/go-test.log" || true
if [[ $rc != 0 ]]; then
    echo "--- full go test output (last 200 lines):"
    tail -n 200 "$tmp/go-test.log"
    fail "go test exited $rc"
fi
passed=$(grep -c -- '^--- PASS' "$tmp/go-test.log" || true)
skipped=$(grep -c -- '^--- SKIP' "$tmp/go-test.log" || true)

echo
echo "CLI: $("$cli" version | head -n1) ($cli)"
echo "tests: $(( $(date +%s) - accstart ))s; terraform/test.sh: $(( $(date +%s) - started ))s in all"
echo "terraform: $passed passed, 0 failed, $skipped skipped"
