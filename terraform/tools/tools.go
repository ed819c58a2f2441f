//go:build generate

// Package tools pins the code and documentation generators in a module of
// their own, so that their dependencies never enter the provider's build.
// ../generate.sh runs them (`go generate ./...` in ..).
package tools

import (
	_ "github.com/hashicorp/terraform-plugin-docs/cmd/tfplugindocs"
	_ "github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen"
)
