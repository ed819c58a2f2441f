package fipdapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	openapi_types "github.com/oapi-codegen/runtime/types"
)

// UUID is the generated models' type for IDs.
type UUID = openapi_types.UUID

// pageSize is the largest page fipd serves.
const pageSize = "1000"

// listAll follows next_page_token until the last page.
func listAll[T any](ctx context.Context, c *Client, path string, q url.Values) ([]T, error) {
	if q == nil {
		q = url.Values{}
	}
	q.Set("limit", pageSize)
	var all []T
	// Bounded: a million objects at 1000 a page.
	for range 1000 {
		var page struct {
			Items         []T     `json:"items"`
			NextPageToken *string `json:"next_page_token"`
		}
		if _, err := c.do(ctx, &request{method: http.MethodGet, path: path, query: q}, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Items...)
		if page.NextPageToken == nil || *page.NextPageToken == "" {
			return all, nil
		}
		q.Set("page_token", *page.NextPageToken)
	}
	return nil, fmt.Errorf("GET %s: more than 1000 pages", path)
}

func esc(id string) string { return url.PathEscape(id) }

// ---- probe -------------------------------------------------------------------

// Probe checks that the endpoint is a fipd and that the token is accepted:
// /healthz answers "ok", /openapi.json is titled "fipd", and an
// authenticated read works.
func (c *Client) Probe(ctx context.Context) error {
	var doc struct {
		OpenAPI string `json:"openapi"`
		Info    struct {
			Title   string `json:"title"`
			Version string `json:"version"`
		} `json:"info"`
	}
	if _, err := c.do(ctx, &request{method: http.MethodGet, path: "/openapi.json"}, &doc); err != nil {
		return fmt.Errorf("%s does not answer as fipd: %w", c.Endpoint(), err)
	}
	if doc.Info.Title != "fipd" {
		return fmt.Errorf("%s does not answer as fipd: its /openapi.json is titled %q, not \"fipd\"", c.Endpoint(), doc.Info.Title)
	}
	if _, err := c.do(ctx, &request{method: http.MethodGet, path: "/healthz"}, nil); err != nil {
		return fmt.Errorf("%s is not healthy: %w", c.Endpoint(), err)
	}
	q := url.Values{"limit": {"1"}}
	var page json.RawMessage
	if _, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/networks", query: q}, &page); err != nil {
		if StatusOf(err) == http.StatusUnauthorized {
			return fmt.Errorf("fipd at %s refused the token (it must be an admin token, fipa_…, or a project token, fipp_…): %w", c.Endpoint(), err)
		}
		return err
	}
	return nil
}

// ---- networks ------------------------------------------------------------------

func (c *Client) CreateNetwork(ctx context.Context, in NetworkCreate) (*Network, error) {
	var out Network
	_, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/networks", body: in, idempotencyKey: newIdempotencyKey()}, &out)
	return &out, err
}

func (c *Client) GetNetwork(ctx context.Context, id string) (*Network, error) {
	var out Network
	_, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/networks/" + esc(id)}, &out)
	return &out, err
}

func (c *Client) UpdateNetwork(ctx context.Context, id string, in NetworkUpdate) (*Network, error) {
	var out Network
	_, err := c.do(ctx, &request{method: http.MethodPatch, path: "/v1/networks/" + esc(id), body: in}, &out)
	return &out, err
}

func (c *Client) DeleteNetwork(ctx context.Context, id string) error {
	_, err := c.do(ctx, &request{method: http.MethodDelete, path: "/v1/networks/" + esc(id)}, nil)
	return err
}

// ListNetworks lists networks, only the one with that name when name is set.
func (c *Client) ListNetworks(ctx context.Context, name string) ([]Network, error) {
	q := url.Values{}
	if name != "" {
		q.Set("name", name)
	}
	return listAll[Network](ctx, c, "/v1/networks", q)
}

// ---- pools -----------------------------------------------------------------------

func (c *Client) CreatePool(ctx context.Context, in PoolCreate) (*Pool, error) {
	var out Pool
	_, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/pools", body: in, idempotencyKey: newIdempotencyKey()}, &out)
	return &out, err
}

func (c *Client) GetPool(ctx context.Context, id string) (*Pool, error) {
	var out Pool
	_, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/pools/" + esc(id)}, &out)
	return &out, err
}

func (c *Client) GetPoolUsage(ctx context.Context, id string) (*PoolUsage, error) {
	var out PoolUsage
	_, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/pools/" + esc(id) + "/usage"}, &out)
	return &out, err
}

func (c *Client) DeletePool(ctx context.Context, id string) error {
	_, err := c.do(ctx, &request{method: http.MethodDelete, path: "/v1/pools/" + esc(id)}, nil)
	return err
}

// ListPools lists pools, of one network when networkID is set.
func (c *Client) ListPools(ctx context.Context, networkID string) ([]Pool, error) {
	q := url.Values{}
	if networkID != "" {
		q.Set("network_id", networkID)
	}
	return listAll[Pool](ctx, c, "/v1/pools", q)
}

// ---- hosts -----------------------------------------------------------------------

func (c *Client) CreateHost(ctx context.Context, in HostCreate) (*HostCreated, error) {
	var out HostCreated
	_, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/hosts", body: in, idempotencyKey: newIdempotencyKey()}, &out)
	return &out, err
}

func (c *Client) GetHost(ctx context.Context, id string) (*Host, error) {
	var out Host
	_, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/hosts/" + esc(id)}, &out)
	return &out, err
}

