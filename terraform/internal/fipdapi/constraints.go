package fipdapi

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
)

// Constraint holds the JSON Schema validation keywords of one property
// (constraints.gen.go has them all, generated from the OpenAPI document).
type Constraint struct {
	MinLength, MaxLength *int64
	Pattern              string
	Minimum, Maximum     *float64
	MinItems, MaxItems   *int64
	Enum                 []string
	Items                *Constraint
}

func ptr[T any](v T) *T { return &v }

// Lookup returns the declared constraints of schema.property, if any.
func Lookup(schema, property string) (Constraint, bool) {
	c, ok := SchemaConstraints[schema][property]
	return c, ok
}

// CheckString returns why s violates the constraint, or "". Lengths count
// characters (code points), as JSON Schema does; a pattern Go's regexp
// cannot compile is skipped (fipd still checks it).
func (c Constraint) CheckString(s string) string {
	n := int64(utf8.RuneCountInString(s))
	var why []string
	if c.MinLength != nil && n < *c.MinLength {
		why = append(why, fmt.Sprintf("must be at least %d characters", *c.MinLength))
	}
	if c.MaxLength != nil && n > *c.MaxLength {
		why = append(why, fmt.Sprintf("must be at most %d characters", *c.MaxLength))
	}
	if c.Pattern != "" {
		if re, err := regexp.Compile(c.Pattern); err == nil && !re.MatchString(s) {
			why = append(why, fmt.Sprintf("must match the pattern %s", c.Pattern))
		}
	}
	if len(c.Enum) > 0 && !slices.Contains(c.Enum, s) {
		why = append(why, "must be one of "+strings.Join(c.Enum, ", "))
	}
	return strings.Join(why, "; ")
}

// CheckInt returns why v violates the constraint, or "".
func (c Constraint) CheckInt(v int64) string {
	switch {
	case c.Minimum != nil && float64(v) < *c.Minimum:
		return fmt.Sprintf("must be at least %v", *c.Minimum)
	case c.Maximum != nil && float64(v) > *c.Maximum:
		return fmt.Sprintf("must be at most %v", *c.Maximum)
	}
	return ""
}

// CheckItems returns why a list of that many elements violates the
// constraint, or "".
func (c Constraint) CheckItems(n int) string {
	switch {
	case c.MinItems != nil && int64(n) < *c.MinItems:
		return fmt.Sprintf("must have at least %d elements", *c.MinItems)
	case c.MaxItems != nil && int64(n) > *c.MaxItems:
		return fmt.Sprintf("must have at most %d elements", *c.MaxItems)
	}
	return ""
}
