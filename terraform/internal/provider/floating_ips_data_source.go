package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/fipd/terraform-provider-fipd/internal/fipdapi"
)

var _ datasource.DataSourceWithConfigure = (*floatingIPsDataSource)(nil)

func NewFloatingIPsDataSource() datasource.DataSource { return &floatingIPsDataSource{} }

type floatingIPsDataSource struct{ client *fipdapi.Client }

type floatingIPsModel struct {
	NetworkID   types.String `tfsdk:"network_id"`
	PoolID      types.String `tfsdk:"pool_id"`
	ProjectID   types.String `tfsdk:"project_id"`
	InstanceID  types.String `tfsdk:"instance_id"`
	Status      types.String `tfsdk:"status"`
	Host        types.String `tfsdk:"host"`
	FloatingIPs types.List   `tfsdk:"floating_ips"`
}

func (d *floatingIPsDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_floating_ips"
}

func (d *floatingIPsDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	filter := func(desc string, v ...validator.String) schema.StringAttribute {
		return schema.StringAttribute{MarkdownDescription: desc, Optional: true, Validators: v}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Lists live floating IPs, filtered; every filter given must match. " +
			"A project token sees its project's only. Ordered by ID, that is by creation.",
		Attributes: map[string]schema.Attribute{
			"network_id":  filter("Only this network's.", isUUID()),
			"pool_id":     filter("Only those allocated from this pool.", isUUID()),
			"project_id":  filter("Only this project's.", projectID()),
			"instance_id": filter("Only those associated with this instance.", isUUID()),
			"status": filter("Only those with this status: `DOWN`, `PENDING`, `ACTIVE` or `ERROR`.",
				stringvalidator.OneOf("DOWN", "PENDING", "ACTIVE", "ERROR")),
			"host": filter("Only those whose associated instance is on this host (filtered by the provider: fipd has no such filter).",
				hostName()),
			"floating_ips": schema.ListNestedAttribute{
				MarkdownDescription: "The matching floating IPs.",
				Computed:            true,
				NestedObject:        schema.NestedAttributeObject{Attributes: floatingIPDataAttributes()},
			},
		},
	}
}

func (d *floatingIPsDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

func (d *floatingIPsDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	if d.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var cfg floatingIPsModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	found, err := d.client.ListFloatingIPs(ctx, fipdapi.FloatingIPFilter{
		NetworkID:  cfg.NetworkID.ValueString(),
		PoolID:     cfg.PoolID.ValueString(),
		ProjectID:  cfg.ProjectID.ValueString(),
		InstanceID: cfg.InstanceID.ValueString(),
		Status:     cfg.Status.ValueString(),
	})
	if err != nil {
		addAPIError(&resp.Diagnostics, "Cannot list floating IPs", err)
		return
	}
	elemType := types.ObjectType{AttrTypes: floatingIPDataAttrTypes}
	elems := []attr.Value{}
	for i := range found {
		if h := cfg.Host.ValueString(); h != "" {
			if got, err := found[i].Host.Get(); err != nil || got != h {
				continue
			}
		}
		data := floatingIPDataOf(&found[i])
		obj, diags := types.ObjectValueFrom(ctx, floatingIPDataAttrTypes, data)
		resp.Diagnostics.Append(diags...)
		elems = append(elems, obj)
	}
	list, diags := types.ListValue(elemType, elems)
	resp.Diagnostics.Append(diags...)
	cfg.FloatingIPs = list
	resp.Diagnostics.Append(resp.State.Set(ctx, &cfg)...)
}
