package fipdapi

// Checks the models against the OpenAPI document in the working tree, for
// the changes that break this client: a property the models use that the
// document no longer has (fipd refuses unknown request fields with 422, and
// a missing response field reads as its zero value), and a new required
// property of a request body. Additions that do not break (new optional
// fields, new endpoints, new constraints) pass; terraform/generate.sh
// brings them in.

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

var models = map[string]any{
	"AddrRange": AddrRange{}, "Binding": Binding{}, "DesiredAddress": DesiredAddress{}, "DesiredState": DesiredState{},
	"FloatingIp": FloatingIp{}, "FloatingIpCreate": FloatingIpCreate{}, "FloatingIpUpdate": FloatingIpUpdate{},
	"Host": Host{}, "HostCreate": HostCreate{}, "HostCreated": HostCreated{}, "Instance": Instance{},
	"InstanceCreate": InstanceCreate{}, "InstanceUpdate": InstanceUpdate{}, "LeaseRequest": LeaseRequest{},
	"LeaseResponse": LeaseResponse{}, "Network": Network{}, "NetworkCreate": NetworkCreate{},
	"NetworkUpdate": NetworkUpdate{}, "Pool": Pool{}, "PoolCreate": PoolCreate{}, "PoolUsage": PoolUsage{},
	"Problem": Problem{}, "RemovalRequest": RemovalRequest{}, "Report": Report{}, "ReportBatch": ReportBatch{},
	"ReportResult": ReportResult{}, "ServedNetwork": ServedNetwork{}, "Token": Token{}, "TokenCreate": TokenCreate{},
	"TokenCreated": TokenCreated{},
}

// requests are the bodies this client sends.
var requests = map[string]bool{
	"FloatingIpCreate": true, "FloatingIpUpdate": true, "HostCreate": true, "InstanceCreate": true,
	"InstanceUpdate": true, "NetworkCreate": true, "NetworkUpdate": true, "PoolCreate": true, "AddrRange": true,
	"TokenCreate": true, "LeaseRequest": true, "ReportBatch": true, "Report": true, "ServedNetwork": true,
}

type jsonSchema struct {
	Required   []string                   `json:"required"`
	Properties map[string]json.RawMessage `json:"properties"`
	AllOf      []jsonSchema               `json:"allOf"`
	Ref        string                     `json:"$ref"`
}

func TestModelsMatchTheOpenAPIDocument(t *testing.T) {
	data, err := os.ReadFile("../../../openapi/fipd.json")
	if os.IsNotExist(err) {
		t.Skip("openapi/fipd.json is not beside this module")
	}
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas map[string]jsonSchema `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	flatten := func(s jsonSchema) (map[string]bool, []string) {
		props, required := map[string]bool{}, append([]string(nil), s.Required...)
		parts := append([]jsonSchema{s}, s.AllOf...)
		for _, p := range parts {
			if p.Ref != "" {
				p = doc.Components.Schemas[strings.TrimPrefix(p.Ref, "#/components/schemas/")]
				required = append(required, p.Required...)
			} else if len(parts) > 1 {
				required = append(required, p.Required...)
			}
			for k := range p.Properties {
				props[k] = true
			}
		}
		return props, required
	}
	for name, model := range models {
		s, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("schema %s is gone from openapi/fipd.json: run terraform/generate.sh and adapt the provider", name)
			continue
		}
		props, required := flatten(s)
		fields := map[string]bool{}
		typ := reflect.TypeOf(model)
		for i := range typ.NumField() {
			tag := strings.Split(typ.Field(i).Tag.Get("json"), ",")[0]
			fields[tag] = true
			if !props[tag] {
				t.Errorf("%s.%s is no longer in openapi/fipd.json: run terraform/generate.sh and adapt the provider", name, tag)
			}
		}
		if requests[name] {
			for _, r := range required {
				if !fields[r] {
					t.Errorf("request body %s now requires %q, which the provider does not send: run terraform/generate.sh and adapt the provider", name, r)
				}
			}
		}
	}
}
