package provider

import (
	"context"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/fipd/terraform-provider-fipd/internal/fipdapi"
)

var (
	_ resource.ResourceWithConfigure   = (*hostResource)(nil)
	_ resource.ResourceWithImportState = (*hostResource)(nil)
)

func NewHostResource() resource.Resource { return &hostResource{} }

type hostResource struct{ client *fipdapi.Client }

type hostModel struct {
	ID        types.String   `tfsdk:"id"`
	Name      types.String   `tfsdk:"name"`
	Token     types.String   `tfsdk:"token"`
	State     types.String   `tfsdk:"state"`
	CreatedAt types.String   `tfsdk:"created_at"`
	Timeouts  timeouts.Value `tfsdk:"timeouts"`
}

func (m *hostModel) fill(h *fipdapi.Host) {
	m.ID = types.StringValue(uuidString(h.Id))
	m.Name = types.StringValue(h.Name)
	m.State = types.StringValue(h.State)
	m.CreatedAt = formatTime(h.CreatedAt)
}

func (r *hostResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_host"
}

func (r *hostResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "A compute host that runs one `fip-agent`. Creating it returns the agent's token, " +
			"which fipd shows only this once: it is kept (sensitive) in the state as `token`. Needs the admin token.\n\n" +
			"fipd cannot rename a host, so changing `name` replaces it (and issues a new token).",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "The host's ID (a UUID).",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"name": schema.StringAttribute{
				MarkdownDescription: "The host's name as instances name it (a DNS label or FQDN: ASCII letters, digits, `-`, `_`, `.`; at most 253).",
				Required:            true,
				Validators:          []validator.String{hostName(), declared("HostCreate", "name")},
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"token": schema.StringAttribute{
				MarkdownDescription: "The agent's bearer token (`fiph_…`), known only after create: fipd shows it once. " +
					"Null after `terraform import`, since fipd keeps only its hash.",
				Computed:      true,
				Sensitive:     true,
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"state": schema.StringAttribute{
				MarkdownDescription: "`alive` (its agent holds a lease), `lost` (the lease expired) or `never_seen`, as last read.",
				Computed:            true,
			},
			"created_at": schema.StringAttribute{
				MarkdownDescription: "When the host was registered (RFC 3339).",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
		},
		Blocks: map[string]schema.Block{
			"timeouts": timeouts.Block(ctx, timeouts.Opts{Delete: true}),
		},
	}
}

func (r *hostResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

func (r *hostResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var plan hostModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	h, err := r.client.CreateHost(ctx, fipdapi.HostCreate{Name: plan.Name.ValueString()})
	if err != nil {
		addAPIError(&resp.Diagnostics, "Cannot register host "+plan.Name.ValueString(), err)
		return
	}
	plan.ID = types.StringValue(uuidString(h.Id))
	plan.Name = types.StringValue(h.Name)
	plan.State = types.StringValue(h.State)
	plan.CreatedAt = formatTime(h.CreatedAt)
	plan.Token = types.StringValue(h.Token)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *hostResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var state hostModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	h, err := r.client.GetHost(ctx, state.ID.ValueString())
	if fipdapi.IsNotFound(err) {
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		addAPIError(&resp.Diagnostics, "Cannot read host "+state.ID.ValueString(), err)
		return
	}
	state.fill(h) // the token is not readable: keep the one from create
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// Update only carries over a new timeouts block: name requires replacement.
func (r *hostResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state hostModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	state.Timeouts = plan.Timeouts
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// Delete retries while fipd answers host_in_use: right after floating IPs
// are destroyed, the host's agent still has to confirm their removal (or
// the host be fenced after its lease ran out).
func (r *hostResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var state hostModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, d := state.Timeouts.Delete(ctx, 3*time.Minute)
	resp.Diagnostics.Append(d...)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	id := state.ID.ValueString()
	err := retryWhile(ctx, func() (bool, error) {
		err := r.client.DeleteHost(ctx, id)
		return fipdapi.HasCode(err, "host_in_use"), err
	})
	if err != nil && !fipdapi.IsNotFound(err) {
		addAPIError(&resp.Diagnostics, "Cannot delete host "+state.Name.ValueString(), err)
	}
}

func (r *hostResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}
