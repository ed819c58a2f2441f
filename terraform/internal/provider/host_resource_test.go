package provider

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/fipd/terraform-provider-fipd/internal/fipdapi"
)

func hostTokenConfig(s *fipdServer, host, project string) string {
	return s.providerConfig() + fmt.Sprintf(`
resource "fipd_host" "h" {
  name = %q
}

resource "fipd_project_token" "t" {
  project_id  = %q
  description = "ci"
}
`, host, project)
}

// Hosts and project tokens: secrets known only after create and kept
// sensitive, import without them, replacement on change, deletion outside
// Terraform.
func TestAccHostAndProjectToken(t *testing.T) {
	accPreCheck(t)
	s := startFipd(t)
	ctx := context.Background()
	var hostID, tokenID, projectToken string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy: func(*terraform.State) error {
			if _, err := s.api.GetHost(ctx, hostID); !fipdapi.IsNotFound(err) {
				return fmt.Errorf("host %s still exists after destroy (err %v)", hostID, err)
			}
			if _, err := s.api.GetToken(ctx, tokenID); !fipdapi.IsNotFound(err) {
				return fmt.Errorf("token %s still exists after destroy (err %v)", tokenID, err)
			}
			return nil
		},
		Steps: []resource.TestStep{
			{
				Config:      hostTokenConfig(s, "compute 1", "demo"),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`may only contain ASCII letters, digits`),
			},
			{
				Config: hostTokenConfig(s, "compute-1", "demo"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectUnknownValue("fipd_host.h", tfpath("token")),
					plancheck.ExpectSensitiveValue("fipd_host.h", tfpath("token")),
					plancheck.ExpectSensitiveValue("fipd_project_token.t", tfpath("token")),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("fipd_host.h", "name", "compute-1"),
					resource.TestMatchResourceAttr("fipd_host.h", "token", regexp.MustCompile(`^fiph_`)),
					resource.TestCheckResourceAttr("fipd_host.h", "state", "never_seen"),
					resource.TestMatchResourceAttr("fipd_project_token.t", "token", regexp.MustCompile(`^fipp_`)),
					resource.TestCheckResourceAttr("fipd_project_token.t", "project_id", "demo"),
					func(st *terraform.State) (err error) {
						if hostID, err = stateAttr(st, "fipd_host.h", "id"); err != nil {
							return err
						}
						if tokenID, err = stateAttr(st, "fipd_project_token.t", "id"); err != nil {
							return err
						}
						projectToken, err = stateAttr(st, "fipd_project_token.t", "token")
						return err
					},
					func(*terraform.State) error {
						// The token works, as a project token: it reads but may not create networks.
						c, err := fipdapi.New(s.URL, projectToken, "acctest")
						if err != nil {
							return err
						}
						if _, err := c.ListFloatingIPs(ctx, fipdapi.FloatingIPFilter{}); err != nil {
							return fmt.Errorf("the project token cannot list floating IPs: %w", err)
						}
						if _, err := c.CreateNetwork(ctx, fipdapi.NetworkCreate{Name: "nope"}); fipdapi.StatusOf(err) != 403 {
							return fmt.Errorf("a project token created a network (err %v)", err)
						}
						return nil
					},
				),
			},
			{
				// The secrets are shown once: an import cannot know them.
				ResourceName:            "fipd_host.h",
				ImportState:             true,
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"token", "timeouts"},
			},
			{
				ResourceName:            "fipd_project_token.t",
				ImportState:             true,
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"token"},
			},
			{
				// fipd cannot rename a host or change a token: both are replaced.
				Config: hostTokenConfig(s, "compute-2", "other"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("fipd_host.h", plancheck.ResourceActionReplace),
					plancheck.ExpectResourceAction("fipd_project_token.t", plancheck.ResourceActionReplace),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("fipd_host.h", "name", "compute-2"),
					func(st *terraform.State) error {
						old := hostID
						var err error
						if hostID, err = stateAttr(st, "fipd_host.h", "id"); err != nil {
							return err
						}
						if _, err := s.api.GetHost(ctx, old); !fipdapi.IsNotFound(err) {
							return fmt.Errorf("the replaced host %s still exists", old)
						}
						oldTok := tokenID
						if tokenID, err = stateAttr(st, "fipd_project_token.t", "id"); err != nil {
							return err
						}
						if _, err := s.api.GetToken(ctx, oldTok); !fipdapi.IsNotFound(err) {
							return fmt.Errorf("the replaced token %s still exists", oldTok)
						}
						return nil
					},
				),
			},
			{
				// Only the timeouts change: an update that touches nothing in fipd.
				Config: strings.Replace(hostTokenConfig(s, "compute-2", "other"), `name = "compute-2"`,
					`name = "compute-2"
  timeouts {
    delete = "1m"
  }`, 1),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("fipd_host.h", plancheck.ResourceActionUpdate),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("fipd_host.h", "timeouts.delete", "1m"),
					resource.TestCheckResourceAttrPtr("fipd_host.h", "id", &hostID),
					resource.TestMatchResourceAttr("fipd_host.h", "token", regexp.MustCompile(`^fiph_`)),
				),
			},
			{
				// Deleted outside Terraform: planned again.
				PreConfig: func() {
					if err := s.api.DeleteHost(ctx, hostID); err != nil {
						t.Fatal(err)
					}
					if err := s.api.DeleteToken(ctx, tokenID); err != nil {
						t.Fatal(err)
					}
				},
				Config:             hostTokenConfig(s, "compute-2", "other"),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{
				Config: hostTokenConfig(s, "compute-2", "other"),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestMatchResourceAttr("fipd_host.h", "token", regexp.MustCompile(`^fiph_`)),
					func(st *terraform.State) (err error) {
						if hostID, err = stateAttr(st, "fipd_host.h", "id"); err != nil {
							return err
						}
						tokenID, err = stateAttr(st, "fipd_project_token.t", "id")
						return err
					},
				),
			},
		},
	})
}