func (c *Client) DeleteHost(ctx context.Context, id string) error {
	_, err := c.do(ctx, &request{method: http.MethodDelete, path: "/v1/hosts/" + esc(id)}, nil)
	return err
}

func (c *Client) ListHosts(ctx context.Context) ([]Host, error) {
	return listAll[Host](ctx, c, "/v1/hosts", nil)
}

// ---- project tokens ----------------------------------------------------------------

func (c *Client) CreateToken(ctx context.Context, in TokenCreate) (*TokenCreated, error) {
	var out TokenCreated
	_, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/tokens", body: in, idempotencyKey: newIdempotencyKey()}, &out)
	return &out, err
}

// GetToken finds a token by ID. fipd has no GET /v1/tokens/{id}, so this
// pages through the list; a missing token is a 404 *APIError like the others.
func (c *Client) GetToken(ctx context.Context, id string) (*Token, error) {
	all, err := listAll[Token](ctx, c, "/v1/tokens", nil)
	if err != nil {
		return nil, err
	}
	for i := range all {
		if strings.EqualFold(all[i].Id.String(), id) {
			return &all[i], nil
		}
	}
	return nil, &APIError{Method: http.MethodGet, Path: "/v1/tokens", Status: http.StatusNotFound, Code: "not_found", Detail: "no token with id " + id}
}

func (c *Client) DeleteToken(ctx context.Context, id string) error {
	_, err := c.do(ctx, &request{method: http.MethodDelete, path: "/v1/tokens/" + esc(id)}, nil)
	return err
}

// ---- instances ---------------------------------------------------------------------

func (c *Client) CreateInstance(ctx context.Context, in InstanceCreate) (*Instance, error) {
	var out Instance
	_, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/instances", body: in, idempotencyKey: newIdempotencyKey()}, &out)
	return &out, err
}

func (c *Client) GetInstance(ctx context.Context, id string) (*Instance, error) {
	var out Instance
	_, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/instances/" + esc(id)}, &out)
	return &out, err
}

func (c *Client) UpdateInstance(ctx context.Context, id string, in InstanceUpdate) (*Instance, error) {
	var out Instance
	_, err := c.do(ctx, &request{method: http.MethodPatch, path: "/v1/instances/" + esc(id), body: in}, &out)
	return &out, err
}

func (c *Client) DeleteInstance(ctx context.Context, id string) error {
	_, err := c.do(ctx, &request{method: http.MethodDelete, path: "/v1/instances/" + esc(id)}, nil)
	return err
}

// ---- floating IPs --------------------------------------------------------------------

// FloatingIPFilter holds the list filters fipd supports; empty means any.
type FloatingIPFilter struct {
	NetworkID  string
	PoolID     string
	ProjectID  string
	InstanceID string
	Status     string
	Address    string
}

func (c *Client) CreateFloatingIP(ctx context.Context, in FloatingIpCreate) (*FloatingIp, error) {
	var out FloatingIp
	_, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/floating-ips", body: in, idempotencyKey: newIdempotencyKey()}, &out)
	return &out, err
}

func (c *Client) GetFloatingIP(ctx context.Context, id string) (*FloatingIp, error) {
	var out FloatingIp
	_, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/floating-ips/" + esc(id)}, &out)
	return &out, err
}

// UpdateFloatingIP sends a PATCH with If-Match: "revision" (412
// revision_mismatch when it changed meanwhile); revision < 0 sends none.
func (c *Client) UpdateFloatingIP(ctx context.Context, id string, revision int64, in FloatingIpUpdate) (*FloatingIp, error) {
	var out FloatingIp
	r := &request{method: http.MethodPatch, path: "/v1/floating-ips/" + esc(id), body: in}
	if revision >= 0 {
		r.ifMatch = IfMatch(revision)
	}
	_, err := c.do(ctx, r, &out)
	return &out, err
}

// DeleteFloatingIP releases a floating IP, with If-Match like the update.
func (c *Client) DeleteFloatingIP(ctx context.Context, id string, revision int64) error {
	r := &request{method: http.MethodDelete, path: "/v1/floating-ips/" + esc(id)}
	if revision >= 0 {
		r.ifMatch = IfMatch(revision)
	}
	_, err := c.do(ctx, r, nil)
	return err
}

func (c *Client) ListFloatingIPs(ctx context.Context, f FloatingIPFilter) ([]FloatingIp, error) {
	q := url.Values{}
	for k, v := range map[string]string{
		"network_id": f.NetworkID, "pool_id": f.PoolID, "project_id": f.ProjectID,
		"instance_id": f.InstanceID, "status": f.Status, "address": f.Address,
	} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return listAll[FloatingIp](ctx, c, "/v1/floating-ips", q)
}

// ---- agent protocol (used by the acceptance tests' fake agent) ------------------------

func (c *Client) AgentLease(ctx context.Context, in LeaseRequest) (*LeaseResponse, error) {
	var out LeaseResponse
	_, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/agent/lease", body: in}, &out)
	return &out, err
}

func (c *Client) AgentDesiredState(ctx context.Context, after, waitMS int64) (*DesiredState, error) {
	q := url.Values{"after": {fmt.Sprint(after)}, "wait_ms": {fmt.Sprint(waitMS)}}
	var out DesiredState
	_, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/agent/desired-state", query: q}, &out)
	return &out, err
}

func (c *Client) AgentReports(ctx context.Context, in ReportBatch) (*ReportResult, error) {
	var out ReportResult
	_, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/agent/reports", body: in}, &out)
	return &out, err
}
