package provider

import (
	"context"
	"fmt"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/oapi-codegen/nullable"

	"github.com/fipd/terraform-provider-fipd/internal/fipdapi"
)

// With a project token the provider manages the project's instances and
// floating IPs (project_id implied), reads networks and pools, still waits
// for ACTIVE (it cannot read hosts), and is refused admin-only objects
// with a hint.
func TestAccProjectTokenScope(t *testing.T) {
	accPreCheck(t)
	s := startFipd(t)
	ctx := context.Background()
	// What an operator set up with the admin token.
	n, err := s.api.CreateNetwork(ctx, fipdapi.NetworkCreate{Name: "shared"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.api.CreatePool(ctx, fipdapi.PoolCreate{NetworkId: n.Id, Cidr: "2001:db8:42::/64"}); err != nil {
		t.Fatal(err)
	}
	h, err := s.api.CreateHost(ctx, fipdapi.HostCreate{Name: "compute-9"})
	if err != nil {
		t.Fatal(err)
	}
	if err := startFakeAgent(t, s, h.Token, "shared", agentActive); err != nil {
		t.Fatal(err)
	}
	tok, err := s.api.CreateToken(ctx, fipdapi.TokenCreate{ProjectId: "team-x", Description: nullable.NewNullableWithValue("tf")})
	if err != nil {
		t.Fatal(err)
	}
	provider := fmt.Sprintf("provider \"fipd\" {\n  endpoint = %q\n  token    = %q\n}\n", s.URL, tok.Token)
	config := provider + `
data "fipd_network" "shared" {
  name = "shared"
}

data "fipd_pool" "p" {
  cidr = "2001:db8:42::/64"
}

resource "fipd_instance" "vm" {
  name = "vm"
  host = "compute-9"
}

resource "fipd_floating_ip" "f" {
  network_id  = data.fipd_network.shared.id
  instance_id = fipd_instance.vm.id
}
`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		Steps: []resource.TestStep{
			{
				Config: config,
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("fipd_instance.vm", "project_id", "team-x"),
					resource.TestCheckResourceAttr("fipd_floating_ip.f", "project_id", "team-x"),
					resource.TestCheckResourceAttr("fipd_floating_ip.f", "status", "ACTIVE"),
					resource.TestCheckResourceAttrPair("fipd_floating_ip.f", "pool_id", "data.fipd_pool.p", "id"),
					resource.TestCheckResourceAttr("data.fipd_pool.p", "allocated", "0"),
				),
			},
			{
				Config:      config + "\nresource \"fipd_network\" \"mine\" {\n  name = \"mine\"\n}\n",
				ExpectError: regexp.MustCompile(`(?s)code: forbidden.*` + words("needs the admin token")),
			},
		},
	})
}
