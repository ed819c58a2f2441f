// Package provider implements the fipd Terraform provider.
package provider

import (
	"context"
	"os"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/fipd/terraform-provider-fipd/internal/fipdapi"
)

// Environment variables read when the provider block leaves a setting out.
const (
	EnvEndpoint = "FIPD_ENDPOINT"
	EnvToken    = "FIPD_TOKEN"
)

var _ provider.Provider = (*fipdProvider)(nil)

type fipdProvider struct {
	version string
}

// New returns the provider factory; version is the release (or "dev", "test").
func New(version string) func() provider.Provider {
	return func() provider.Provider { return &fipdProvider{version: version} }
}

type providerModel struct {
	Endpoint types.String `tfsdk:"endpoint"`
	Token    types.String `tfsdk:"token"`
}

func (p *fipdProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "fipd"
	resp.Version = p.version
}

func (p *fipdProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Manages floating IPv6 addresses with fipd, the floating IPv6 control plane: " +
			"networks, pools, hosts, instances, project tokens and floating IPs.\n\n" +
			"The provider checks at plan time that `endpoint` answers as fipd and accepts `token`.",
		Attributes: map[string]schema.Attribute{
			"endpoint": schema.StringAttribute{
				MarkdownDescription: "fipd's base URL, e.g. `http://127.0.0.1:8080`. Default: `$" + EnvEndpoint + "`.",
				Optional:            true,
			},
			"token": schema.StringAttribute{
				MarkdownDescription: "Bearer token: an admin token (`fipa_…`) or a project token (`fipp_…`, which can manage " +
					"only its project's floating IPs and instances). Default: `$" + EnvToken + "`.",
				Optional:  true,
				Sensitive: true,
			},
		},
	}
}

func (p *fipdProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var cfg providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	// A value known only after another resource is applied: Terraform calls
	// Configure again once it is known.
	if cfg.Endpoint.IsUnknown() || cfg.Token.IsUnknown() {
		return
	}
	endpoint := os.Getenv(EnvEndpoint)
	if !cfg.Endpoint.IsNull() {
		endpoint = cfg.Endpoint.ValueString()
	}
	token := os.Getenv(EnvToken)
	if !cfg.Token.IsNull() {
		token = cfg.Token.ValueString()
	}
	if endpoint == "" {
		resp.Diagnostics.AddAttributeError(path.Root("endpoint"), "Missing fipd endpoint",
			"Set endpoint in the provider block, or the "+EnvEndpoint+" environment variable, to fipd's base URL (e.g. http://127.0.0.1:8080).")
	}
	if token == "" {
		resp.Diagnostics.AddAttributeError(path.Root("token"), "Missing fipd token",
			"Set token in the provider block, or the "+EnvToken+" environment variable, to an admin or project token "+
				"(a fresh fipd writes its admin token to <data-dir>/admin-token).")
	}
	if resp.Diagnostics.HasError() {
		return
	}
	c, err := fipdapi.New(endpoint, token, "terraform-provider-fipd/"+p.version)
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("endpoint"), "Invalid fipd endpoint", err.Error())
		return
	}
	// Fail fast at plan time: a wrong port or a token for another fipd is
	// found here instead of in the middle of an apply.
	probeCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c.Retries = 3
	if err := c.Probe(probeCtx); err != nil {
		resp.Diagnostics.AddError("Cannot use fipd at "+c.Endpoint(), err.Error())
		return
	}
	c.Retries = 8
	resp.ResourceData = c
	resp.DataSourceData = c
}

func (p *fipdProvider) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{
		NewNetworkResource,
		NewPoolResource,
		NewHostResource,
		NewProjectTokenResource,
		NewInstanceResource,
		NewFloatingIPResource,
	}
}

func (p *fipdProvider) DataSources(context.Context) []func() datasource.DataSource {
	return []func() datasource.DataSource{
		NewNetworkDataSource,
		NewPoolDataSource,
		NewFloatingIPDataSource,
		NewFloatingIPsDataSource,
	}
}
