package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/oapi-codegen/nullable"

	"github.com/fipd/terraform-provider-fipd/internal/fipdapi"
)

var (
	_ resource.ResourceWithConfigure   = (*networkResource)(nil)
	_ resource.ResourceWithImportState = (*networkResource)(nil)
)

func NewNetworkResource() resource.Resource { return &networkResource{} }

type networkResource struct{ client *fipdapi.Client }

type networkModel struct {
	ID          types.String `tfsdk:"id"`
	Name        types.String `tfsdk:"name"`
	Description types.String `tfsdk:"description"`
	CreatedAt   types.String `tfsdk:"created_at"`
	UpdatedAt   types.String `tfsdk:"updated_at"`
}

func (m *networkModel) fill(n *fipdapi.Network) {
	m.ID = types.StringValue(uuidString(n.Id))
	m.Name = types.StringValue(n.Name)
	m.Description = types.StringValue(n.Description)
	m.CreatedAt = formatTime(n.CreatedAt)
	m.UpdatedAt = formatTime(n.UpdatedAt)
}

func (r *networkResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_network"
}

func (r *networkResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "A network: one L2 segment where Duplicate Address Detection happens. " +
			"Floating IPs move only between hosts on the same network. Needs the admin token.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "The network's ID (a UUID).",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"name": schema.StringAttribute{
				MarkdownDescription: "Unique name, 1–255 printable characters. Agents map it to an interface " +
					"(`fip-agent run --network NAME=IFACE`). Can be changed in place.",
				Required:   true,
				Validators: []validator.String{objectName(), declared("NetworkCreate", "name")},
			},
			"description": schema.StringAttribute{
				MarkdownDescription: "Free text, at most 1024 characters. Default: empty.",
				Optional:            true,
				Computed:            true,
				Default:             stringdefault.StaticString(""),
				Validators:          []validator.String{description(), declared("NetworkCreate", "description")},
			},
			"created_at": schema.StringAttribute{
				MarkdownDescription: "When the network was created (RFC 3339).",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"updated_at": schema.StringAttribute{
				MarkdownDescription: "When the network was last changed (RFC 3339).",
				Computed:            true,
			},
		},
	}
}

func (r *networkResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

func (r *networkResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var plan networkModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	n, err := r.client.CreateNetwork(ctx, fipdapi.NetworkCreate{
		Name:        plan.Name.ValueString(),
		Description: nullable.NewNullableWithValue(plan.Description.ValueString()),
	})
	if err != nil {
		addAPIError(&resp.Diagnostics, "Cannot create network "+plan.Name.ValueString(), err)
		return
	}
	plan.fill(n)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *networkResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var state networkModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	n, err := r.client.GetNetwork(ctx, state.ID.ValueString())
	if fipdapi.IsNotFound(err) {
		// Deleted outside Terraform: forget it, the next plan creates it.
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		addAPIError(&resp.Diagnostics, "Cannot read network "+state.ID.ValueString(), err)
		return
	}
	state.fill(n)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func (r *networkResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var plan, state networkModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	var upd fipdapi.NetworkUpdate
	if !plan.Name.Equal(state.Name) {
		upd.Name = nullable.NewNullableWithValue(plan.Name.ValueString())
	}
	if !plan.Description.Equal(state.Description) {
		upd.Description = nullable.NewNullableWithValue(plan.Description.ValueString())
	}
	n, err := r.client.UpdateNetwork(ctx, state.ID.ValueString(), upd)
	if err != nil {
		addAPIError(&resp.Diagnostics, "Cannot update network "+state.ID.ValueString(), err)
		return
	}
	plan.fill(n)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *networkResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var state networkModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	err := r.client.DeleteNetwork(ctx, state.ID.ValueString())
	if err != nil && !fipdapi.IsNotFound(err) {
		addAPIError(&resp.Diagnostics, "Cannot delete network "+state.ID.ValueString(), err)
	}
}

func (r *networkResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}
