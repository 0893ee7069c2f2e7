package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"tcs/internal/ldaptest"
)

// `make demo` runs end to end, non-interactively, and exits 0 with every
// step of the story on its timeline.
func TestMakeDemo(t *testing.T) {
	root, err := ldaptest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(t.TempDir(), "demo")
	cmd := exec.Command("make", "-C", root, "demo", "DEMO_FLAGS=-pause 0 -dir "+work)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make demo: %v\n%s", err, out)
	}
	for _, want := range []string{
		"each agent binds as its own account cn=<name>,ou=agents",
		"status page: http://127.0.0.1:",
		"all placed optimally",
		"sent SIGKILL to tcs-texas-1",
		"lease of tcs-texas-1 is gone",
		"-> tcs-california-1 (epoch 2)",
		"texas-routers through tcs-japan-1 before the kill -9: 2 rows, owner tcs-texas-1, epoch 1",
		"texas-routers through tcs-japan-1 after the takeover: 2 rows, owner tcs-california-1, epoch 2",
		"blocking read returned",
		"tcsOSType=IOS-XE",
		"tcs-texas-1 asks tcs-california-1 to hand it over",
		"tcs-california-1 -> tcs-texas-1 (epoch 3)",
		"sent SIGTERM to tcs-california-1",
		"its sets were already owned by Texas",
		"demo finished: every step happened.",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("demo output:\n%s", out)
	}
	if _, err := exec.Command("ls", work).CombinedOutput(); err == nil {
		t.Errorf("demo left its working folder %s behind", work)
	}
}
