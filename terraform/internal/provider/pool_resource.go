package provider

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/setvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/setdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/setplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/oapi-codegen/nullable"

	"github.com/fipd/terraform-provider-fipd/internal/fipdapi"
)

var (
	_ resource.ResourceWithConfigure      = (*poolResource)(nil)
	_ resource.ResourceWithImportState    = (*poolResource)(nil)
	_ resource.ResourceWithValidateConfig = (*poolResource)(nil)
)

func NewPoolResource() resource.Resource { return &poolResource{} }

type poolResource struct{ client *fipdapi.Client }

type poolModel struct {
	ID          types.String   `tfsdk:"id"`
	NetworkID   types.String   `tfsdk:"network_id"`
	CIDR        types.String   `tfsdk:"cidr"`
	Ranges      types.Set      `tfsdk:"ranges"`
	Reserved    types.Set      `tfsdk:"reserved"`
	Description types.String   `tfsdk:"description"`
	CreatedAt   types.String   `tfsdk:"created_at"`
	UpdatedAt   types.String   `tfsdk:"updated_at"`
	Timeouts    timeouts.Value `tfsdk:"timeouts"`
}

type rangeModel struct {
	First types.String `tfsdk:"first"`
	Last  types.String `tfsdk:"last"`
}

var rangeAttrTypes = map[string]attr.Type{"first": types.StringType, "last": types.StringType}

func rangesValue(rs []fipdapi.AddrRange) types.Set {
	elems := make([]attr.Value, len(rs))
	for i, r := range rs {
		elems[i] = types.ObjectValueMust(rangeAttrTypes, map[string]attr.Value{
			"first": types.StringValue(r.First), "last": types.StringValue(r.Last),
		})
	}
	return types.SetValueMust(types.ObjectType{AttrTypes: rangeAttrTypes}, elems)
}

func (m *poolModel) fill(p *fipdapi.Pool) {
	m.ID = types.StringValue(uuidString(p.Id))
	m.NetworkID = types.StringValue(uuidString(p.NetworkId))
	m.CIDR = types.StringValue(p.Cidr)
	m.Ranges = rangesValue(p.Ranges)
	m.Reserved = stringSet(p.Reserved)
	m.Description = types.StringValue(p.Description)
	m.CreatedAt = formatTime(p.CreatedAt)
	m.UpdatedAt = formatTime(p.UpdatedAt)
}

func (r *poolResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_pool"
}

func poolSchemaRanges() schema.NestedAttributeObject {
	return schema.NestedAttributeObject{
		Attributes: map[string]schema.Attribute{
			"first": schema.StringAttribute{
				MarkdownDescription: "First address of the range (inclusive).",
				Required:            true,
				Validators:          []validator.String{ipv6Address()},
			},
			"last": schema.StringAttribute{
				MarkdownDescription: "Last address of the range (inclusive).",
				Required:            true,
				Validators:          []validator.String{ipv6Address()},
			},
		},
	}
}

