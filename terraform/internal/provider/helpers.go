package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/oapi-codegen/nullable"

	"github.com/fipd/terraform-provider-fipd/internal/fipdapi"
)

// clientFrom extracts the client that Configure stored. nil data means the
// provider is not configured yet (validation); callers then do nothing.
func clientFrom(data any, diags *diag.Diagnostics) *fipdapi.Client {
	if data == nil {
		return nil
	}
	c, ok := data.(*fipdapi.Client)
	if !ok {
		diags.AddError("Unexpected provider data", fmt.Sprintf("expected *fipdapi.Client, got %T; this is a bug in the provider", data))
		return nil
	}
	return c
}

func notConfigured(diags *diag.Diagnostics) {
	diags.AddError("Provider not configured",
		"The fipd provider has no client: its endpoint or token is not known yet. Set them to values known at plan time.")
}

// addAPIError turns an API error into a diagnostic that quotes fipd's
// detail and stable code, with a hint for the codes users can act on.
func addAPIError(diags *diag.Diagnostics, summary string, err error) {
	var e *fipdapi.APIError
	if !errors.As(err, &e) {
		diags.AddError(summary, err.Error())
		return
	}
	var b strings.Builder
	if e.Detail != "" {
		fmt.Fprintf(&b, "fipd: %s\n", e.Detail)
	}
	fmt.Fprintf(&b, "code: %s (HTTP %d on %s %s", nonEmpty(e.Code, "none"), e.Status, e.Method, e.Path)
	if e.RequestID != "" {
		fmt.Fprintf(&b, ", request_id %s", e.RequestID)
	}
	b.WriteString(")")
	if hint := hintFor(e.Code); hint != "" {
		b.WriteString("\n\n" + hint)
	}
	diags.AddError(summary, b.String())
}

func hintFor(code string) string {
	switch code {
	case "revision_mismatch":
		return "The object was changed outside Terraform since it was last read. Run `terraform apply -refresh-only` " +
			"(or `terraform refresh`) to see the change, then plan and apply again."
	case "pool_exhausted":
		return "No free address is left: add a pool or widen its ranges, or release floating IPs. " +
			"Released addresses return to the pool only after hosts confirm removal and the quarantine has passed."
	case "address_in_use":
		return "Pick another address, or leave `address` out to get a free one."
	case "name_taken":
		return "Names are unique; import the existing object (`terraform import`) or choose another name."
	case "forbidden":
		return "This operation needs the admin token; project tokens manage only their project's floating IPs and instances."
	case "unauthenticated":
		return "fipd refused the token: check the provider's token (or FIPD_TOKEN)."
	}
	return ""
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func formatTime(t time.Time) types.String {
	if t.IsZero() {
		return types.StringNull()
	}
	return types.StringValue(t.UTC().Format(time.RFC3339Nano))
}

func parseUUID(s string) (fipdapi.UUID, error) {
	u, err := uuid.Parse(s)
	if err != nil {
		return u, fmt.Errorf("%q is not a UUID", s)
	}
	return u, nil
}

// uuidString prints IDs the way fipd does (lower case, hyphenated).
func uuidString(u fipdapi.UUID) string { return u.String() }

func nullableString(n nullable.Nullable[string]) types.String {
	if v, err := n.Get(); err == nil {
		return types.StringValue(v)
	}
	return types.StringNull()
}

func nullableUUID(n nullable.Nullable[fipdapi.UUID]) types.String {
	if v, err := n.Get(); err == nil {
		return types.StringValue(v.String())
	}
	return types.StringNull()
}

func stringList(values []string) types.List {
	elems := make([]attr.Value, len(values))
	for i, v := range values {
		elems[i] = types.StringValue(v)
	}
	return types.ListValueMust(types.StringType, elems)
}

func stringSet(values []string) types.Set {
	elems := make([]attr.Value, len(values))
	for i, v := range values {
		elems[i] = types.StringValue(v)
	}
	return types.SetValueMust(types.StringType, elems)
}

func uuidList(values []fipdapi.UUID) types.List {
	s := make([]string, len(values))
	for i, v := range values {
		s[i] = v.String()
	}
	return stringList(s)
}

// listStrings reads a list or set of strings from the plan; null and
// unknown give nil.
func listStrings(ctx context.Context, v interface {
	IsNull() bool
	IsUnknown() bool
	ElementsAs(context.Context, any, bool) diag.Diagnostics
}, diags *diag.Diagnostics) []string {
	if v.IsNull() || v.IsUnknown() {
		return nil
	}
	var out []string
	diags.Append(v.ElementsAs(ctx, &out, false)...)
	return out
}
