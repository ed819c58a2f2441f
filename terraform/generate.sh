#!/usr/bin/env bash
# Regenerates everything derived in this module, from any working directory:
#   1. internal/fipdapi/models.gen.go (oapi-codegen) and constraints.gen.go
#      (tools/constraints) from ../openapi/fipd.json, or $FIPD_OPENAPI;
#   2. the canonical formatting of examples/ (tofu fmt);
#   3. docs/ from the provider's schema and examples/ (tfplugindocs).
# `go generate ./...` runs this. The generators are pinned in tools/go.mod,
# a module of its own, so they never enter the provider's build.
#
# tfplugindocs is given the schema (--providers-schema) instead of letting it
# find or download a Terraform CLI: the schema comes from the OpenTofu that
# scripts/install-cli.sh builds (or $FIPD_TF_CLI), through dev_overrides.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
cli="${FIPD_TF_CLI:-$(scripts/install-cli.sh)}"

openapi="$(realpath "${FIPD_OPENAPI:-../openapi/fipd.json}")"
echo "generate: API models and constraints from $openapi" >&2
(
    cd tools
    go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen -config oapi-codegen.yaml "$openapi"
    go run ./constraints "$openapi" ../internal/fipdapi/constraints.gen.go
)

echo "generate: formatting examples/" >&2
TF_CLI_CONFIG_FILE=/dev/null "$cli" fmt -recursive examples >/dev/null

echo "generate: docs/ (tfplugindocs)" >&2
tmp="$(mktemp -d "${TMPDIR:-/tmp}/fipd-docs.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/bin/terraform-provider-fipd" .
cat >"$tmp/cli.tfrc" <<TFRC
provider_installation {
  dev_overrides {
    "registry.terraform.io/hashicorp/fipd" = "$tmp/bin"
  }
  direct {}
}
TFRC
mkdir "$tmp/ws"
cat >"$tmp/ws/main.tf" <<'TF'
terraform {
  required_providers {
    fipd = { source = "registry.terraform.io/hashicorp/fipd" }
  }
}
TF
(cd "$tmp/ws" && TF_CLI_CONFIG_FILE="$tmp/cli.tfrc" "$cli" providers schema -json >"$tmp/schema.json" 2>"$tmp/schema.err") ||
    { cat "$tmp/schema.err" >&2; exit 1; }
(cd tools && go run github.com/hashicorp/terraform-plugin-docs/cmd/tfplugindocs generate \
    --provider-dir .. --provider-name fipd --rendered-provider-name fipd \
    --providers-schema "$tmp/schema.json") >"$tmp/docs.log" 2>&1 ||
    { cat "$tmp/docs.log" >&2; exit 1; }
echo "generate: done" >&2
