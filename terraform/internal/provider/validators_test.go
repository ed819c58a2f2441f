package provider

import (
	"strings"
	"testing"

	"github.com/fipd/terraform-provider-fipd/internal/fipdapi"
)

func TestCheckPoolCIDR(t *testing.T) {
	for in, want := range map[string]string{
		"2001:db8:100::/64":   "",
		"2001:db8::/127":      "",
		"2001::/16":           "",
		"2000::/15":           "prefix length",
		"2001:db8::/128":      "prefix length",
		"2001:db8::1/64":      "did you mean 2001:db8::/64?",
		"10.0.0.0/8":          "IPv4",
		"::ffff:10.0.0.0/104": "IPv4",
		"fe80::/64":           "link-local",
		"ff02::/16":           "multicast",
		"::/100":              "::/96",
		"2001:DB8::/64":       "as fipd prints it: 2001:db8::/64",
		"2001:db8::":          "must be an IPv6 prefix",
		"2001:db8::/+64":      "must be an IPv6 prefix",
	} {
		got := checkPoolCIDR(in)
		if (want == "") != (got == "") || !strings.Contains(got, want) {
			t.Errorf("checkPoolCIDR(%q) = %q, want it to contain %q", in, got, want)
		}
	}
}

func TestCheckIPv6(t *testing.T) {
	for in, want := range map[string]string{
		"2001:db8::10":           "",
		"2001:db8:100:0:ffff::1": "",
		"2001:0db8::10":          "canonical form (RFC 5952), as fipd prints it: 2001:db8::10",
		"2001:db8:0:0:0:0:0:10":  "canonical",
		"192.0.2.1":              "not IPv4",
		"::ffff:192.0.2.1":       "not IPv4",
		"fe80::1%eth0":           "zone",
		"2001:db8::/64":          "must be an IPv6 address",
	} {
		got := checkIPv6(in)
		if (want == "") != (got == "") || !strings.Contains(got, want) {
			t.Errorf("checkIPv6(%q) = %q, want it to contain %q", in, got, want)
		}
	}
}

func TestCheckNamesAndIDs(t *testing.T) {
	cases := []struct {
		check func(string) string
		in    string
		ok    bool
	}{
		{checkName, "prod link 1", true},
		{checkName, "", false},
		{checkName, strings.Repeat("ä", 255), true},
		{checkName, strings.Repeat("a", 256), false},
		{checkName, "a\tb", false},
		{func(s string) string { return checkIdent(s, maxProjectIDLen) }, "team-a.prod_1", true},
		{func(s string) string { return checkIdent(s, maxProjectIDLen) }, "team a", false},
		{func(s string) string { return checkIdent(s, maxProjectIDLen) }, strings.Repeat("a", 65), false},
		{func(s string) string { return checkIdent(s, maxHostNameLen) }, "compute-1.example.org", true},
		{func(s string) string { return checkIdent(s, maxHostNameLen) }, "compüte", false},
		{checkUUID, "0190b8a2-6c1e-7d3f-8a4b-2c5d6e7f8091", true},
		{checkUUID, "0190B8A2-6C1E-7D3F-8A4B-2C5D6E7F8091", false},
		{checkUUID, "{0190b8a2-6c1e-7d3f-8a4b-2c5d6e7f8091}", false},
		{checkDescription, "line\nline\ttab", true},
		{checkDescription, "bell\a", false},
		{checkDescription, strings.Repeat("x", 1025), false},
	}
	for _, c := range cases {
		if got := c.check(c.in); (got == "") != c.ok {
			t.Errorf("check(%q) = %q, want ok=%v", c.in, got, c.ok)
		}
	}
}

// A constraint that appears in the OpenAPI document is checked at plan time.
func TestDeclaredConstraints(t *testing.T) {
	const schema = "TestOnlySchema"
	fipdapi.SchemaConstraints[schema] = map[string]fipdapi.Constraint{
		"name": {MaxLength: ptr(int64(5)), Pattern: "^[a-z]+$"},
		"ids":  {Items: &fipdapi.Constraint{MinLength: ptr(int64(3))}},
	}
	t.Cleanup(func() { delete(fipdapi.SchemaConstraints, schema) })
	name := declared(schema, "name").(stringCheck)
	if why := name.check("abc"); why != "" {
		t.Errorf("abc: %s", why)
	}
	if why := name.check("abcdefg"); !strings.Contains(why, "at most 5 characters") {
		t.Errorf("abcdefg: %q", why)
	}
	if why := name.check("ABC"); !strings.Contains(why, "must match the pattern ^[a-z]+$") {
		t.Errorf("ABC: %q", why)
	}
	if why := declaredItems(schema, "ids").(stringCheck).check("ab"); !strings.Contains(why, "at least 3") {
		t.Errorf("ab: %q", why)
	}
	if why := declared(schema, "other").(stringCheck).check("anything"); why != "" {
		t.Errorf("undeclared: %q", why)
	}
}

func ptr[T any](v T) *T { return &v }
