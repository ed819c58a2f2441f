#!/usr/bin/env bash
# Builds the provider into terraform/.bin and writes a CLI config whose
# dev_overrides point `fipd/fipd` there; prints the export to use it:
#   eval "$(terraform/scripts/dev-override.sh)"
# With dev_overrides, Terraform and OpenTofu use the local build and need no
# `init` for it (they print a warning saying so).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$here/.bin"
(cd "$here" && go build -o .bin/terraform-provider-fipd .)
cat >"$here/.bin/dev.tfrc" <<TFRC
provider_installation {
  dev_overrides {
    "fipd/fipd" = "$here/.bin"
  }
  direct {}
}
TFRC
echo "export TF_CLI_CONFIG_FILE=$here/.bin/dev.tfrc"
