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
	"github.com/oapi-codegen/nullable"

	"github.com/fipd/terraform-provider-fipd/internal/fipdapi"
)

// apiChange is a plan check that changes fipd behind Terraform's back
// between plan and apply: the apply then works from a stale revision.
type apiChange func() error

func (f apiChange) CheckPlan(_ context.Context, _ plancheck.CheckPlanRequest, resp *plancheck.CheckPlanResponse) {
	resp.Error = f()
}

// worldConfig is a network with a pool and two hosts.
func worldConfig(s *fipdServer) string {
	return s.providerConfig() + `
resource "fipd_network" "n" {
  name = "link-1"
}

resource "fipd_pool" "p" {
  network_id = fipd_network.n.id
  cidr       = "2001:db8:7::/64"
}

resource "fipd_host" "a" {
  name = "host-a"
}

resource "fipd_host" "b" {
  name = "host-b"
}
`
}

type fipCase struct {
	i1Host      string // host of instance vm-1
	instance    string // "i1", "i2" or "" (not associated)
	standbys    []string
	description string
	noData      bool // leave out the data sources (they fail on a missing floating IP)
}

func fipConfig(s *fipdServer, c fipCase) string {
	var b strings.Builder
	b.WriteString(worldConfig(s))
	fmt.Fprintf(&b, `
resource "fipd_instance" "i1" {
  name       = "vm-1"
  host       = fipd_host.%s.name
  project_id = "demo"
}

resource "fipd_instance" "i2" {
  name       = "vm-2"
  host       = fipd_host.b.name
  project_id = "demo"
}

resource "fipd_floating_ip" "f" {
  pool_id     = fipd_pool.p.id
  project_id  = "demo"
  description = %q
`, c.i1Host, c.description)
	if c.instance != "" {
		fmt.Fprintf(&b, "  instance_id = fipd_instance.%s.id\n", c.instance)
	}
	if len(c.standbys) > 0 {
		refs := make([]string, len(c.standbys))
		for i, sb := range c.standbys {
			refs[i] = "fipd_instance." + sb + ".id"
		}
		fmt.Fprintf(&b, "  standby_instance_ids = [%s]\n", strings.Join(refs, ", "))
	}
	b.WriteString(`
  timeouts {
    create = "1m"
    update = "1m"
  }
}
`)
	if c.noData {
		return b.String()
	}
	b.WriteString(`
data "fipd_floating_ip" "by_address" {
  address = fipd_floating_ip.f.address
}

data "fipd_floating_ips" "active_on_b" {
  host       = "host-b"
  status     = "ACTIVE"
  depends_on = [fipd_floating_ip.f]
}
`)
	return b.String()
}

// startAgents is a check that starts a fake agent for each host, with the
// host's token from the state.
func startAgents(t *testing.T, s *fipdServer, mode agentMode, hosts ...string) resource.TestCheckFunc {
	return func(st *terraform.State) error {
		for _, h := range hosts {
			token, err := stateAttr(st, "fipd_host."+h, "token")
			if err != nil {
				return err
			}
			if err := startFakeAgent(t, s, token, "link-1", mode); err != nil {
				return err
			}
		}
		return nil
	}
}