func (r *poolResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	replace := []planmodifier.String{stringplanmodifier.RequiresReplace()}
	resp.Schema = schema.Schema{
		MarkdownDescription: "A pool: an IPv6 prefix on a network that floating IPs are allocated from, " +
			"with optional allocation ranges and reserved addresses. fipd cannot change a pool, so changing " +
			"any argument replaces it (which fails while addresses are allocated from it). Needs the admin token.\n\n" +
			"fipd never hands out the subnet-router anycast address, the RFC 2526 reserved anycast addresses, " +
			"and the addresses in `reserved`.\n\n" +
			"Destroying a pool waits, up to the `delete` timeout (default 5 minutes), while its released addresses " +
			"are still held (hosts confirming removal, quarantine), and up to 30 seconds while floating IPs are still " +
			"allocated from it (they may be being destroyed in the same run); after that it fails with `pool_in_use`.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "The pool's ID (a UUID).",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"network_id": schema.StringAttribute{
				MarkdownDescription: "The network the pool belongs to.",
				Required:            true,
				Validators:          []validator.String{isUUID()},
				PlanModifiers:       replace,
			},
			"cidr": schema.StringAttribute{
				MarkdownDescription: "The IPv6 prefix, /16 to /127, without host bits and written as fipd prints it " +
					"(e.g. `2001:db8:100::/64`). Must not overlap another pool of the network.",
				Required:      true,
				Validators:    []validator.String{poolCIDR(), declared("PoolCreate", "cidr")},
				PlanModifiers: replace,
			},
			"ranges": schema.SetNestedAttribute{
				MarkdownDescription: "Inclusive address ranges inside `cidr` to allocate from, not overlapping. " +
					"Default: the whole prefix (then this attribute shows that one range).",
				Optional:     true,
				Computed:     true,
				NestedObject: poolSchemaRanges(),
				PlanModifiers: []planmodifier.Set{
					setplanmodifier.UseStateForUnknown(),
					setplanmodifier.RequiresReplace(),
				},
			},
			"reserved": schema.SetAttribute{
				MarkdownDescription: "Addresses inside `cidr` never to allocate (gateways, VRRP, …). Default: none.",
				ElementType:         types.StringType,
				Optional:            true,
				Computed:            true,
				Default:             setdefault.StaticValue(types.SetValueMust(types.StringType, nil)),
				Validators:          []validator.Set{setvalidator.ValueStringsAre(ipv6Address(), declaredItems("PoolCreate", "reserved"))},
				PlanModifiers:       []planmodifier.Set{setplanmodifier.RequiresReplace()},
			},
			"description": schema.StringAttribute{
				MarkdownDescription: "Free text, at most 1024 characters. Default: empty.",
				Optional:            true,
				Computed:            true,
				Default:             stringdefault.StaticString(""),
				Validators:          []validator.String{description(), declared("PoolCreate", "description")},
				PlanModifiers:       replace,
			},
			"created_at": schema.StringAttribute{
				MarkdownDescription: "When the pool was created (RFC 3339).",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"updated_at": schema.StringAttribute{
				MarkdownDescription: "When the pool was last changed (RFC 3339).",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
		},
		Blocks: map[string]schema.Block{
			"timeouts": timeouts.Block(ctx, timeouts.Opts{Delete: true}),
		},
	}
}

// ValidateConfig checks ranges and reserved addresses against the prefix
// at plan time, as fipd would at apply time.
func (r *poolResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var cfg poolModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() || cfg.CIDR.IsNull() || cfg.CIDR.IsUnknown() {
		return
	}
	prefix, err := netip.ParsePrefix(cfg.CIDR.ValueString())
	if err != nil || checkPoolCIDR(cfg.CIDR.ValueString()) != "" {
		return // reported by the attribute's validator
	}
	if !cfg.Ranges.IsNull() && !cfg.Ranges.IsUnknown() {
		var ranges []rangeModel
		resp.Diagnostics.Append(cfg.Ranges.ElementsAs(ctx, &ranges, false)...)
		if len(ranges) == 0 {
			resp.Diagnostics.AddAttributeError(path.Root("ranges"), "Invalid ranges",
				"ranges must not be empty when given; leave it out to allocate from the whole cidr.")
		}
		validateRanges(prefix, ranges, &resp.Diagnostics)
	}
	for _, a := range listStrings(ctx, cfg.Reserved, &resp.Diagnostics) {
		if addr, err := netip.ParseAddr(a); err == nil && !prefix.Contains(addr) {
			resp.Diagnostics.AddAttributeError(path.Root("reserved"), "Invalid reserved address",
				fmt.Sprintf("%s must lie inside the pool's cidr %s.", a, prefix))
		}
	}
}

func validateRanges(prefix netip.Prefix, ranges []rangeModel, diags *diag.Diagnostics) {
	type span struct{ first, last netip.Addr }
	var spans []span
	for _, rg := range ranges {
		if rg.First.IsUnknown() || rg.Last.IsUnknown() {
			return
		}
		first, err1 := netip.ParseAddr(rg.First.ValueString())
		last, err2 := netip.ParseAddr(rg.Last.ValueString())
		if err1 != nil || err2 != nil {
			return // reported by the attribute's validator
		}
		name := fmt.Sprintf("%s-%s", first, last)
		switch {
		case first.Compare(last) > 0:
			diags.AddAttributeError(path.Root("ranges"), "Invalid range", fmt.Sprintf("range %s: first must not be greater than last.", name))
		case !prefix.Contains(first) || !prefix.Contains(last):
			diags.AddAttributeError(path.Root("ranges"), "Invalid range", fmt.Sprintf("range %s must lie inside the pool's cidr %s.", name, prefix))
		default:
			spans = append(spans, span{first, last})
		}
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].first.Less(spans[j].first) })
	for i := 1; i < len(spans); i++ {
		if spans[i].first.Compare(spans[i-1].last) <= 0 {
			diags.AddAttributeError(path.Root("ranges"), "Overlapping ranges",
				fmt.Sprintf("range %s-%s overlaps range %s-%s.", spans[i].first, spans[i].last, spans[i-1].first, spans[i-1].last))
		}
	}
}

