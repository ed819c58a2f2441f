package provider

// Plan-time checks that mirror fipd's own validation (api/src/domain), so a
// typo fails `terraform plan` instead of an apply half-way through. Values
// must also be written the way fipd prints them back (RFC 5952 for
// addresses, the masked prefix for CIDRs), or every plan would show a diff.

import (
	"context"
	"fmt"
	"net/netip"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"

	"github.com/fipd/terraform-provider-fipd/internal/fipdapi"
)

const (
	minPoolPrefixLen = 16
	maxPoolPrefixLen = 127
	maxNameLen       = 255
	maxProjectIDLen  = 64
	maxHostNameLen   = 253
)

// specialBlocks may never hold floating addresses (fipd refuses pools
// overlapping them).
var specialBlocks = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("::/96"), "inside ::/96 (unspecified, loopback and IPv4-compatible)"},
	{netip.MustParsePrefix("::ffff:0:0/96"), "inside ::ffff:0:0/96 (IPv4-mapped)"},
	{netip.MustParsePrefix("fe80::/10"), "link-local (fe80::/10)"},
	{netip.MustParsePrefix("ff00::/8"), "multicast (ff00::/8)"},
}

// checkPoolCIDR returns why s is not a pool prefix fipd accepts, or "".
func checkPoolCIDR(s string) string {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return "must be an IPv6 prefix such as 2001:db8::/64"
	}
	if p.Addr().Is4() || p.Addr().Is4In6() {
		return "IPv4 prefixes are not supported; give an IPv6 prefix such as 2001:db8::/64"
	}
	if p.Addr().Zone() != "" {
		return "must not carry a zone"
	}
	if p.Bits() < minPoolPrefixLen || p.Bits() > maxPoolPrefixLen {
		return fmt.Sprintf("prefix length must be between /%d and /%d", minPoolPrefixLen, maxPoolPrefixLen)
	}
	if m := p.Masked(); m != p {
		return fmt.Sprintf("has host bits set; did you mean %s?", m)
	}
	for _, b := range specialBlocks {
		if b.prefix.Overlaps(p) {
			return "is " + b.what + ", which cannot hold floating addresses"
		}
	}
	if p.String() != s {
		return fmt.Sprintf("must be written as fipd prints it: %s", p)
	}
	return ""
}

// checkIPv6 returns why s is not an IPv6 address in canonical form, or "".
func checkIPv6(s string) string {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return "must be an IPv6 address such as 2001:db8::10"
	}
	if a.Is4() || a.Is4In6() {
		return "must be an IPv6 address, not IPv4"
	}
	if a.Zone() != "" {
		return "must not carry a zone"
	}
	if a.String() != s {
		return fmt.Sprintf("must be written in canonical form (RFC 5952), as fipd prints it: %s", a)
	}
	return ""
}

func checkName(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case utf8.RuneCountInString(s) > maxNameLen:
		return fmt.Sprintf("must be at most %d characters", maxNameLen)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return "may only contain printable characters"
		}
	}
	return ""
}

func checkIdent(s string, maxLen int) string {
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > maxLen:
		return fmt.Sprintf("must be at most %d characters", maxLen)
	}
	for _, r := range s {
		ok := r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
		if !ok {
			return "may only contain ASCII letters, digits, '-', '_' and '.'"
		}
	}
	return ""
}

func checkUUID(s string) string {
	u, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return "must be a UUID such as 0190b8a2-6c1e-7d3f-8a4b-2c5d6e7f8091"
	}
	if u.String() != s {
		return fmt.Sprintf("must be written in lower case, as fipd prints it: %s", u)
	}
	return ""
}

// stringCheck adapts a check function to a framework validator.
type stringCheck struct {
	desc  string
	check func(string) string
}

func (v stringCheck) Description(context.Context) string         { return v.desc }
func (v stringCheck) MarkdownDescription(context.Context) string { return v.desc }

func (v stringCheck) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	s := req.ConfigValue.ValueString()
	if why := v.check(s); why != "" {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid "+v.desc, fmt.Sprintf("%q %s.", s, why))
	}
}

func poolCIDR() validator.String {
	return stringCheck{"IPv6 pool prefix", checkPoolCIDR}
}

func ipv6Address() validator.String {
	return stringCheck{"IPv6 address", checkIPv6}
}

func objectName() validator.String {
	return stringCheck{"name", checkName}
}

func projectID() validator.String {
	return stringCheck{"project ID", func(s string) string { return checkIdent(s, maxProjectIDLen) }}
}

func hostName() validator.String {
	return stringCheck{"host name", func(s string) string { return checkIdent(s, maxHostNameLen) }}
}

func isUUID() validator.String {
	return stringCheck{"ID", checkUUID}
}

const maxDescriptionLen = 1024

func checkDescription(s string) string {
	if utf8.RuneCountInString(s) > maxDescriptionLen {
		return fmt.Sprintf("must be at most %d characters", maxDescriptionLen)
	}
	for _, r := range s {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			return "may only contain printable characters, newlines and tabs"
		}
	}
	return ""
}

func description() validator.String {
	return stringCheck{"description", checkDescription}
}

// declared applies whatever validation keywords openapi/fipd.json declares
// for schema.property (fipdapi.SchemaConstraints, generated): the API's
// constraints reach plan time as soon as the document declares them and
// generate.sh has run, on top of the checks above.
func declared(schema, property string) validator.String {
	return stringCheck{"value (" + schema + "." + property + ")", func(s string) string {
		c, ok := fipdapi.Lookup(schema, property)
		if !ok {
			return ""
		}
		return c.CheckString(s)
	}}
}

// declaredItems is declared for the elements of an array property.
func declaredItems(schema, property string) validator.String {
	return stringCheck{"element (" + schema + "." + property + ")", func(s string) string {
		c, ok := fipdapi.Lookup(schema, property)
		if !ok || c.Items == nil {
			return ""
		}
		return c.Items.CheckString(s)
	}}
}
