package provider

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/oapi-codegen/nullable"

	"github.com/fipd/terraform-provider-fipd/internal/fipdapi"
)

var (
	_ resource.ResourceWithConfigure   = (*instanceResource)(nil)
	_ resource.ResourceWithImportState = (*instanceResource)(nil)
)

func NewInstanceResource() resource.Resource { return &instanceResource{} }

type instanceResource struct{ client *fipdapi.Client }

type instanceModel struct {
	ID        types.String   `tfsdk:"id"`
	Name      types.String   `tfsdk:"name"`
	Host      types.String   `tfsdk:"host"`
	ProjectID types.String   `tfsdk:"project_id"`
	CreatedAt types.String   `tfsdk:"created_at"`
	UpdatedAt types.String   `tfsdk:"updated_at"`
	Timeouts  timeouts.Value `tfsdk:"timeouts"`
}

func (m *instanceModel) fill(i *fipdapi.Instance) {
	m.ID = types.StringValue(uuidString(i.Id))
	m.Name = types.StringValue(i.Name)
	m.Host = types.StringValue(i.Host)
	m.ProjectID = types.StringValue(i.ProjectId)
	m.CreatedAt = formatTime(i.CreatedAt)
	m.UpdatedAt = formatTime(i.UpdatedAt)
}

func (r *instanceResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_instance"
}

func (r *instanceResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	keep := stringplanmodifier.UseStateForUnknown()
	resp.Schema = schema.Schema{
		MarkdownDescription: "An instance: a workload placed on a host, that floating IPs are associated with.\n\n" +
			"Changing `host` is a migration, done in place: fipd moves the instance's floating IPs to the new host " +
			"by its DAD-safe protocol, and the update waits until each of them is `ACTIVE` there " +
			"(`ERROR` ends the wait with fipd's `status_detail`).",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "The instance's ID: the compute service's UUID for it when given, else a new one. " +
					"Changing it replaces the instance.",
				Optional:      true,
				Computed:      true,
				Validators:    []validator.String{isUUID()},
				PlanModifiers: []planmodifier.String{keep, stringplanmodifier.RequiresReplaceIfConfigured()},
			},
			"name": schema.StringAttribute{
				MarkdownDescription: "A name, 1–255 printable characters. Can be changed in place.",
				Required:            true,
				Validators:          []validator.String{objectName(), declared("InstanceCreate", "name")},
			},
			"host": schema.StringAttribute{
				MarkdownDescription: "The name of the registered host (`fipd_host`) the instance runs on. " +
					"Changing it migrates the instance and its floating IPs, in place.",
				Required:   true,
				Validators: []validator.String{hostName(), declared("InstanceCreate", "host")},
			},
			"project_id": schema.StringAttribute{
				MarkdownDescription: "The owning project. Required with the admin token; implied by a project token.",
				Optional:            true,
				Computed:            true,
				Validators:          []validator.String{projectID(), declared("InstanceCreate", "project_id")},
				PlanModifiers:       []planmodifier.String{keep, stringplanmodifier.RequiresReplaceIfConfigured()},
			},
			"created_at": schema.StringAttribute{
				MarkdownDescription: "When the instance was created (RFC 3339).",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{keep},
			},
			"updated_at": schema.StringAttribute{
				MarkdownDescription: "When the instance was last changed (RFC 3339).",
				Computed:            true,
			},
		},
		Blocks: map[string]schema.Block{
			"timeouts": timeouts.Block(ctx, timeouts.Opts{Update: true}),
		},
	}
}

func (r *instanceResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

func (r *instanceResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var plan instanceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	in := fipdapi.InstanceCreate{
		Name:      plan.Name.ValueString(),
		Host:      plan.Host.ValueString(),
		Id:        optUUID(plan.ID, "id", &resp.Diagnostics),
		ProjectId: optString(plan.ProjectID),
	}
	if resp.Diagnostics.HasError() {
		return
	}
	i, err := r.client.CreateInstance(ctx, in)
	if err != nil {
		addAPIError(&resp.Diagnostics, "Cannot create instance "+plan.Name.ValueString(), err)
		return
	}
	plan.fill(i)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *instanceResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var state instanceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	i, err := r.client.GetInstance(ctx, state.ID.ValueString())
	if fipdapi.IsNotFound(err) {
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		addAPIError(&resp.Diagnostics, "Cannot read instance "+state.ID.ValueString(), err)
		return
	}
	state.fill(i)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func (r *instanceResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var plan, state instanceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, d := plan.Timeouts.Update(ctx, defaultFloatingIPWait)
	resp.Diagnostics.Append(d...)
	var upd fipdapi.InstanceUpdate
	if !plan.Name.Equal(state.Name) {
		upd.Name = nullable.NewNullableWithValue(plan.Name.ValueString())
	}
	migrate := !plan.Host.Equal(state.Host)
	if migrate {
		upd.Host = nullable.NewNullableWithValue(plan.Host.ValueString())
	}
	id := state.ID.ValueString()
	i, err := r.client.UpdateInstance(ctx, id, upd)
	if err != nil {
		addAPIError(&resp.Diagnostics, "Cannot update instance "+state.Name.ValueString(), err)
		return
	}
	plan.fill(i)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
	if !migrate {
		return
	}
	// The migration bumped each floating IP's revision: wait until every one
	// of them is ACTIVE on the new host.
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	fips, err := r.client.ListFloatingIPs(wctx, fipdapi.FloatingIPFilter{InstanceID: id})
	if err != nil {
		addAPIError(&resp.Diagnostics, "Cannot list the floating IPs of instance "+state.Name.ValueString(), err)
		return
	}
	for _, f := range fips {
		res, err := waitForFloatingIP(wctx, r.client, f.Id.String(), f.Revision)
		if res.skipped != "" {
			resp.Diagnostics.AddWarning("Not waiting for floating IP "+f.Address, res.skipped)
		}
		var se *statusError
		switch {
		case errors.As(err, &se):
			detail, _ := se.fip.StatusDetail.Get()
			resp.Diagnostics.AddError("Floating IP "+f.Address+" is ERROR after the migration",
				fmt.Sprintf("fipd reports status ERROR: %s", nonEmpty(detail, "no detail given")))
		case err != nil:
			addAPIError(&resp.Diagnostics, "Waiting for floating IP "+f.Address+" to follow instance "+plan.Name.ValueString(), err)
		}
	}
}

func (r *instanceResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var state instanceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if err := r.client.DeleteInstance(ctx, state.ID.ValueString()); err != nil && !fipdapi.IsNotFound(err) {
		addAPIError(&resp.Diagnostics, "Cannot delete instance "+state.Name.ValueString(), err)
	}
}

func (r *instanceResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}
