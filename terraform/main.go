// terraform-provider-fipd is the Terraform (and OpenTofu) provider for fipd,
// the floating IPv6 control plane.
package main

import (
	"context"
	"flag"
	"log"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"

	"github.com/fipd/terraform-provider-fipd/internal/provider"
)

// Regenerates the API models from ../openapi/fipd.json and the docs from the
// schema and examples/ (see tools/tools.go and README.md).
//go:generate bash ./generate.sh

// version is set at release time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	var debug bool
	flag.BoolVar(&debug, "debug", false, "start the provider for a debugger (prints TF_REATTACH_PROVIDERS)")
	flag.Parse()

	err := providerserver.Serve(context.Background(), provider.New(version), providerserver.ServeOpts{
		Address: "registry.terraform.io/fipd/fipd",
		Debug:   debug,
	})
	if err != nil {
		log.Fatal(err.Error())
	}
}
