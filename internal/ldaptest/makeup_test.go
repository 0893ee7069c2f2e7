package ldaptest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// `make ldap-up` starts the throwaway directory the README promises: the
// three containers under dc=example,dc=org and the assertion control; `make
// ldap-down` stops it and removes its data.
func TestMakeLdapUpDown(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "ldap")
	vars := []string{"TCS_LDAP_PORT=" + strconv.Itoa(port), "TCS_LDAP_DIR=" + dir}
	run := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("make", append([]string{"-C", root, "ldap-up"}, vars...)...)
	t.Cleanup(func() { exec.Command("make", append([]string{"-C", root, "ldap-down"}, vars...)...).Run() })
	url := "ldap://127.0.0.1:" + strconv.Itoa(port)
	// The rendered configuration holds the admin password hashed, never as
	// given ("secret" is only the development default of make ldap-up).
	for _, f := range []string{filepath.Join(dir, "config.ldif"), filepath.Join(dir, "slapd.d", "cn=config", "olcDatabase={1}mdb.ldif")} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "secret") || !strings.Contains(string(b), "olcRootPW") {
			t.Errorf("%s: the admin password is not stored hashed", f)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "config.ldif")); !strings.Contains(string(b), "olcRootPW: {SSHA}") {
		t.Errorf("config.ldif has no {SSHA} olcRootPW")
	}
	if out := run("ldapwhoami", "-x", "-H", url, "-D", "cn=admin,dc=example,dc=org", "-w", "secret"); !strings.Contains(out, "cn=admin") {
		t.Errorf("the admin cannot bind with the development password: %s", out)
	}
	out := run("ldapsearch", "-x", "-H", url, "-D", "cn=admin,dc=example,dc=org", "-w", "secret", "-b", "dc=example,dc=org", "-LLL", "dn")
	for _, ou := range []string{"ou=services", "ou=smartsets", "ou=locations", "ou=agents", "ou=operators"} {
		if !strings.Contains(out, "dn: "+ou+",dc=example,dc=org") {
			t.Errorf("ldapsearch does not show %s:\n%s", ou, out)
		}
	}
	out = run("ldapsearch", "-x", "-H", url, "-s", "base", "-b", "", "supportedControl")
	if !strings.Contains(out, "supportedControl: 1.3.6.1.1.12") {
		t.Errorf("root DSE does not list the assertion control:\n%s", out)
	}
	// A second ldap-up on a running server is harmless.
	run("make", append([]string{"-C", root, "ldap-up"}, vars...)...)
	run("make", append([]string{"-C", root, "ldap-down"}, vars...)...)
	if err := exec.Command("ldapsearch", "-x", "-H", url, "-s", "base", "-b", "").Run(); err == nil {
		t.Errorf("server still answers after make ldap-down")
	}
}
