package main

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
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
		"blocking read returned",
		"tcsOSType=IOS-XE",
		"tcs-texas-1 asks tcs-california-1 to hand it over",
		"sent SIGTERM to tcs-california-1",
		"its sets were already owned by Texas",
		"demo finished: every step happened.",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	// The epochs depend on who registered first (an agent alone for a
	// moment claims every set, then hands them on): the read after the
	// takeover must show the next epoch of the one before it.
	before := regexp.MustCompile(`texas-routers through tcs-japan-1 before the kill -9: 2 rows, owner tcs-texas-1, epoch (\d+)`).FindStringSubmatch(string(out))
	after := regexp.MustCompile(`texas-routers through tcs-japan-1 after the takeover: 2 rows, owner tcs-california-1, epoch (\d+)`).FindStringSubmatch(string(out))
	if before == nil || after == nil {
		t.Errorf("demo output lacks the reads of texas-routers before the kill -9 (owner tcs-texas-1) and after the takeover (owner tcs-california-1)")
	} else if b, _ := strconv.Atoi(before[1]); strconv.Itoa(b+1) != after[1] {
		t.Errorf("texas-routers at epoch %s before the kill -9 and %s after the takeover: want one more", before[1], after[1])
	}
	if !regexp.MustCompile(`texas-\S+ +tcs-texas-1 -> tcs-california-1 \(epoch \d+\)`).MatchString(string(out)) {
		t.Errorf("demo output shows no takeover of a Texas set by tcs-california-1")
	}
	if !regexp.MustCompile(`texas-\S+ +tcs-california-1 -> tcs-texas-1 \(epoch \d+\)`).MatchString(string(out)) {
		t.Errorf("demo output shows no handoff of a Texas set back to tcs-texas-1")
	}
	if t.Failed() {
		t.Logf("demo output:\n%s", out)
	}
	if _, err := exec.Command("ls", work).CombinedOutput(); err == nil {
		t.Errorf("demo left its working folder %s behind", work)
	}
}
