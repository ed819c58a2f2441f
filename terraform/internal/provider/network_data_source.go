package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework-validators/datasourcevalidator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"

	"github.com/fipd/terraform-provider-fipd/internal/fipdapi"
)

var (
	_ datasource.DataSourceWithConfigure        = (*networkDataSource)(nil)
	_ datasource.DataSourceWithConfigValidators = (*networkDataSource)(nil)
)

func NewNetworkDataSource() datasource.DataSource { return &networkDataSource{} }

type networkDataSource struct{ client *fipdapi.Client }

func (d *networkDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_network"
}

func (d *networkDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Looks up a network by name (or ID). Project tokens can read networks too.",
		Attributes: map[string]schema.Attribute{
			"name": schema.StringAttribute{
				MarkdownDescription: "The network's unique name. One of `name` and `id` is required.",
				Optional:            true,
				Computed:            true,
				Validators:          []validator.String{objectName()},
			},
			"id": schema.StringAttribute{
				MarkdownDescription: "The network's ID.",
				Optional:            true,
				Computed:            true,
				Validators:          []validator.String{isUUID()},
			},
			"description": schema.StringAttribute{Computed: true, MarkdownDescription: "Free text."},
			"created_at":  schema.StringAttribute{Computed: true, MarkdownDescription: "When the network was created (RFC 3339)."},
			"updated_at":  schema.StringAttribute{Computed: true, MarkdownDescription: "When the network was last changed (RFC 3339)."},
		},
	}
}

func (d *networkDataSource) ConfigValidators(context.Context) []datasource.ConfigValidator {
	return []datasource.ConfigValidator{
		datasourcevalidator.ExactlyOneOf(path.MatchRoot("name"), path.MatchRoot("id")),
	}
}

func (d *networkDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

func (d *networkDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	if d.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var cfg networkModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	var n *fipdapi.Network
	if !cfg.ID.IsNull() {
		var err error
		if n, err = d.client.GetNetwork(ctx, cfg.ID.ValueString()); err != nil {
			addAPIError(&resp.Diagnostics, "Cannot read network "+cfg.ID.ValueString(), err)
			return
		}
	} else {
		name := cfg.Name.ValueString()
		found, err := d.client.ListNetworks(ctx, name)
		if err != nil {
			addAPIError(&resp.Diagnostics, "Cannot list networks", err)
			return
		}
		for i := range found {
			if found[i].Name == name {
				n = &found[i]
			}
		}
		if n == nil {
			resp.Diagnostics.AddAttributeError(path.Root("name"), "No such network", "fipd has no network named "+name+".")
			return
		}
	}
	cfg.fill(n)
	resp.Diagnostics.Append(resp.State.Set(ctx, &cfg)...)
}
