package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/resourcevalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/listdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/oapi-codegen/nullable"

	"github.com/fipd/terraform-provider-fipd/internal/fipdapi"
)

var (
	_ resource.ResourceWithConfigure        = (*floatingIPResource)(nil)
	_ resource.ResourceWithImportState      = (*floatingIPResource)(nil)
	_ resource.ResourceWithConfigValidators = (*floatingIPResource)(nil)
	_ resource.ResourceWithValidateConfig   = (*floatingIPResource)(nil)
)

// defaultFloatingIPWait bounds the wait for ACTIVE/DOWN unless the
// timeouts block says otherwise.
const defaultFloatingIPWait = 5 * time.Minute

func NewFloatingIPResource() resource.Resource { return &floatingIPResource{} }

type floatingIPResource struct{ client *fipdapi.Client }

type floatingIPModel struct {
	ID                 types.String   `tfsdk:"id"`
	Address            types.String   `tfsdk:"address"`
	NetworkID          types.String   `tfsdk:"network_id"`
	PoolID             types.String   `tfsdk:"pool_id"`
	ProjectID          types.String   `tfsdk:"project_id"`
	InstanceID         types.String   `tfsdk:"instance_id"`
	StandbyInstanceIDs types.List     `tfsdk:"standby_instance_ids"`
	Description        types.String   `tfsdk:"description"`
	Status             types.String   `tfsdk:"status"`
	StatusDetail       types.String   `tfsdk:"status_detail"`
	Host               types.String   `tfsdk:"host"`
	Revision           types.Int64    `tfsdk:"revision"`
	CreatedAt          types.String   `tfsdk:"created_at"`
	UpdatedAt          types.String   `tfsdk:"updated_at"`
	Timeouts           timeouts.Value `tfsdk:"timeouts"`
}

func (m *floatingIPModel) fill(f *fipdapi.FloatingIp) {
	m.ID = types.StringValue(uuidString(f.Id))
	m.Address = types.StringValue(f.Address)
	m.NetworkID = types.StringValue(uuidString(f.NetworkId))
	m.PoolID = types.StringValue(uuidString(f.PoolId))
	m.ProjectID = types.StringValue(f.ProjectId)
	m.InstanceID = nullableUUID(f.InstanceId)
	m.StandbyInstanceIDs = uuidList(f.StandbyInstanceIds)
	m.Description = types.StringValue(f.Description)
	m.Status = types.StringValue(string(f.Status))
	m.StatusDetail = nullableString(f.StatusDetail)
	m.Host = nullableString(f.Host)
	m.Revision = types.Int64Value(f.Revision)
	m.CreatedAt = formatTime(f.CreatedAt)
	m.UpdatedAt = formatTime(f.UpdatedAt)
}

func (r *floatingIPResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_floating_ip"
}

