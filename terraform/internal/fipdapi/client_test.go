package fipdapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func problem(w http.ResponseWriter, status int, code, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"type": "urn:fipd:problem:" + code, "title": http.StatusText(status), "status": status,
		"detail": detail, "code": code, "request_id": "req-1",
	})
}

func testClient(t *testing.T, h http.HandlerFunc) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := New(srv.URL, "fipa_test", "test")
	if err != nil {
		t.Fatal(err)
	}
	c.RetryBase, c.RetryMax = time.Millisecond, 5*time.Millisecond
	return c
}

func TestProblemIsQuoted(t *testing.T) {
	c := testClient(t, func(w http.ResponseWriter, r *http.Request) {
		problem(w, http.StatusConflict, "pool_exhausted", "no free address is left in the pool(s)")
	})
	_, err := c.CreateFloatingIP(context.Background(), FloatingIpCreate{})
	if !HasCode(err, "pool_exhausted") || StatusOf(err) != 409 {
		t.Fatalf("got %v", err)
	}
	for _, want := range []string{"409", "pool_exhausted", "no free address is left", "req-1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not mention %q", err.Error(), want)
		}
	}
}

// 503 and 409 allocation_contention are retried; a create keeps its
// Idempotency-Key across the retries.
func TestRetriesKeepTheIdempotencyKey(t *testing.T) {
	var mu sync.Mutex
	var keys []string
	c := testClient(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		switch len(keys) {
		case 1:
			problem(w, http.StatusServiceUnavailable, "unavailable", "busy")
		case 2:
			problem(w, http.StatusConflict, "allocation_contention", "try again")
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{"id":"0190b8a2-6c1e-7d3f-8a4b-2c5d6e7f8091","name":"n","description":"",` +
				`"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}`))
		}
	})
	n, err := c.CreateNetwork(context.Background(), NetworkCreate{Name: "n"})
	if err != nil {
		t.Fatal(err)
	}
	if n.Name != "n" || len(keys) != 3 || keys[0] == "" || keys[0] != keys[1] || keys[1] != keys[2] {
		t.Fatalf("network %+v after requests with keys %q", n, keys)
	}
}

// Other conflicts are not retried.
func TestConflictsAreNotRetried(t *testing.T) {
	calls := 0
	c := testClient(t, func(w http.ResponseWriter, r *http.Request) {
		calls++
		problem(w, http.StatusConflict, "name_taken", "taken")
	})
	if _, err := c.CreateNetwork(context.Background(), NetworkCreate{Name: "n"}); !HasCode(err, "name_taken") || calls != 1 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
}

func TestIfMatchIsSent(t *testing.T) {
	var got string
	c := testClient(t, func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("If-Match")
		problem(w, http.StatusPreconditionFailed, "revision_mismatch", "the floating IP is at revision 8")
	})
	err := c.DeleteFloatingIP(context.Background(), "0190b8a2-6c1e-7d3f-8a4b-2c5d6e7f8091", 7)
	if got != `"7"` || !HasCode(err, "revision_mismatch") {
		t.Fatalf("If-Match %q, err %v", got, err)
	}
}

func TestListFollowsPages(t *testing.T) {
	c := testClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("limit") != "1000" {
			t.Errorf("limit %q", r.URL.Query().Get("limit"))
		}
		switch r.URL.Query().Get("page_token") {
		case "":
			_, _ = w.Write([]byte(`{"items":[{"id":"0190b8a2-6c1e-7d3f-8a4b-2c5d6e7f8091","project_id":"a","description":"","created_at":"2026-01-01T00:00:00Z"}],"next_page_token":"p2"}`))
		case "p2":
			_, _ = w.Write([]byte(`{"items":[{"id":"0190b8a2-6c1e-7d3f-8a4b-2c5d6e7f8092","project_id":"b","description":"","created_at":"2026-01-01T00:00:00Z"}]}`))
		}
	})
	tok, err := c.GetToken(context.Background(), "0190b8a2-6c1e-7d3f-8a4b-2c5d6e7f8092")
	if err != nil || tok.ProjectId != "b" {
		t.Fatalf("token %+v, err %v", tok, err)
	}
	if _, err := c.GetToken(context.Background(), "0190b8a2-6c1e-7d3f-8a4b-2c5d6e7f8093"); !IsNotFound(err) {
		t.Fatalf("missing token: %v", err)
	}
}

func TestEndpointMustBeHTTP(t *testing.T) {
	for _, e := range []string{"127.0.0.1:8080", "ftp://x", "http://"} {
		if _, err := New(e, "t", ""); err == nil {
			t.Errorf("New(%q) accepted", e)
		}
	}
}
