package provider

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fipd/terraform-provider-fipd/internal/fipdapi"
)

// statusError is a floating IP that turned ERROR while we waited.
type statusError struct {
	fip *fipdapi.FloatingIp
}

func (e *statusError) Error() string {
	detail, _ := e.fip.StatusDetail.Get()
	if detail == "" {
		detail = "fipd gave no detail"
	}
	return fmt.Sprintf("floating IP %s (%s) is ERROR: %s", e.fip.Address, e.fip.Id, detail)
}

// waitResult is the floating IP as last read, and a warning when the wait
// was skipped.
type waitResult struct {
	fip     *fipdapi.FloatingIp
	skipped string
}

// waitForFloatingIP polls until the floating IP is ACTIVE (associated) or
// DOWN (not associated) at a revision of at least minRevision. ERROR ends
// the wait with a *statusError quoting status_detail (the host and, after a
// DAD conflict, the defender's MAC).
//
// When the intended host's agent has never connected to fipd (host state
// never_seen), nothing can apply the address yet: the wait is skipped with
// a warning instead of running into the timeout.
func waitForFloatingIP(ctx context.Context, c *fipdapi.Client, id string, minRevision int64) (waitResult, error) {
	start := time.Now()
	interval := 100 * time.Millisecond
	checkedHost := false
	var last *fipdapi.FloatingIp
	for {
		f, err := c.GetFloatingIP(ctx, id)
		if err != nil {
			if last != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return waitResult{fip: last}, timeoutError(last, start)
			}
			return waitResult{fip: last}, err
		}
		last = f
		associated := f.InstanceId.IsSpecified() && !f.InstanceId.IsNull()
		want := fipdapi.FloatingIpStatusDOWN
		if associated {
			want = fipdapi.FloatingIpStatusACTIVE
		}
		switch {
		case f.Revision >= minRevision && f.Status == want:
			return waitResult{fip: f}, nil
		case f.Status == fipdapi.FloatingIpStatusERROR:
			return waitResult{fip: f}, &statusError{fip: f}
		}
		if associated && !checkedHost {
			checkedHost = true
			if host, err := f.Host.Get(); err == nil {
				if state := hostState(ctx, c, host); state == "never_seen" {
					return waitResult{fip: f, skipped: fmt.Sprintf(
						"Host %s has never been seen by fipd: no fip-agent has connected for it yet, so floating IP %s "+
							"stays %s until one does. Terraform did not wait for ACTIVE. Start the agent "+
							"(fip-agent run --token-file … with the host's token) and check `status` with terraform refresh.",
						host, f.Address, f.Status)}, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return waitResult{fip: f}, timeoutError(f, start)
		case <-time.After(interval):
		}
		interval = min(interval*2, 2*time.Second)
	}
}

func timeoutError(f *fipdapi.FloatingIp, start time.Time) error {
	host, _ := f.Host.Get()
	detail, _ := f.StatusDetail.Get()
	msg := fmt.Sprintf("timed out after %s waiting for floating IP %s (%s) to be applied: it is still %s at revision %d",
		time.Since(start).Round(time.Second), f.Address, f.Id, f.Status, f.Revision)
	if host != "" {
		msg += " (intended host " + host + ")"
	}
	if detail != "" {
		msg += ": " + detail
	}
	return errors.New(msg + ". Is the host's fip-agent running? Raise the timeouts block's create/update to wait longer.")
}

// hostState is the named host's state, or "" when it cannot be read (a
// project token may not list hosts).
func hostState(ctx context.Context, c *fipdapi.Client, name string) string {
	hosts, err := c.ListHosts(ctx)
	if err != nil {
		return ""
	}
	for _, h := range hosts {
		if h.Name == name {
			return h.State
		}
	}
	return ""
}