func (r *floatingIPResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	keep := stringplanmodifier.UseStateForUnknown()
	resp.Schema = schema.Schema{
		MarkdownDescription: "A floating IPv6 address, allocated from a pool (or the first pool of a network with room) " +
			"and optionally associated with an instance, with standby instances to fail over to.\n\n" +
			"Creating it associated, or changing `instance_id`, waits until fipd reports the address `ACTIVE` on the " +
			"instance's host (its agent added it, DAD passed, the address was announced), or `DOWN` when it has no " +
			"instance. `ERROR` ends the wait with fipd's `status_detail` (e.g. the host and the MAC that defended the " +
			"address in DAD). When the host's agent has never connected, the wait is skipped with a warning.\n\n" +
			"Updates and deletes send `If-Match` with the `revision` in the state: a change made meanwhile outside " +
			"Terraform to what this resource manages fails with `revision_mismatch` instead of being overwritten " +
			"(a migration of the instance, which changes only `host`, is not such a change). " +
			"Destroying it releases the address; it returns to the pool once hosts confirmed its removal and fipd's quarantine passed.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "The floating IP's ID (a UUID).",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{keep},
			},
			"pool_id": schema.StringAttribute{
				MarkdownDescription: "Allocate from this pool. One of `pool_id` and `network_id` is required; " +
					"otherwise computed: the pool the address came from.",
				Optional:      true,
				Computed:      true,
				Validators:    []validator.String{isUUID()},
				PlanModifiers: []planmodifier.String{keep, stringplanmodifier.RequiresReplaceIfConfigured()},
			},
			"network_id": schema.StringAttribute{
				MarkdownDescription: "Allocate from the first pool of this network with room (with `pool_id`: must be " +
					"the pool's network). Otherwise computed: the pool's network.",
				Optional:      true,
				Computed:      true,
				Validators:    []validator.String{isUUID()},
				PlanModifiers: []planmodifier.String{keep, stringplanmodifier.RequiresReplaceIfConfigured()},
			},
			"address": schema.StringAttribute{
				MarkdownDescription: "A specific address to allocate, in canonical form (RFC 5952). Default: a random free " +
					"address of the pool. Changing it replaces the floating IP.",
				Optional:      true,
				Computed:      true,
				Validators:    []validator.String{ipv6Address(), declared("FloatingIpCreate", "address")},
				PlanModifiers: []planmodifier.String{keep, stringplanmodifier.RequiresReplaceIfConfigured()},
			},
			"project_id": schema.StringAttribute{
				MarkdownDescription: "The owning project. Required with the admin token; implied by a project token.",
				Optional:            true,
				Computed:            true,
				Validators:          []validator.String{projectID(), declared("FloatingIpCreate", "project_id")},
				PlanModifiers:       []planmodifier.String{keep, stringplanmodifier.RequiresReplaceIfConfigured()},
			},
			"instance_id": schema.StringAttribute{
				MarkdownDescription: "The instance to associate with: the address is placed on its host, and follows it " +
					"when it migrates. Leave out (or remove) to disassociate.",
				Optional:   true,
				Validators: []validator.String{isUUID()},
			},
			"standby_instance_ids": schema.ListAttribute{
				MarkdownDescription: "Instances to fail over to, in order, when the active instance's host is lost. Default: none.",
				ElementType:         types.StringType,
				Optional:            true,
				Computed:            true,
				Default:             listdefault.StaticValue(types.ListValueMust(types.StringType, nil)),
				Validators: []validator.List{
					listvalidator.ValueStringsAre(isUUID(), declaredItems("FloatingIpUpdate", "standby_instance_ids")),
					listvalidator.UniqueValues(),
				},
			},
			"description": schema.StringAttribute{
				MarkdownDescription: "Free text, at most 1024 characters. Default: empty.",
				Optional:            true,
				Computed:            true,
				Default:             stringdefault.StaticString(""),
				Validators:          []validator.String{description(), declared("FloatingIpUpdate", "description")},
			},
			"status": schema.StringAttribute{
				MarkdownDescription: "Observed state: `DOWN` (not associated, or not applied yet), `PENDING` (a change is " +
					"on its way to hosts), `ACTIVE` (present, DAD passed and announced on the intended host), `ERROR`.",
				Computed: true,
			},
			"status_detail": schema.StringAttribute{
				MarkdownDescription: "Why the status is `ERROR`: e.g. the host and the MAC that defended the address, or the agent's error.",
				Computed:            true,
			},
			"host": schema.StringAttribute{
				MarkdownDescription: "The host of the associated instance: where the address should be.",
				Computed:            true,
			},
			"revision": schema.Int64Attribute{
				MarkdownDescription: "Increments on every change of what is wanted (association, description, standbys, " +
					"a migration or failover); sent back in `If-Match`.",
				Computed: true,
			},
			"created_at": schema.StringAttribute{
				MarkdownDescription: "When the address was allocated (RFC 3339).",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{keep},
			},
			"updated_at": schema.StringAttribute{
				MarkdownDescription: "When the floating IP was last changed (RFC 3339).",
				Computed:            true,
			},
		},
		Blocks: map[string]schema.Block{
			"timeouts": timeouts.Block(ctx, timeouts.Opts{Create: true, Update: true}),
		},
	}
}

func (r *floatingIPResource) ConfigValidators(context.Context) []resource.ConfigValidator {
	return []resource.ConfigValidator{
		resourcevalidator.AtLeastOneOf(path.MatchRoot("pool_id"), path.MatchRoot("network_id")),
	}
}

func (r *floatingIPResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var cfg floatingIPModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() || cfg.InstanceID.IsNull() || cfg.InstanceID.IsUnknown() {
		return
	}
	for _, s := range listStrings(ctx, cfg.StandbyInstanceIDs, &resp.Diagnostics) {
		if s == cfg.InstanceID.ValueString() {
			resp.Diagnostics.AddAttributeError(path.Root("standby_instance_ids"), "Invalid standby",
				"The active instance "+s+" cannot also be its own standby.")
		}
	}
}

