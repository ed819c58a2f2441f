package provider

import (
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/oapi-codegen/nullable"

	"github.com/fipd/terraform-provider-fipd/internal/fipdapi"
)

func poolConfig(s *fipdServer, pool string) string {
	return s.providerConfig() + `
resource "fipd_network" "n" {
  name = "pool-test"
}
` + pool
}

// Plan-time validation of prefixes, ranges and reserved addresses; create
// with ranges and reserved addresses; import; replacement on change; the
// data source by CIDR and by ID with usage.
func TestAccPool(t *testing.T) {
	accPreCheck(t)
	s := startFipd(t)
	ctx := context.Background()
	bad := func(pool, want string) resource.TestStep {
		return resource.TestStep{
			Config:      poolConfig(s, pool),
			PlanOnly:    true,
			ExpectError: regexp.MustCompile(want),
		}
	}
	poolWith := func(cidr, rest string) string {
		return fmt.Sprintf(`
resource "fipd_pool" "p" {
  network_id = fipd_network.n.id
  cidr       = %q
%s
}
`, cidr, rest)
	}
	var id string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		CheckDestroy: func(*terraform.State) error {
			if _, err := s.api.GetPool(ctx, id); !fipdapi.IsNotFound(err) {
				return fmt.Errorf("pool %s still exists after destroy (err %v)", id, err)
			}
			return nil
		},
		Steps: []resource.TestStep{
			bad(poolWith("2001:db8::1/64", ""), `has host bits set; did you mean 2001:db8::/64\?`),
			bad(poolWith("10.0.0.0/8", ""), `IPv4 prefixes are not supported`),
			bad(poolWith("2001:db8::/128", ""), `prefix length must be between /16 and /127`),
			bad(poolWith("fe80::/64", ""), `link-local`),
			bad(poolWith("2001:DB8::/64", ""), `must be written as fipd prints it: 2001:db8::/64`),
			bad(poolWith("2001:db8::/64", `ranges = [{ first = "2001:db8:1::1", last = "2001:db8:1::2" }]`), `must lie inside the pool's cidr`),
			bad(poolWith("2001:db8::/64", `ranges = [{ first = "2001:db8::9", last = "2001:db8::1" }]`), `first must not be greater than last`),
			bad(poolWith("2001:db8::/64", `ranges = [{ first = "2001:db8::1", last = "2001:db8::9" }, { first = "2001:db8::5", last = "2001:db8::20" }]`), `overlaps`),
			bad(poolWith("2001:db8::/64", `reserved = ["2001:db9::1"]`), `must lie inside the pool's cidr`),
			bad(poolWith("2001:db8::/64", `reserved = ["2001:db8::01"]`), `canonical form`),
			{
				Config: poolConfig(s, poolWith("2001:db8:100::/64", `
  ranges      = [{ first = "2001:db8:100::10", last = "2001:db8:100::ff" }, { first = "2001:db8:100::1:0", last = "2001:db8:100::1:f" }]
  reserved    = ["2001:db8:100::10", "2001:db8:100::11"]
  description = "v1"
`)+`
data "fipd_pool" "by_cidr" {
  cidr       = fipd_pool.p.cidr
  network_id = fipd_network.n.id
  depends_on = [fipd_pool.p]
}

data "fipd_pool" "by_id" {
  id = fipd_pool.p.id
}
`),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("fipd_pool.p", "cidr", "2001:db8:100::/64"),
					resource.TestCheckResourceAttr("fipd_pool.p", "ranges.#", "2"),
					resource.TestCheckTypeSetElemNestedAttrs("fipd_pool.p", "ranges.*", map[string]string{
						"first": "2001:db8:100::1:0", "last": "2001:db8:100::1:f",
					}),
					resource.TestCheckTypeSetElemAttr("fipd_pool.p", "reserved.*", "2001:db8:100::11"),
					resource.TestCheckResourceAttrPair("fipd_pool.p", "network_id", "fipd_network.n", "id"),
					resource.TestCheckResourceAttrPair("data.fipd_pool.by_cidr", "id", "fipd_pool.p", "id"),
					resource.TestCheckResourceAttr("data.fipd_pool.by_cidr", "ranges.#", "2"),
					resource.TestCheckResourceAttr("data.fipd_pool.by_id", "cidr", "2001:db8:100::/64"),
					resource.TestCheckResourceAttr("data.fipd_pool.by_id", "allocated", "0"),
					// 240 + 16 addresses, less the two reserved.
					resource.TestCheckResourceAttr("data.fipd_pool.by_id", "capacity", "254"),
					func(st *terraform.State) (err error) {
						id, err = stateAttr(st, "fipd_pool.p", "id")
						return err
					},
				),
			},
			{
				ResourceName:            "fipd_pool.p",
				ImportState:             true,
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"timeouts"},
			},
			{
				// Without ranges the pool covers the whole prefix; fipd cannot
				// change a pool, so this replaces it.
				Config: poolConfig(s, poolWith("2001:db8:100::/64", "")),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("fipd_pool.p", plancheck.ResourceActionReplace),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("fipd_pool.p", "ranges.#", "1"),
					resource.TestCheckTypeSetElemNestedAttrs("fipd_pool.p", "ranges.*", map[string]string{
						"first": "2001:db8:100::", "last": "2001:db8:100:0:ffff:ffff:ffff:ffff",
					}),
					resource.TestCheckResourceAttr("fipd_pool.p", "reserved.#", "0"),
					resource.TestCheckResourceAttr("fipd_pool.p", "description", ""),
					func(st *terraform.State) (err error) {
						id, err = stateAttr(st, "fipd_pool.p", "id")
						return err
					},
				),
			},
			{
				// Once applied, nothing changes.
				Config:   poolConfig(s, poolWith("2001:db8:100::/64", "")),
				PlanOnly: true,
			},
			{
				// fipd's own check at apply time: overlapping pools.
				Config: poolConfig(s, poolWith("2001:db8:100::/64", "")+`
resource "fipd_pool" "overlap" {
  network_id = fipd_network.n.id
  cidr       = "2001:db8:100::/48"
}
`),
				ExpectError: regexp.MustCompile(`(?s)pool_overlap`),
			},
		},
	})
}

