package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tcs/config"
	"tcs/internal/ldaptest"
)

func runMain(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = mainCode(args, &o, &e)
	return code, o.String(), e.String()
}

func TestUsageAndVersion(t *testing.T) {
	if code, out, _ := runMain("version"); code != 0 || !strings.HasPrefix(out, "tcs-agent ") {
		t.Errorf("version: %d %q", code, out)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage:"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"run"}, 2, "--config FILE is required"},
		{[]string{"run", "--config"}, 2, "flag needs an argument"},
		{[]string{"status", "--config", "x.toml", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"run", "--config", "/nonexistent/tcs.toml"}, 1, "/nonexistent/tcs.toml"},
		{[]string{"get", "--config", "x.toml"}, 2, "the name of a SmartSet is required"},
		{[]string{"get", "--config", "x.toml", "texas-routers", "--format", "xml"}, 2, `--format "xml": use json or csv`},
		{[]string{"get", "--config", "x.toml", "texas-routers", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"get", "texas-routers", "--watch"}, 2, "--config FILE is required"},
		{[]string{"get", "--config", "/nonexistent/tcs.toml", "sp ace", "--watch"}, 1, "/nonexistent/tcs.toml"},
	} {
		code, _, errOut := runMain(tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("tcs-agent %v: exit %d, stderr %q; want exit %d and %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
}

// A bad configuration file: the error names the file, the key and the
// problem, and the agent does not start.
func TestBadConfigIsExplained(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tcs.toml")
	os.WriteFile(path, []byte(`[service]
name = "tcs-texas-1"
location = "Texas"
nmae = "typo"
[directory]
url = "http://127.0.0.1:3890"
base_dn = "dc=example,dc=org"
lease_ttl = "5x"
`), 0o600)
	code, _, errOut := runMain("run", "--config", path)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr %s", code, errOut)
	}
	for _, want := range []string{path, "[service] nmae", "[directory] lease_ttl", `"5x"`} {
		if !strings.Contains(errOut, want) {
			t.Errorf("error lacks %q:\n%s", want, errOut)
		}
	}
}

// `tcs-agent status` against a real directory prints every set with its
// location, owner, owner's location, epoch and state.
func TestStatusTable(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	s.Apply(`dn: cn=tcs-california-1,ou=services,dc=example,dc=org
objectClass: tcsService
objectClass: dynamicObject
cn: tcs-california-1
geoLocation: California

dn: cn=texas-routers,ou=smartsets,dc=example,dc=org
changetype: modify
replace: owner
owner: cn=tcs-california-1,ou=services,dc=example,dc=org
-
replace: tcsEpoch
tcsEpoch: 4

dn: cn=california-routers,ou=smartsets,dc=example,dc=org
changetype: modify
replace: owner
owner: cn=tcs-california-1,ou=services,dc=example,dc=org
-
replace: tcsEpoch
tcsEpoch: 1

dn: cn=japan-routers,ou=smartsets,dc=example,dc=org
changetype: modify
replace: owner
owner: cn=tcs-japan-9,ou=services,dc=example,dc=org
-
replace: tcsEpoch
tcsEpoch: 2
`)
	dir := t.TempDir()
	path := filepath.Join(dir, "tcs.toml")
	os.WriteFile(filepath.Join(dir, "pw"), []byte(s.Password), 0o600)
	os.WriteFile(path, []byte(`[service]
name = "tcs-status"
location = "Japan"
[directory]
url = "`+s.URL+`"
base_dn = "dc=example,dc=org"
bind_dn = "cn=admin,dc=example,dc=org"
bind_password_file = "pw"
`), 0o600)
	code, out, errOut := runMain("status", "--config", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(out, "\n")
	if !strings.HasPrefix(lines[0], "SET") || !strings.Contains(lines[0], "OWNER LOCATION") || !strings.Contains(lines[0], "STATE") {
		t.Fatalf("header: %q", lines[0])
	}
	row := func(set string) []string {
		for _, l := range lines {
			if f := strings.Fields(l); len(f) > 0 && f[0] == set {
				return f
			}
		}
		t.Fatalf("no row for %s in\n%s", set, out)
		return nil
	}
	for set, want := range map[string][]string{
		"texas-routers":      {"texas-routers", "Texas", "tcs-california-1", "California", "4", "optimal"},
		"california-routers": {"california-routers", "California", "tcs-california-1", "California", "1", "optimal"},
		"japan-routers":      {"japan-routers", "Japan", "tcs-japan-9", "(gone)", "-", "2", "orphaned"},
		"japan-aix-servers":  {"japan-aix-servers", "Japan", "-", "-", "0", "orphaned"},
	} {
		if got := strings.Join(row(set), " "); got != strings.Join(want, " ") {
			t.Errorf("row %s:\n got %s\nwant %s", set, got, strings.Join(want, " "))
		}
	}
	if !strings.Contains(out, "9 sets, 1 agents: 2 optimal, 0 non-optimal, 0 pending handoff, 7 orphaned") {
		t.Errorf("summary line missing:\n%s", out)
	}
}

// The example configurations shipped for operators stay valid.
func TestShippedConfigsLoad(t *testing.T) {
	root, err := ldaptest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(root, "examples", "*.toml"))
	more, _ := filepath.Glob(filepath.Join(root, "docker", "compose", "*.toml"))
	files = append(files, more...)
	replicated, _ := filepath.Glob(filepath.Join(root, "docker", "compose", "replicated", "*.toml"))
	if len(replicated) != 3 {
		t.Errorf("want the three agents of the replicated compose variant, found %v", replicated)
	}
	files = append(files, replicated...)
	if len(files) < 6 {
		t.Fatalf("found only %v", files)
	}
	t.Setenv("TCS_BIND_PASSWORD", "secret")
	for _, f := range files {
		if _, err := config.Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// `tcs-agent status --watch` redraws the table every second until stopped.
func TestStatusWatchRedraws(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	cfg, err := config.Parse([]byte(`[service]
name = "tcs-status"
location = "Japan"
[directory]
url = "`+s.URL+`"
base_dn = "dc=example,dc=org"
bind_dn = "cn=admin,dc=example,dc=org"
`), "tcs.toml", func(string) string { return s.Password })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	var out bytes.Buffer
	go func() {
		time.Sleep(1200 * time.Millisecond) // a change between two frames
		s.Apply("dn: cn=japan-routers,ou=smartsets,dc=example,dc=org\nchangetype: modify\nreplace: tcsEpoch\ntcsEpoch: 7\n")
	}()
	if err := status(ctx, cfg, &out, true); err != nil {
		t.Fatal(err)
	}
	frames := strings.Split(out.String(), "\033[H\033[2J")
	if len(frames) < 3 { // "" before the first clear, then two frames at least
		t.Fatalf("%d frames:\n%s", len(frames)-1, out.String())
	}
	first, last := frames[1], frames[len(frames)-1]
	if !strings.Contains(first, "SET") || !strings.Contains(last, "9 sets") {
		t.Errorf("frames lack the table:\n%s", out.String())
	}
	if strings.Contains(first, "japan-routers              Japan       -      -               7") || !strings.Contains(last, " 7 ") {
		t.Errorf("the change did not show in a later frame:\nfirst:\n%s\nlast:\n%s", first, last)
	}
}