func (r *floatingIPResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

func optUUID(v types.String, field string, diags *diag.Diagnostics) nullable.Nullable[fipdapi.UUID] {
	if v.IsNull() || v.IsUnknown() {
		return nil
	}
	u, err := parseUUID(v.ValueString())
	if err != nil {
		diags.AddAttributeError(path.Root(field), "Invalid "+field, err.Error())
		return nil
	}
	return nullable.NewNullableWithValue(u)
}

func optString(v types.String) nullable.Nullable[string] {
	if v.IsNull() || v.IsUnknown() {
		return nil
	}
	return nullable.NewNullableWithValue(v.ValueString())
}

func uuids(ss []string, diags *diag.Diagnostics) []fipdapi.UUID {
	out := make([]fipdapi.UUID, 0, len(ss))
	for _, s := range ss {
		u, err := parseUUID(s)
		if err != nil {
			diags.AddAttributeError(path.Root("standby_instance_ids"), "Invalid standby_instance_ids", err.Error())
			continue
		}
		out = append(out, u)
	}
	return out
}

func (r *floatingIPResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var plan floatingIPModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, d := plan.Timeouts.Create(ctx, defaultFloatingIPWait)
	resp.Diagnostics.Append(d...)
	in := fipdapi.FloatingIpCreate{
		PoolId:      optUUID(plan.PoolID, "pool_id", &resp.Diagnostics),
		NetworkId:   optUUID(plan.NetworkID, "network_id", &resp.Diagnostics),
		InstanceId:  optUUID(plan.InstanceID, "instance_id", &resp.Diagnostics),
		Address:     optString(plan.Address),
		ProjectId:   optString(plan.ProjectID),
		Description: nullable.NewNullableWithValue(plan.Description.ValueString()),
	}
	standbys := uuids(listStrings(ctx, plan.StandbyInstanceIDs, &resp.Diagnostics), &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	f, err := r.client.CreateFloatingIP(ctx, in)
	if err != nil {
		addAPIError(&resp.Diagnostics, "Cannot allocate a floating IP", err)
		return
	}
	// Track it at once: whatever fails next, Terraform knows it exists.
	plan.fill(f)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
	if len(standbys) > 0 {
		// fipd's create takes no standbys: set them in a second step.
		f, err = r.client.UpdateFloatingIP(ctx, plan.ID.ValueString(), f.Revision,
			fipdapi.FloatingIpUpdate{StandbyInstanceIds: nullable.NewNullableWithValue(standbys)})
		if err != nil {
			addAPIError(&resp.Diagnostics, "Cannot set the standbys of floating IP "+plan.Address.ValueString(), err)
			return
		}
		plan.fill(f)
		resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
	}
	r.wait(ctx, timeout, &plan, f.Revision, &resp.State, &resp.Diagnostics)
}

// stateSetter is the part of tfsdk.State that wait needs.
type stateSetter interface {
	Set(context.Context, any) diag.Diagnostics
}

func (r *floatingIPResource) wait(ctx context.Context, timeout time.Duration, m *floatingIPModel, revision int64, state stateSetter, diags *diag.Diagnostics) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := waitForFloatingIP(wctx, r.client, m.ID.ValueString(), revision)
	if res.fip != nil {
		m.fill(res.fip)
		diags.Append(state.Set(ctx, m)...)
	}
	if res.skipped != "" {
		diags.AddWarning("Not waiting for floating IP "+m.Address.ValueString(), res.skipped)
	}
	if err == nil {
		return
	}
	var se *statusError
	if errors.As(err, &se) {
		detail, _ := se.fip.StatusDetail.Get()
		diags.AddError("Floating IP "+se.fip.Address+" is ERROR",
			fmt.Sprintf("fipd reports status ERROR: %s\n\n(floating IP %s, revision %d; its event log is at "+
				"GET /v1/floating-ips/%s/events)", nonEmpty(detail, "no detail given"), se.fip.Id, se.fip.Revision, se.fip.Id))
		return
	}
	addAPIError(diags, "Waiting for floating IP "+m.Address.ValueString(), err)
}

func (r *floatingIPResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var state floatingIPModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	f, err := r.client.GetFloatingIP(ctx, state.ID.ValueString())
	if fipdapi.IsNotFound(err) {
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		addAPIError(&resp.Diagnostics, "Cannot read floating IP "+state.ID.ValueString(), err)
		return
	}
	state.fill(f)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// managed is what this resource writes; a concurrent change elsewhere
// (e.g. a migration, which moves host and bumps the revision) leaves it
// alone and is no reason to fail.
type managed struct {
	instanceID  string
	description string
	standbys    []string
}

func managedOf(f *fipdapi.FloatingIp) managed {
	m := managed{description: f.Description}
	if v, err := f.InstanceId.Get(); err == nil {
		m.instanceID = v.String()
	}
	for _, s := range f.StandbyInstanceIds {
		m.standbys = append(m.standbys, s.String())
	}
	return m
}

func managedOfModel(ctx context.Context, m *floatingIPModel, diags *diag.Diagnostics) managed {
	return managed{
		instanceID:  m.InstanceID.ValueString(),
		description: m.Description.ValueString(),
		standbys:    listStrings(ctx, m.StandbyInstanceIDs, diags),
	}
}

func (a managed) equal(b managed) bool {
	return a.instanceID == b.instanceID && a.description == b.description &&
		slices.Equal(a.standbys, b.standbys)
}

// concurrent decides what a 412 means: the current object, and whether the
// request should be repeated at its revision (only what we do not manage
// changed) or it is a real conflict.
func (r *floatingIPResource) concurrent(ctx context.Context, id string, prior managed) (*fipdapi.FloatingIp, bool) {
	cur, err := r.client.GetFloatingIP(ctx, id)
	if err != nil {
		return nil, false
	}
	return cur, managedOf(cur).equal(prior)
}

func (r *floatingIPResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var plan, state floatingIPModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, d := plan.Timeouts.Update(ctx, defaultFloatingIPWait)
	resp.Diagnostics.Append(d...)
	id := state.ID.ValueString()

	var upd fipdapi.FloatingIpUpdate
	reassociate := !plan.InstanceID.Equal(state.InstanceID)
	if reassociate {
		if plan.InstanceID.IsNull() {
			upd.InstanceId = nullable.NewNullNullable[fipdapi.UUID]()
		} else {
			upd.InstanceId = optUUID(plan.InstanceID, "instance_id", &resp.Diagnostics)
		}
	}
	if !plan.Description.Equal(state.Description) {
		upd.Description = nullable.NewNullableWithValue(plan.Description.ValueString())
	}
	if !plan.StandbyInstanceIDs.Equal(state.StandbyInstanceIDs) {
		upd.StandbyInstanceIds = nullable.NewNullableWithValue(
			uuids(listStrings(ctx, plan.StandbyInstanceIDs, &resp.Diagnostics), &resp.Diagnostics))
	}
	prior := managedOfModel(ctx, &state, &resp.Diagnostics)
	wanted := managedOfModel(ctx, &plan, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}

	f := (*fipdapi.FloatingIp)(nil)
	revision := state.Revision.ValueInt64()
	var err error
	for attempt := 0; ; attempt++ {
		f, err = r.client.UpdateFloatingIP(ctx, id, revision, upd)
		if fipdapi.StatusOf(err) != http.StatusPreconditionFailed || attempt >= 3 {
			break
		}
		cur, retry := r.concurrent(ctx, id, prior)
		if cur != nil && managedOf(cur).equal(wanted) {
			f, err = cur, nil // already as planned (e.g. our retried request went through)
			break
		}
		if !retry {
			break
		}
		revision = cur.Revision
	}
	if err != nil {
		addAPIError(&resp.Diagnostics, "Cannot update floating IP "+state.Address.ValueString(), err)
		return
	}
	plan.fill(f)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
	if reassociate {
		r.wait(ctx, timeout, &plan, f.Revision, &resp.State, &resp.Diagnostics)
	}
}

func (r *floatingIPResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var state floatingIPModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	id := state.ID.ValueString()
	prior := managedOfModel(ctx, &state, &resp.Diagnostics)
	revision := state.Revision.ValueInt64()
	var err error
	for attempt := 0; ; attempt++ {
		err = r.client.DeleteFloatingIP(ctx, id, revision)
		if fipdapi.StatusOf(err) != http.StatusPreconditionFailed || attempt >= 3 {
			break
		}
		cur, retry := r.concurrent(ctx, id, prior)
		if !retry {
			break
		}
		revision = cur.Revision
	}
	if err != nil && !fipdapi.IsNotFound(err) {
		addAPIError(&resp.Diagnostics, "Cannot release floating IP "+state.Address.ValueString(), err)
	}
}

func (r *floatingIPResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}
