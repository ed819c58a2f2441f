package provider

import (
	"context"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/fipd/terraform-provider-fipd/internal/fipdapi"
)

var _ datasource.DataSourceWithConfigure = (*floatingIPDataSource)(nil)

func NewFloatingIPDataSource() datasource.DataSource { return &floatingIPDataSource{} }

type floatingIPDataSource struct{ client *fipdapi.Client }

// floatingIPData is one floating IP as data sources show it.
type floatingIPData struct {
	ID                 types.String `tfsdk:"id"`
	Address            types.String `tfsdk:"address"`
	NetworkID          types.String `tfsdk:"network_id"`
	PoolID             types.String `tfsdk:"pool_id"`
	ProjectID          types.String `tfsdk:"project_id"`
	InstanceID         types.String `tfsdk:"instance_id"`
	StandbyInstanceIDs types.List   `tfsdk:"standby_instance_ids"`
	Description        types.String `tfsdk:"description"`
	Status             types.String `tfsdk:"status"`
	StatusDetail       types.String `tfsdk:"status_detail"`
	Host               types.String `tfsdk:"host"`
	Revision           types.Int64  `tfsdk:"revision"`
	CreatedAt          types.String `tfsdk:"created_at"`
	UpdatedAt          types.String `tfsdk:"updated_at"`
}

func floatingIPDataOf(f *fipdapi.FloatingIp) floatingIPData {
	var m floatingIPModel
	m.fill(f)
	return floatingIPData{
		ID: m.ID, Address: m.Address, NetworkID: m.NetworkID, PoolID: m.PoolID, ProjectID: m.ProjectID,
		InstanceID: m.InstanceID, StandbyInstanceIDs: m.StandbyInstanceIDs, Description: m.Description,
		Status: m.Status, StatusDetail: m.StatusDetail, Host: m.Host, Revision: m.Revision,
		CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt,
	}
}

var floatingIPDataAttrTypes = map[string]attr.Type{
	"id": types.StringType, "address": types.StringType, "network_id": types.StringType,
	"pool_id": types.StringType, "project_id": types.StringType, "instance_id": types.StringType,
	"standby_instance_ids": types.ListType{ElemType: types.StringType}, "description": types.StringType,
	"status": types.StringType, "status_detail": types.StringType, "host": types.StringType,
	"revision": types.Int64Type, "created_at": types.StringType, "updated_at": types.StringType,
}

// floatingIPDataAttributes are the computed attributes of one floating IP;
// except lists the ones a data source takes as arguments.
func floatingIPDataAttributes(except ...string) map[string]schema.Attribute {
	all := map[string]schema.Attribute{
		"id":                   schema.StringAttribute{Computed: true, MarkdownDescription: "The floating IP's ID."},
		"address":              schema.StringAttribute{Computed: true, MarkdownDescription: "The IPv6 address."},
		"network_id":           schema.StringAttribute{Computed: true, MarkdownDescription: "Its network."},
		"pool_id":              schema.StringAttribute{Computed: true, MarkdownDescription: "The pool the address came from."},
		"project_id":           schema.StringAttribute{Computed: true, MarkdownDescription: "The owning project."},
		"instance_id":          schema.StringAttribute{Computed: true, MarkdownDescription: "The associated instance, if any."},
		"standby_instance_ids": schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "Instances to fail over to, in order."},
		"description":          schema.StringAttribute{Computed: true, MarkdownDescription: "Free text."},
		"status":               schema.StringAttribute{Computed: true, MarkdownDescription: "`DOWN`, `PENDING`, `ACTIVE` or `ERROR`."},
		"status_detail":        schema.StringAttribute{Computed: true, MarkdownDescription: "Why the status is `ERROR`."},
		"host":                 schema.StringAttribute{Computed: true, MarkdownDescription: "Where the address should be: the associated instance's host."},
		"revision":             schema.Int64Attribute{Computed: true, MarkdownDescription: "The revision of what is wanted."},
		"created_at":           schema.StringAttribute{Computed: true, MarkdownDescription: "When the address was allocated (RFC 3339)."},
		"updated_at":           schema.StringAttribute{Computed: true, MarkdownDescription: "When it was last changed (RFC 3339)."},
	}
	for _, k := range except {
		delete(all, k)
	}
	return all
}

func (d *floatingIPDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_floating_ip"
}

func (d *floatingIPDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	attrs := floatingIPDataAttributes("address", "network_id")
	attrs["address"] = schema.StringAttribute{
		MarkdownDescription: "The address to look up, in canonical form (RFC 5952).",
		Required:            true,
		Validators:          []validator.String{ipv6Address()},
	}
	attrs["network_id"] = schema.StringAttribute{
		MarkdownDescription: "Look only in this network: an address is unique per network only.",
		Optional:            true,
		Computed:            true,
		Validators:          []validator.String{isUUID()},
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Looks up a live floating IP by its address. A project token sees its project's only.",
		Attributes:          attrs,
	}
}

func (d *floatingIPDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

func (d *floatingIPDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	if d.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var cfg floatingIPData
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	addr := cfg.Address.ValueString()
	found, err := d.client.ListFloatingIPs(ctx, fipdapi.FloatingIPFilter{Address: addr, NetworkID: cfg.NetworkID.ValueString()})
	if err != nil {
		addAPIError(&resp.Diagnostics, "Cannot list floating IPs", err)
		return
	}
	switch len(found) {
	case 0:
		resp.Diagnostics.AddAttributeError(path.Root("address"), "No such floating IP",
			"fipd has no live floating IP "+addr+inNetwork(cfg.NetworkID.ValueString())+" (visible to this token).")
		return
	case 1:
	default:
		ids := make([]string, len(found))
		for i, f := range found {
			ids[i] = f.Id.String() + " (network " + f.NetworkId.String() + ")"
		}
		resp.Diagnostics.AddAttributeError(path.Root("address"), "Several floating IPs match",
			"Floating IPs "+strings.Join(ids, ", ")+" all have address "+addr+"; set network_id to choose.")
		return
	}
	out := floatingIPDataOf(&found[0])
	resp.Diagnostics.Append(resp.State.Set(ctx, &out)...)
}
