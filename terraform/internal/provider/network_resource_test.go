package provider

import (
	"context"
	"fmt"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/oapi-codegen/nullable"

	"github.com/fipd/terraform-provider-fipd/internal/fipdapi"
)

func networkConfig(s *fipdServer, name, desc string) string {
	return networkOnlyConfig(s, name, desc) + `
data "fipd_network" "by_name" {
  name = fipd_network.n.name
}
`
}

func networkOnlyConfig(s *fipdServer, name, desc string) string {
	return s.providerConfig() + fmt.Sprintf(`
resource "fipd_network" "n" {
  name        = %q
  description = %q
}
`, name, desc)
}

// Create, update in place, import, drift, deletion outside Terraform, and
// the data source by name.
func TestAccNetwork(t *testing.T) {
	accPreCheck(t)
	s := startFipd(t)
	ctx := context.Background()
	var id string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy: func(*terraform.State) error {
			if _, err := s.api.GetNetwork(ctx, id); !fipdapi.IsNotFound(err) {
				return fmt.Errorf("network %s still exists after destroy (err %v)", id, err)
			}
			return nil
		},
		Steps: []resource.TestStep{
			{
				// Plan-time validation of names.
				Config:      networkConfig(s, "bad\nname", ""),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`may only contain printable characters`),
			},
			{
				Config: networkConfig(s, "link-1", "first"),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("fipd_network.n", "name", "link-1"),
					resource.TestCheckResourceAttr("fipd_network.n", "description", "first"),
					resource.TestMatchResourceAttr("fipd_network.n", "id", regexp.MustCompile(`^[0-9a-f-]{36}$`)),
					resource.TestCheckResourceAttrSet("fipd_network.n", "created_at"),
					resource.TestCheckResourceAttrPair("data.fipd_network.by_name", "id", "fipd_network.n", "id"),
					resource.TestCheckResourceAttr("data.fipd_network.by_name", "description", "first"),
					func(st *terraform.State) (err error) {
						id, err = stateAttr(st, "fipd_network.n", "id")
						return err
					},
				),
			},
			{
				// Renaming is an update in place, not a replacement.
				Config: networkConfig(s, "link-2", "second"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("fipd_network.n", plancheck.ResourceActionUpdate),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("fipd_network.n", "name", "link-2"),
					resource.TestCheckResourceAttr("fipd_network.n", "description", "second"),
					resource.TestCheckResourceAttrPtr("fipd_network.n", "id", &id),
				),
			},
			{
				ResourceName:      "fipd_network.n",
				ImportState:       true,
				ImportStateVerify: true,
			},
			{
				// A change made through the API shows as drift.
				PreConfig: func() {
					if _, err := s.api.UpdateNetwork(ctx, id, fipdapi.NetworkUpdate{Description: nullable.NewNullableWithValue("changed by hand")}); err != nil {
						t.Fatal(err)
					}
				},
				Config:             networkConfig(s, "link-2", "second"),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{
				// Applying puts it back.
				Config: networkConfig(s, "link-2", "second"),
				Check:  resource.TestCheckResourceAttr("fipd_network.n", "description", "second"),
			},
			{
				// Deleted outside Terraform: removed from the state, planned again.
				PreConfig: func() {
					if err := s.api.DeleteNetwork(ctx, id); err != nil {
						t.Fatal(err)
					}
				},
				Config:             networkOnlyConfig(s, "link-2", "second"),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{
				Config: networkConfig(s, "link-2", "second"),
				Check: func(st *terraform.State) error {
					newID, err := stateAttr(st, "fipd_network.n", "id")
					if err == nil && newID == id {
						return fmt.Errorf("expected a new network, got the old ID %s", id)
					}
					id = newID
					return err
				},
			},
		},
	})
}