// The whole life of a floating IP with agents that apply what they are
// given: create associated with a standby (waits for ACTIVE), migrate its
// instance while changing the floating IP (in place, one apply),
// disassociate (waits for DOWN), associate again, import, drift, a
// concurrent change between plan and apply (412), deletion outside
// Terraform, destroy (the addresses are released).
func TestAccFloatingIP(t *testing.T) {
	accPreCheck(t)
	s := startFipd(t)
	ctx := context.Background()
	var fipID, i1, i2 string
	ids := func(st *terraform.State) (err error) {
		if fipID, err = stateAttr(st, "fipd_floating_ip.f", "id"); err != nil {
			return err
		}
		if i1, err = stateAttr(st, "fipd_instance.i1", "id"); err != nil {
			return err
		}
		i2, err = stateAttr(st, "fipd_instance.i2", "id")
		return err
	}
	f := "fipd_floating_ip.f"
	start := fipCase{i1Host: "a", instance: "i1", standbys: []string{"i2"}, description: "web"}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy: func(*terraform.State) error {
			left, err := s.api.ListFloatingIPs(ctx, fipdapi.FloatingIPFilter{})
			if err != nil {
				return err
			}
			if len(left) > 0 {
				return fmt.Errorf("%d floating IPs left after destroy", len(left))
			}
			pools, err := s.api.ListPools(ctx, "")
			if err == nil && len(pools) > 0 {
				return fmt.Errorf("%d pools left after destroy: the addresses were not released", len(pools))
			}
			return err
		},
		Steps: []resource.TestStep{
			{
				Config: worldConfig(s),
				Check:  startAgents(t, s, agentActive, "a", "b"),
			},
			{
				Config: fipConfig(s, start),
				Check: resource.ComposeAggregateTestCheckFunc(
					ids,
					resource.TestCheckResourceAttr(f, "status", "ACTIVE"),
					resource.TestCheckResourceAttr(f, "host", "host-a"),
					resource.TestCheckNoResourceAttr(f, "status_detail"),
					resource.TestCheckResourceAttrPair(f, "instance_id", "fipd_instance.i1", "id"),
					resource.TestCheckResourceAttrPair(f, "standby_instance_ids.0", "fipd_instance.i2", "id"),
					resource.TestCheckResourceAttrPair(f, "network_id", "fipd_network.n", "id"),
					resource.TestCheckResourceAttr(f, "revision", "2"), // allocated, then standbys set
					resource.TestMatchResourceAttr(f, "address", regexp.MustCompile(`^2001:db8:7:0:`)),
					resource.TestCheckResourceAttrPair("data.fipd_floating_ip.by_address", "id", f, "id"),
					resource.TestCheckResourceAttr("data.fipd_floating_ip.by_address", "status", "ACTIVE"),
					resource.TestCheckResourceAttr("data.fipd_floating_ips.active_on_b", "floating_ips.#", "0"),
				),
			},
			{
				// A migration is an update in place; in the same apply the
				// floating IP's description changes, after the migration has
				// bumped its revision.
				Config: fipConfig(s, fipCase{i1Host: "b", instance: "i1", standbys: []string{"i2"}, description: "web 2"}),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("fipd_instance.i1", plancheck.ResourceActionUpdate),
					plancheck.ExpectResourceAction(f, plancheck.ResourceActionUpdate),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("fipd_instance.i1", "host", "host-b"),
					resource.TestCheckResourceAttrPtr("fipd_instance.i1", "id", &i1),
					resource.TestCheckResourceAttrPtr(f, "id", &fipID),
					resource.TestCheckResourceAttr(f, "host", "host-b"),
					resource.TestCheckResourceAttr(f, "status", "ACTIVE"),
					resource.TestCheckResourceAttr(f, "description", "web 2"),
					resource.TestCheckResourceAttr(f, "revision", "4"), // migration, description
					resource.TestCheckResourceAttr("data.fipd_floating_ips.active_on_b", "floating_ips.#", "1"),
					resource.TestCheckResourceAttrPair("data.fipd_floating_ips.active_on_b", "floating_ips.0.id", f, "id"),
				),
			},
			{
				// Disassociated: waits for DOWN.
				Config: fipConfig(s, fipCase{i1Host: "b", description: "web 2"}),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(f, "status", "DOWN"),
					resource.TestCheckNoResourceAttr(f, "instance_id"),
					resource.TestCheckNoResourceAttr(f, "host"),
					resource.TestCheckResourceAttr(f, "standby_instance_ids.#", "0"),
					resource.TestCheckResourceAttrPtr(f, "id", &fipID),
				),
			},
			{
				// Associated again, with the other instance.
				Config: fipConfig(s, fipCase{i1Host: "b", instance: "i2", standbys: []string{"i1"}, description: "web 2"}),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(f, "status", "ACTIVE"),
					resource.TestCheckResourceAttrPair(f, "instance_id", "fipd_instance.i2", "id"),
					resource.TestCheckResourceAttrPair(f, "standby_instance_ids.0", "fipd_instance.i1", "id"),
				),
			},
			{
				ResourceName:            f,
				ImportState:             true,
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"timeouts"},
			},
			{
				ResourceName:            "fipd_instance.i2",
				ImportState:             true,
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"timeouts"},
			},
			{
				// A change through the API shows as drift...
				PreConfig: func() {
					if _, err := s.api.UpdateFloatingIP(ctx, fipID, -1, fipdapi.FloatingIpUpdate{
						Description: nullable.NewNullableWithValue("changed by hand"),
					}); err != nil {
						t.Fatal(err)
					}
				},
				Config:             fipConfig(s, fipCase{i1Host: "b", instance: "i2", standbys: []string{"i1"}, description: "web 2"}),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{
				// ...that the next apply reverts.
				Config: fipConfig(s, fipCase{i1Host: "b", instance: "i2", standbys: []string{"i1"}, description: "web 2"}),
				Check:  resource.TestCheckResourceAttr(f, "description", "web 2"),
			},
			{
				// A change between plan and apply: fipd refuses the stale
				// If-Match with 412 and the user is told to refresh.
				Config: fipConfig(s, fipCase{i1Host: "b", instance: "i2", standbys: []string{"i1"}, description: "web 3"}),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					apiChange(func() error {
						_, err := s.api.UpdateFloatingIP(ctx, fipID, -1, fipdapi.FloatingIpUpdate{
							Description: nullable.NewNullableWithValue("concurrent"),
						})
						return err
					}),
				}},
				ExpectError: regexp.MustCompile(`(?s)revision_mismatch.*` + words("terraform apply -refresh-only")),
			},
			{
				// After a refresh the same change goes through.
				Config: fipConfig(s, fipCase{i1Host: "b", instance: "i2", standbys: []string{"i1"}, description: "web 3"}),
				Check:  resource.TestCheckResourceAttr(f, "description", "web 3"),
			},
			{
				// Released outside Terraform: planned for re-creation.
				PreConfig: func() {
					if err := s.api.DeleteFloatingIP(ctx, fipID, -1); err != nil {
						t.Fatal(err)
					}
				},
				Config:             fipConfig(s, fipCase{i1Host: "b", instance: "i2", standbys: []string{"i1"}, description: "web 3", noData: true}),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{
				Config: fipConfig(s, fipCase{i1Host: "b", instance: "i2", standbys: []string{"i1"}, description: "web 3"}),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(f, "status", "ACTIVE"),
					func(st *terraform.State) error {
						id, err := stateAttr(st, f, "id")
						if err == nil && id == fipID {
							return fmt.Errorf("expected a new floating IP, got the released one %s", id)
						}
						return err
					},
				),
			},
		},
	})
	_ = i2
}