func (r *poolResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

func (r *poolResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var plan poolModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	networkID, err := parseUUID(plan.NetworkID.ValueString())
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("network_id"), "Invalid network_id", err.Error())
		return
	}
	in := fipdapi.PoolCreate{
		NetworkId:   networkID,
		Cidr:        plan.CIDR.ValueString(),
		Description: nullable.NewNullableWithValue(plan.Description.ValueString()),
	}
	if !plan.Ranges.IsNull() && !plan.Ranges.IsUnknown() {
		var ranges []rangeModel
		resp.Diagnostics.Append(plan.Ranges.ElementsAs(ctx, &ranges, false)...)
		rs := make([]fipdapi.AddrRange, len(ranges))
		for i, rg := range ranges {
			rs[i] = fipdapi.AddrRange{First: rg.First.ValueString(), Last: rg.Last.ValueString()}
		}
		in.Ranges = nullable.NewNullableWithValue(rs)
	}
	if reserved := listStrings(ctx, plan.Reserved, &resp.Diagnostics); len(reserved) > 0 {
		in.Reserved = nullable.NewNullableWithValue(reserved)
	}
	if resp.Diagnostics.HasError() {
		return
	}
	p, err := r.client.CreatePool(ctx, in)
	if err != nil {
		addAPIError(&resp.Diagnostics, "Cannot create pool "+plan.CIDR.ValueString(), err)
		return
	}
	plan.fill(p)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *poolResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var state poolModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	p, err := r.client.GetPool(ctx, state.ID.ValueString())
	if fipdapi.IsNotFound(err) {
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		addAPIError(&resp.Diagnostics, "Cannot read pool "+state.ID.ValueString(), err)
		return
	}
	state.fill(p)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// Update is never called with a change: every argument requires replacement.
// It only carries over a new timeouts block.
func (r *poolResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state poolModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	state.Timeouts = plan.Timeouts
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// inUseGrace is how long Delete keeps retrying while floating IPs are still
// allocated from the pool. A floating IP allocated by network_id has no
// reference to its pool, so `terraform destroy` may delete both at once and
// the pool's DELETE can reach fipd first; past the grace the floating IPs
// are taken to be outside Terraform and the delete fails.
const inUseGrace = 30 * time.Second

// Delete retries while fipd answers pool_in_use only because released
// addresses are still held (hosts confirming removal, quarantine): that
// ends by itself, typically a minute after the floating IPs were destroyed.
// While floating IPs are still allocated it retries for inUseGrace only.
func (r *poolResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	if r.client == nil {
		notConfigured(&resp.Diagnostics)
		return
	}
	var state poolModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, d := state.Timeouts.Delete(ctx, 5*time.Minute)
	resp.Diagnostics.Append(d...)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	id := state.ID.ValueString()
	graceEnds := time.Now().Add(inUseGrace)
	err := retryWhile(ctx, func() (bool, error) {
		err := r.client.DeletePool(ctx, id)
		if !fipdapi.HasCode(err, "pool_in_use") {
			return false, err
		}
		usage, uerr := r.client.GetPoolUsage(ctx, id)
		if uerr != nil {
			return false, err
		}
		if usage.Allocated > 0 {
			// Being destroyed in this run, or outside Terraform.
			return time.Now().Before(graceEnds), err
		}
		return true, err // only held: wait for the quarantine
	})
	if err != nil && !fipdapi.IsNotFound(err) {
		addAPIError(&resp.Diagnostics, "Cannot delete pool "+id, err)
	}
}

func (r *poolResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}

// retryWhile calls f until it says not to retry or ctx ends, waiting 0.5 s
// doubling to 5 s between calls; it returns f's last error.
func retryWhile(ctx context.Context, f func() (retry bool, err error)) error {
	wait := 500 * time.Millisecond
	for {
		retry, err := f()
		if !retry {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(wait*2, 5*time.Second)
	}
}
