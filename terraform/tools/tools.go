//go:build generate

// Package tools pins the code and documentation generators in a module of
// their own, so that their dependencies never enter the provider's build.
// Run `go generate ./...` in this directory (or ../generate.sh).
package tools

import (
	_ "github.com/hashicorp/terraform-plugin-docs/cmd/tfplugindocs"
	_ "github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen"
)

// The API models, from the OpenAPI document fipd serves.
//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen -config oapi-codegen.yaml ../../openapi/fipd.json

// The documentation, from the provider's schema and ../examples.
//go:generate bash ../scripts/gendocs.sh