// An agent whose DAD fails: the wait ends with the ERROR status_detail,
// naming the host and the defender's MAC.
func TestAccFloatingIP_dadFailed(t *testing.T) {
	accPreCheck(t)
	s := startFipd(t)
	config := worldConfig(s) + `
resource "fipd_instance" "i" {
  name       = "vm"
  host       = fipd_host.a.name
  project_id = "demo"
}

resource "fipd_floating_ip" "f" {
  network_id  = fipd_network.n.id
  project_id  = "demo"
  instance_id = fipd_instance.i.id
}
`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		Steps: []resource.TestStep{
			{
				Config: worldConfig(s),
				Check:  startAgents(t, s, agentDADFailed, "a", "b"),
			},
			{
				Config: config,
				ExpectError: regexp.MustCompile(`(?s)is ERROR.*` + words("DAD failed on host host-a:") + `\s+2001:db8:7:\S+\s+` +
					words("is defended by "+defenderMAC)),
			},
		},
	})
}

// Allocation errors from fipd, quoted with their code: a pool with one
// allocatable address, taken explicitly, then exhausted.
func TestAccFloatingIP_poolExhausted(t *testing.T) {
	accPreCheck(t)
	s := startFipd(t)
	base := s.providerConfig() + `
resource "fipd_network" "n" {
  name = "tiny"
}

resource "fipd_pool" "p" {
  network_id = fipd_network.n.id
  cidr       = "2001:db8:9::/64"
  ranges     = [{ first = "2001:db8:9::10", last = "2001:db8:9::10" }]
}

resource "fipd_floating_ip" "one" {
  network_id = fipd_network.n.id
  project_id = "demo"
  address    = "2001:db8:9::10"
  # Allocation by network_id needs the pool to exist first.
  depends_on = [fipd_pool.p]
}
`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		Steps: []resource.TestStep{
			{
				Config:      base + `resource "fipd_floating_ip" "bad" { project_id = "demo" }`,
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)At least one of these attributes must be configured:\s+\[pool_id,network_id\]`),
			},
			{
				Config: base,
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("fipd_floating_ip.one", "address", "2001:db8:9::10"),
					resource.TestCheckResourceAttr("fipd_floating_ip.one", "status", "DOWN"),
					resource.TestCheckResourceAttrPair("fipd_floating_ip.one", "pool_id", "fipd_pool.p", "id"),
				),
			},
			{
				Config: base + `
resource "fipd_floating_ip" "two" {
  pool_id    = fipd_pool.p.id
  project_id = "demo"
}
`,
				ExpectError: regexp.MustCompile(`(?s)` + words("no free address is left") + `.*` + words("code: pool_exhausted")),
			},
			{
				Config:   base,
				PlanOnly: true,
			},
		},
	})
}

// A host whose agent never connected: nothing can apply the address, so
// the create does not wait (it warns) and the floating IP stays PENDING.
// This is what examples/full does against a fresh fipd.
func TestAccFloatingIP_hostNeverSeen(t *testing.T) {
	accPreCheck(t)
	s := startFipd(t)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		Steps: []resource.TestStep{
			{
				Config: fipConfig(s, fipCase{i1Host: "a", instance: "i1", description: "no agent"}),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("fipd_floating_ip.f", "status", "PENDING"),
					resource.TestCheckResourceAttr("fipd_floating_ip.f", "host", "host-a"),
				),
			},
		},
	})
}

// words matches a phrase in Terraform's output, which wraps long lines
// between any two words.
func words(phrase string) string {
	parts := strings.Fields(phrase)
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return strings.Join(parts, `\s+`)
}
