package provider

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// examples/full/main.tf, as shipped and as README.md says to run it: the
// provider built and used through dev_overrides, the token from FIPD_TOKEN,
// against a fresh fipd without agents. It applies (the floating IP stays
// PENDING, with a warning), then plans no changes, then destroys.
// (terraform-plugin-testing cannot run it: its state checks do not support
// for_each.)
func TestAccExampleFull(t *testing.T) {
	accPreCheck(t)
	cli := os.Getenv("TF_ACC_TERRAFORM_PATH")
	if cli == "" {
		t.Skip("TF_ACC_TERRAFORM_PATH is not set")
	}
	s := startFipd(t)
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bin")
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "terraform-provider-fipd"), ".")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the provider: %v\n%s", err, out)
	}
	rc := filepath.Join(tmp, "dev.tfrc")
	if err := os.WriteFile(rc, fmt.Appendf(nil, "provider_installation {\n  dev_overrides {\n    \"fipd/fipd\" = %q\n  }\n  direct {}\n}\n", bin), 0o644); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(tmp, "full")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../../examples/full/main.tf")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "main.tf"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, int) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, cli, append(args, "-no-color", "-input=false", "-var", "endpoint="+s.URL)...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE="+rc, EnvToken+"="+s.Token, EnvEndpoint+"=")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%s %s: %v", cli, args[0], err)
		}
		return out.String(), code
	}
	destroyed := false
	t.Cleanup(func() {
		if !destroyed {
			run("destroy", "-auto-approve")
		}
	})

	out, code := run("apply", "-auto-approve")
	if code != 0 {
		t.Fatalf("apply exited %d:\n%s", code, out)
	}
	for _, want := range []string{"Apply complete! Resources: 7 added", `www_status = "PENDING"`, "has never been seen by fipd"} {
		if !strings.Contains(strings.Join(strings.Fields(out), " "), want) {
			t.Errorf("apply output lacks %q:\n%s", want, out)
		}
	}
	if out, code := run("plan", "-detailed-exitcode"); code != 0 {
		t.Errorf("plan after apply exited %d (2 = changes):\n%s", code, out)
	}
	out, code = run("destroy", "-auto-approve")
	destroyed = true
	if code != 0 || !strings.Contains(out, "Resources: 7 destroyed") {
		t.Fatalf("destroy exited %d:\n%s", code, out)
	}
}
