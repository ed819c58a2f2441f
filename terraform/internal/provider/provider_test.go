package provider

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
)

const lookupNetwork = `
data "fipd_network" "n" {
  name = "anything"
}
`

// Configuration errors surface at plan time, before anything is changed.
func TestAccProvider_configErrors(t *testing.T) {
	accPreCheck(t)
	s := startFipd(t)
	// Something that answers HTTP but is not fipd.
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not here", http.StatusNotFound)
	}))
	t.Cleanup(other.Close)
	t.Setenv(EnvEndpoint, "")
	t.Setenv(EnvToken, "")
	provider := func(endpoint, token string) string {
		return fmt.Sprintf("provider \"fipd\" {\n  endpoint = %q\n  token = %q\n}\n", endpoint, token) + lookupNetwork
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		Steps: []resource.TestStep{
			{
				Config:      `provider "fipd" {}` + lookupNetwork,
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)Missing fipd endpoint.*Missing fipd token`),
			},
			{
				Config:      provider(other.URL, "fipa_x"),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)` + words("does not answer as fipd")),
			},
			{
				// Nothing listens there (fipd's port before it started: closed).
				Config:      provider("http://127.0.0.1:1", "fipa_x"),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)` + words("does not answer as fipd") + `.*` + words("connection refused")),
			},
			{
				Config:      provider("ftp://"+s.URL[len("http://"):], s.Token),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`must start with http://`),
			},
			{
				Config:      provider(s.URL, "fipa_wrong"),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)` + words("refused the token") + `.*unauthenticated`),
			},
			{
				// A real fipd, but no such network: the data source says so.
				Config:      provider(s.URL, s.Token),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`fipd has no network named anything`),
			},
		},
	})
}

// The endpoint and token can come from the environment.
func TestAccProvider_environment(t *testing.T) {
	accPreCheck(t)
	s := startFipd(t)
	t.Setenv(EnvEndpoint, s.URL)
	t.Setenv(EnvToken, s.Token)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		Steps: []resource.TestStep{
			{
				Config: `
resource "fipd_network" "n" {
  name = "from-env"
}
`,
				Check: resource.TestCheckResourceAttr("fipd_network.n", "name", "from-env"),
			},
		},
	})
}
