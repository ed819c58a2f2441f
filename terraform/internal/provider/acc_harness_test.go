package provider

// The acceptance tests' world: a real fipd on SQLite, started per test on a
// free loopback port and stopped when the test ends (also when it fails),
// and a fake agent that plays a host's fip-agent over HTTP.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/fipd/terraform-provider-fipd/internal/fipdapi"
)

var testAccProviders = map[string]func() (tfprotov6.ProviderServer, error){
	"fipd": providerserver.NewProtocol6WithError(New("test")()),
}

func TestMain(m *testing.M) {
	// OpenTofu resolves the implicit provider address "fipd" to its own
	// registry host; the reattached test provider must be named the same.
	if tf := os.Getenv("TF_ACC_TERRAFORM_PATH"); strings.Contains(filepath.Base(tf), "tofu") {
		if os.Getenv("TF_ACC_PROVIDER_HOST") == "" {
			os.Setenv("TF_ACC_PROVIDER_HOST", "registry.opentofu.org")
		}
		if os.Getenv("TF_ACC_PROVIDER_NAMESPACE") == "" {
			os.Setenv("TF_ACC_PROVIDER_NAMESPACE", "hashicorp")
		}
	}
	os.Exit(m.Run())
}

// fipdBinary is $FIPD_BIN, or target/debug/fipd of the Cargo workspace this
// module sits in.
func fipdBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("FIPD_BIN"); bin != "" {
		return bin
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := os.Stat(filepath.Join(dir, "Cargo.toml")); err == nil {
			bin := filepath.Join(dir, "target", "debug", "fipd")
			if _, err := os.Stat(bin); err != nil {
				t.Fatalf("%s is missing: build it with `cargo build -p fipd` (terraform/test.sh does) or set FIPD_BIN", bin)
			}
			return bin
		}
		dir = filepath.Dir(dir)
	}
	t.Fatal("cannot find the fipd workspace above the working directory: set FIPD_BIN")
	return ""
}

type fipdServer struct {
	URL   string
	Token string
	api   *fipdapi.Client
}

// startFipd runs `fipd serve` on 127.0.0.1:0 with a fresh data directory;
// it is stopped (SIGTERM, then SIGKILL) when the test ends.
func startFipd(t *testing.T) *fipdServer {
	t.Helper()
	token := "fipa_acctest_" + strings.ReplaceAll(t.Name(), "/", "_")
	dataDir := t.TempDir()
	logPath := filepath.Join(dataDir, "fipd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(fipdBinary(t), "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir,
		"--admin-token", token, "--quarantine-ms", "0")
	cmd.Env = append(os.Environ(), "FIPD_LOG=warn")
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test binary
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting fipd: %v", err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logFile.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil && len(b) > 0 {
				t.Logf("fipd's log:\n%s", tail(string(b), 4000))
			}
		}
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "fipd listening on "); ok {
				addr <- strings.TrimSpace(rest)
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		close(done)
	}()
	var url string
	select {
	case url = <-addr:
	case <-done:
		b, _ := os.ReadFile(logPath)
		t.Fatalf("fipd exited before listening:\n%s", tail(string(b), 4000))
	case <-time.After(30 * time.Second):
		t.Fatal("fipd did not print its address within 30 s")
	}
	api, err := fipdapi.New(url, token, "acctest")
	if err != nil {
		t.Fatal(err)
	}
	return &fipdServer{URL: url, Token: token, api: api}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// providerConfig is the provider block pointing at this fipd.
func (s *fipdServer) providerConfig() string {
	return fmt.Sprintf("provider \"fipd\" {\n  endpoint = %q\n  token    = %q\n}\n", s.URL, s.Token)
}

// accPreCheck skips unless TF_ACC is set (resource.Test would skip too,
// but only after startFipd).
func accPreCheck(t *testing.T) {
	t.Helper()
	if os.Getenv("TF_ACC") == "" {
		t.Skip("acceptance tests run with TF_ACC=1 (see terraform/test.sh)")
	}
}

