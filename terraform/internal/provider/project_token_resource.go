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
	_ resource.ResourceWithConfigure   = (*projectTokenResource)(nil)
	_ resource.ResourceWithImportState = (*projectTokenResource)(nil)
)

func NewProjectTokenResource() resource.Resource { return &projectTokenResource{} }

type projectTokenResource struct{ client *fipdapi.Client }

type projectTokenModel struct {
	ID          types.String `tfsdk:"id"`
	ProjectID   types.String `tfsdk:"project_id"`
	Description types.String `tfsdk:"description"`
	Token       types.String `tfsdk:"token"`
	CreatedAt   types.String `tfsdk:"created_at"`
}

func (r *projectTokenResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_project_token"
}

func (r *projectTokenResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	replace := []planmodifier.String{stringplanmodifier.RequiresReplace()}
	resp.Schema = schema.Schema{
		MarkdownDescription: "A project token (fipd's `/v1/tokens`): a bearer token that can read networks and pools " +
			"and manage one project's floating IPs and instances. The secret is shown once, at creation, and kept " +
			"(sensitive) in the state as `token`. fipd cannot change a token, so any change replaces it " +
			"(a new secret; the old one stops working). Needs the admin token.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "The token's ID (a UUID).",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"project_id": schema.StringAttribute{
				MarkdownDescription: "The project the token acts for (ASCII letters, digits, `-`, `_`, `.`; at most 64).",
				Required:            true,
				Validators:          []validator.String{projectID(), declared("TokenCreate", "project_id")},
				PlanModifiers:       replace,
			},
			"description": schema.StringAttribute{
				MarkdownDescription: "Free text, at most 1024 characters. Default: empty.",
				Optional:            true,
				Computed:            true,
				Default:             stringdefault.StaticString(""),
				Validators:          []validator.String{description(), declared("TokenCreate", "description")},
				PlanModifiers:       replace,
			},
			"token": schema.StringAttribute{
				MarkdownDescription: "The bearer secret (`fipp_…`), known only after create. Null after `terraform import`.",
				Computed:            true,
				Sensitive:           true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"created_at": schema.StringAttribute{
				MarkdownDescription: "When the token was created (RFC 3339).",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
		},
	}
}

func (r *projectTokenResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

func (r *projectTokenResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var plan projectTokenModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	t, err := r.client.CreateToken(ctx, fipdapi.TokenCreate{
		ProjectId:   plan.ProjectID.ValueString(),
		Description: nullable.NewNullableWithValue(plan.Description.ValueString()),
	})
	if err != nil {
		addAPIError(&resp.Diagnostics, "Cannot create a token for project "+plan.ProjectID.ValueString(), err)
		return
	}
	plan.ID = types.StringValue(uuidString(t.Id))
	plan.ProjectID = types.StringValue(t.ProjectId)
	plan.Description = types.StringValue(t.Description)
	plan.Token = types.StringValue(t.Token)
	plan.CreatedAt = formatTime(t.CreatedAt)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *projectTokenResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var state projectTokenModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	t, err := r.client.GetToken(ctx, state.ID.ValueString())
	if fipdapi.IsNotFound(err) {
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		addAPIError(&resp.Diagnostics, "Cannot read token "+state.ID.ValueString(), err)
		return
	}
	state.ID = types.StringValue(uuidString(t.Id))
	state.ProjectID = types.StringValue(t.ProjectId)
	state.Description = types.StringValue(t.Description)
	state.CreatedAt = formatTime(t.CreatedAt)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func (r *projectTokenResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	resp.Diagnostics.AddError("Tokens cannot be updated", "Every argument of fipd_project_token requires replacement; this is a bug in the provider.")
}

func (r *projectTokenResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var state projectTokenModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if err := r.client.DeleteToken(ctx, state.ID.ValueString()); err != nil && !fipdapi.IsNotFound(err) {
		addAPIError(&resp.Diagnostics, "Cannot delete token "+state.ID.ValueString(), err)
	}
}

func (r *projectTokenResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}
