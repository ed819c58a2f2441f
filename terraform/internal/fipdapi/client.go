// Hand-written transport for the models generated in models.gen.go: bearer
// auth, problem+json errors, retries with backoff, If-Match and ETags,
// idempotency keys on creates and pagination.

package fipdapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client talks to one fipd. It is safe for concurrent use.
type Client struct {
	base      *url.URL
	token     string
	http      *http.Client
	userAgent string

	// Retries is how many times a request is repeated after a retryable
	// answer (503, 409 allocation_contention or idempotency_in_progress,
	// a connection error); RetryBase is the first wait, doubled each time
	// up to RetryMax, with jitter.
	Retries   int
	RetryBase time.Duration
	RetryMax  time.Duration
}

// New returns a client for the fipd at endpoint (http:// or https://).
func New(endpoint, token, userAgent string) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(endpoint, "/"))
	if err != nil {
		return nil, fmt.Errorf("endpoint %q is not a URL: %w", endpoint, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("endpoint %q must start with http:// or https://", endpoint)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("endpoint %q has no host", endpoint)
	}
	return &Client{
		base:      u,
		token:     token,
		http:      &http.Client{Timeout: 60 * time.Second},
		userAgent: userAgent,
		Retries:   8,
		RetryBase: 200 * time.Millisecond,
		RetryMax:  5 * time.Second,
	}, nil
}

// Endpoint is the base URL the client was made for.
func (c *Client) Endpoint() string { return c.base.String() }

// APIError is an answer from fipd that is not a success: its problem document
// (RFC 9457) when it sent one.
type APIError struct {
	Method    string
	Path      string
	Status    int
	Code      string
	Detail    string
	RequestID string
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: fipd answered %d", e.Method, e.Path, e.Status)
	if e.Code != "" {
		fmt.Fprintf(&b, " %s", e.Code)
	}
	if e.Detail != "" {
		fmt.Fprintf(&b, ": %s", e.Detail)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " (request_id %s)", e.RequestID)
	}
	return b.String()
}

// IsNotFound is true for a 404: the object does not exist (or is not
// visible to this token, which fipd does not distinguish).
func IsNotFound(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// HasCode is true when err is a problem with that stable code.
func HasCode(err error, code string) bool {
	var e *APIError
	return errors.As(err, &e) && e.Code == code
}

// StatusOf returns the HTTP status of an API error, or 0.
func StatusOf(err error) int {
	var e *APIError
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

type request struct {
	method  string
	path    string
	query   url.Values
	body    any
	ifMatch string
	// idempotent marks POSTs that carry an Idempotency-Key, so they are safe
	// to repeat after a connection error.
	idempotencyKey string
}

// response is what a successful request gives back besides its body.
type response struct {
	etag string
}

func retryableMethod(r *request) bool {
	switch r.method {
	case http.MethodGet, http.MethodDelete, http.MethodPatch:
		return true
	}
	return r.idempotencyKey != ""
}

func (c *Client) do(ctx context.Context, r *request, out any) (*response, error) {
	var payload []byte
	if r.body != nil {
		var err error
		if payload, err = json.Marshal(r.body); err != nil {
			return nil, fmt.Errorf("encoding the request body: %w", err)
		}
	}
	u := *c.base
	u.Path = strings.TrimRight(c.base.Path, "/") + r.path
	if len(r.query) > 0 {
		u.RawQuery = r.query.Encode()
	}
	for attempt := 0; ; attempt++ {
		resp, err := c.once(ctx, r, u.String(), payload, out)
		if err == nil {
			return resp, nil
		}
		if attempt >= c.Retries || !c.retryable(r, err) {
			return nil, err
		}
		wait := c.backoff(attempt)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (gave up retrying: %v)", err, ctx.Err())
		case <-time.After(wait):
		}
	}
}

func (c *Client) retryable(r *request, err error) bool {
	var e *APIError
	if errors.As(err, &e) {
		switch {
		case e.Status == http.StatusServiceUnavailable, e.Status == http.StatusTooManyRequests:
			return true
		case e.Status == http.StatusConflict:
			return e.Code == "allocation_contention" || e.Code == "idempotency_in_progress"
		}
		return false
	}
	// Transport errors: repeat only what is safe to repeat.
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return retryableMethod(r)
	}
	return false
}

func (c *Client) backoff(attempt int) time.Duration {
	d := float64(c.RetryBase) * math.Pow(2, float64(attempt))
	if d > float64(c.RetryMax) {
		d = float64(c.RetryMax)
	}
	// Full jitter on the upper half, so two clients racing for the same
	// pool do not collide again in lock step.
	return time.Duration(d/2 + mrand.Float64()*d/2)
}

func (c *Client) once(ctx context.Context, r *request, target string, payload []byte, out any) (*response, error) {
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, target, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.ifMatch != "" {
		req.Header.Set("If-Match", r.ifMatch)
	}
	if r.idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", r.idempotencyKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		return nil, problemError(r, resp, data)
	}
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.Unmarshal(data, out); err != nil {
			return nil, fmt.Errorf("%s %s: decoding fipd's answer: %w", r.method, r.path, err)
		}
	}
	return &response{etag: resp.Header.Get("ETag")}, nil
}

func problemError(r *request, resp *http.Response, data []byte) error {
	e := &APIError{Method: r.method, Path: r.path, Status: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id")}
	var p Problem
	if json.Unmarshal(data, &p) == nil && p.Code != "" {
		e.Code, e.Detail = p.Code, p.Detail
		if p.RequestId != "" {
			e.RequestID = p.RequestId
		}
	} else {
		text := strings.TrimSpace(string(data))
		if len(text) > 200 {
			text = text[:200] + "…"
		}
		e.Detail = text
	}
	return e
}

// newIdempotencyKey makes a key for one logical create; its retries reuse it.
func newIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "tf-" + hex.EncodeToString(b[:])
}

// Revision parses an ETag of the form "12" (quoted decimal).
func Revision(etag string) (int64, bool) {
	n, err := strconv.ParseInt(strings.Trim(strings.TrimPrefix(etag, "W/"), `"`), 10, 64)
	return n, err == nil
}

// IfMatch formats a revision for the If-Match header.
func IfMatch(revision int64) string { return `"` + strconv.FormatInt(revision, 10) + `"` }