// stateAttr reads an attribute of a resource from a test step's state.
func stateAttr(s *terraform.State, address, name string) (string, error) {
	rs, ok := s.RootModule().Resources[address]
	if !ok {
		return "", fmt.Errorf("%s is not in the state", address)
	}
	v, ok := rs.Primary.Attributes[name]
	if !ok {
		return "", fmt.Errorf("%s has no attribute %s", address, name)
	}
	return v, nil
}

// ---- fake agent -------------------------------------------------------------

// agentMode is how the fake agent answers an address it is asked to hold.
type agentMode string

const (
	agentActive    agentMode = "active"     // DAD passed, announced
	agentDADFailed agentMode = "dad_failed" // another node defends the address
)

// defenderMAC is what the fake agent reports as the defending node.
const defenderMAC = "02:00:5e:00:53:99"

type fakeAgent struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startFakeAgent plays fip-agent for the host whose token is given: it holds
// the lease, long-polls the desired state and reports every address as mode
// says and every removal as done. It stops when the test ends.
func startFakeAgent(t *testing.T, s *fipdServer, hostToken, network string, mode agentMode) error {
	c, err := fipdapi.New(s.URL, hostToken, "fake-agent")
	if err != nil {
		return err
	}
	lease := fipdapi.LeaseRequest{
		AgentVersion: "fake-agent/acctest",
		Networks:     []fipdapi.ServedNetwork{{Network: network, Interface: "eth9"}},
	}
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := c.AgentLease(ctx, lease); err != nil {
		cancel()
		return fmt.Errorf("fake agent lease: %w", err)
	}
	a := &fakeAgent{cancel: cancel}
	t.Cleanup(func() {
		a.cancel()
		a.wg.Wait()
	})
	a.wg.Add(2)
	go func() { // the lease: fipd's default TTL is 10 s
		defer a.wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(2 * time.Second):
			}
			_, _ = c.AgentLease(ctx, lease)
		}
	}()
	go func() {
		defer a.wg.Done()
		var after int64
		reported := map[string]bool{} // "fip/revision/state" already sent
		for ctx.Err() == nil {
			ds, err := c.AgentDesiredState(ctx, after, 2000)
			if err != nil {
				select {
				case <-ctx.Done():
					return
				case <-time.After(200 * time.Millisecond):
				}
				continue
			}
			after = ds.Revision
			var batch []fipdapi.Report
			now := time.Now().UTC()
			for _, d := range ds.Addresses {
				r := fipdapi.Report{FloatingIpId: d.FloatingIpId, Revision: d.Revision, ObservedAt: now}
				switch mode {
				case agentDADFailed:
					r.State = fipdapi.ReportedStateDadFailed
					r.DefenderMac.Set(defenderMAC)
					r.DadMs.Set(1000)
				default:
					r.State = fipdapi.ReportedStateActive
					r.DadMs.Set(1)
					r.NaSent.Set(1)
				}
				batch = append(batch, r)
			}
			for _, d := range ds.Removals {
				batch = append(batch, fipdapi.Report{FloatingIpId: d.FloatingIpId, Revision: d.Revision,
					State: fipdapi.ReportedStateAbsent, ObservedAt: now})
			}
			var fresh []fipdapi.Report
			for _, r := range batch {
				key := fmt.Sprintf("%s/%d/%s", r.FloatingIpId, r.Revision, r.State)
				if !reported[key] {
					reported[key] = true
					fresh = append(fresh, r)
				}
			}
			if len(fresh) > 0 {
				if _, err := c.AgentReports(ctx, fipdapi.ReportBatch{Reports: fresh}); err != nil {
					for _, r := range fresh { // send again on the next pass
						delete(reported, fmt.Sprintf("%s/%d/%s", r.FloatingIpId, r.Revision, r.State))
					}
				}
			}
		}
	}()
	return nil
}

// tfpath names a top-level attribute for plan and state checks.
func tfpath(name string) tfjsonpath.Path { return tfjsonpath.New(name) }
