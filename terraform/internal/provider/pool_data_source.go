package provider

import (
	"context"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/datasourcevalidator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/fipd/terraform-provider-fipd/internal/fipdapi"
)

var (
	_ datasource.DataSourceWithConfigure        = (*poolDataSource)(nil)
	_ datasource.DataSourceWithConfigValidators = (*poolDataSource)(nil)
)

func NewPoolDataSource() datasource.DataSource { return &poolDataSource{} }

type poolDataSource struct{ client *fipdapi.Client }

type poolDataModel struct {
	ID          types.String `tfsdk:"id"`
	NetworkID   types.String `tfsdk:"network_id"`
	CIDR        types.String `tfsdk:"cidr"`
	Ranges      types.Set    `tfsdk:"ranges"`
	Reserved    types.Set    `tfsdk:"reserved"`
	Description types.String `tfsdk:"description"`
	CreatedAt   types.String `tfsdk:"created_at"`
	UpdatedAt   types.String `tfsdk:"updated_at"`
	Allocated   types.Int64  `tfsdk:"allocated"`
	Held        types.Int64  `tfsdk:"held"`
	Capacity    types.String `tfsdk:"capacity"`
	Available   types.String `tfsdk:"available"`
}

func (d *poolDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_pool"
}

func (d *poolDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Looks up a pool by ID, or by CIDR (optionally within one network), with its usage.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "The pool's ID. One of `id` and `cidr` is required.",
				Optional:            true,
				Computed:            true,
				Validators:          []validator.String{isUUID()},
			},
			"cidr": schema.StringAttribute{
				MarkdownDescription: "The pool's prefix, as fipd prints it (e.g. `2001:db8:100::/64`).",
				Optional:            true,
				Computed:            true,
				Validators:          []validator.String{poolCIDR()},
			},
			"network_id": schema.StringAttribute{
				MarkdownDescription: "With `cidr`: look only in this network (pools of different networks may share a prefix).",
				Optional:            true,
				Computed:            true,
				Validators:          []validator.String{isUUID()},
			},
			"ranges": schema.SetNestedAttribute{
				MarkdownDescription: "Inclusive allocation ranges.",
				Computed:            true,
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"first": schema.StringAttribute{Computed: true, MarkdownDescription: "First address."},
					"last":  schema.StringAttribute{Computed: true, MarkdownDescription: "Last address."},
				}},
			},
			"reserved": schema.SetAttribute{
				MarkdownDescription: "Addresses never allocated.",
				ElementType:         types.StringType,
				Computed:            true,
			},
			"description": schema.StringAttribute{Computed: true, MarkdownDescription: "Free text."},
			"created_at":  schema.StringAttribute{Computed: true, MarkdownDescription: "When the pool was created (RFC 3339)."},
			"updated_at":  schema.StringAttribute{Computed: true, MarkdownDescription: "When the pool was last changed (RFC 3339)."},
			"allocated":   schema.Int64Attribute{Computed: true, MarkdownDescription: "Live floating IPs."},
			"held": schema.Int64Attribute{Computed: true, MarkdownDescription: "Released addresses not reusable yet " +
				"(a host may still hold them, or they are in quarantine)."},
			"capacity": schema.StringAttribute{Computed: true, MarkdownDescription: "Allocatable addresses in total, " +
				"as a decimal string (a /64 exceeds 64 bits)."},
			"available": schema.StringAttribute{Computed: true, MarkdownDescription: "`capacity - allocated - held`, as a decimal string."},
		},
	}
}

func (d *poolDataSource) ConfigValidators(context.Context) []datasource.ConfigValidator {
	return []datasource.ConfigValidator{
		datasourcevalidator.ExactlyOneOf(path.MatchRoot("id"), path.MatchRoot("cidr")),
	}
}

func (d *poolDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

func (d *poolDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	if d.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var cfg poolDataModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	var p *fipdapi.Pool
	if !cfg.ID.IsNull() {
		var err error
		if p, err = d.client.GetPool(ctx, cfg.ID.ValueString()); err != nil {
			addAPIError(&resp.Diagnostics, "Cannot read pool "+cfg.ID.ValueString(), err)
			return
		}
	} else {
		// fipd cannot filter pools by prefix: list them (of one network when
		// given) and match here.
		cidr := cfg.CIDR.ValueString()
		pools, err := d.client.ListPools(ctx, cfg.NetworkID.ValueString())
		if err != nil {
			addAPIError(&resp.Diagnostics, "Cannot list pools", err)
			return
		}
		var matches []string
		for i := range pools {
			if pools[i].Cidr == cidr {
				p = &pools[i]
				matches = append(matches, pools[i].Id.String())
			}
		}
		switch {
		case len(matches) == 0:
			resp.Diagnostics.AddAttributeError(path.Root("cidr"), "No such pool", "fipd has no pool "+cidr+
				inNetwork(cfg.NetworkID.ValueString())+".")
			return
		case len(matches) > 1:
			resp.Diagnostics.AddAttributeError(path.Root("cidr"), "Several pools match",
				"Pools "+strings.Join(matches, ", ")+" all have prefix "+cidr+"; set network_id to choose.")
			return
		}
	}
	usage, err := d.client.GetPoolUsage(ctx, p.Id.String())
	if err != nil {
		addAPIError(&resp.Diagnostics, "Cannot read the usage of pool "+p.Id.String(), err)
		return
	}
	var m poolModel
	m.fill(p)
	out := poolDataModel{
		ID: m.ID, NetworkID: m.NetworkID, CIDR: m.CIDR, Ranges: m.Ranges, Reserved: m.Reserved,
		Description: m.Description, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt,
		Allocated: types.Int64Value(usage.Allocated), Held: types.Int64Value(usage.Held),
		Capacity: types.StringValue(usage.Capacity), Available: types.StringValue(usage.Available),
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &out)...)
}

func inNetwork(id string) string {
	if id == "" {
		return ""
	}
	return " in network " + id
}