// A floating IP allocated by network_id does not depend on its pool, so
// `terraform destroy` may send the pool's DELETE while the floating IP is
// still being released. The pool's delete waits for it (here a floating
// IP made through the API, released two seconds into the destroy); before
// the grace it failed at once with pool_in_use.
func TestAccPool_deleteWaitsForFloatingIPsReleasedMeanwhile(t *testing.T) {
	accPreCheck(t)
	s := startFipd(t)
	ctx := context.Background()
	pool := `
resource "fipd_pool" "p" {
  network_id = fipd_network.n.id
  cidr       = "2001:db8:200::/64"
}
`
	var poolID, fipID string
	released := make(chan error, 1)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		Steps: []resource.TestStep{
			{
				Config: poolConfig(s, pool),
				Check: func(st *terraform.State) error {
					var err error
					if poolID, err = stateAttr(st, "fipd_pool.p", "id"); err != nil {
						return err
					}
					id, err := uuid.Parse(poolID)
					if err != nil {
						return err
					}
					f, err := s.api.CreateFloatingIP(ctx, fipdapi.FloatingIpCreate{
						PoolId:    nullable.NewNullableWithValue(id),
						ProjectId: nullable.NewNullableWithValue("demo"),
					})
					if err != nil {
						return err
					}
					fipID = f.Id.String()
					return nil
				},
			},
			{
				PreConfig: func() {
					go func() {
						time.Sleep(2 * time.Second)
						released <- s.api.DeleteFloatingIP(ctx, fipID, -1)
					}()
				},
				Config: poolConfig(s, ""),
				Check: func(*terraform.State) error {
					if err := <-released; err != nil {
						return fmt.Errorf("releasing %s through the API: %w", fipID, err)
					}
					if _, err := s.api.GetPool(ctx, poolID); !fipdapi.IsNotFound(err) {
						return fmt.Errorf("pool %s still exists after its delete (err %v)", poolID, err)
					}
					return nil
				},
			},
		},
	})
}
