package ldaptest_test

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"tcs/internal/ldaptest"
)

// A consumer replicates sets and leases, replicates the provider's lease
// expiry, and refers writes to the provider.
func TestConsumer(t *testing.T) {
	p := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	c := ldaptest.StartConsumer(t, p)
	if got := c.Search("ou=smartsets,"+c.BaseDN, "(cn=texas-routers)", "geoLocation"); !strings.Contains(got, "geoLocation: Texas") {
		t.Fatalf("consumer has no texas-routers after catching up:\n%s", got)
	}
	p.Apply(`dn: cn=lease-1,ou=services,dc=example,dc=org
objectClass: tcsService
objectClass: dynamicObject
cn: lease-1
geoLocation: Texas
`)
	waitFor(t, "the lease on the consumer", func() bool {
		return strings.Contains(c.Search("ou=services,"+c.BaseDN, "(cn=lease-1)", "cn"), "cn: lease-1")
	})
	// The provider's default TTL (10 s) ends it; the delete replicates.
	waitFor(t, "the lease's expiry on the consumer", func() bool {
		return !strings.Contains(c.Search("ou=services,"+c.BaseDN, "(cn=lease-1)", "cn"), "cn: lease-1")
	})
	out, err := ldapmodify(c, "dn: cn=texas-routers,ou=smartsets,dc=example,dc=org\nchangetype: modify\nreplace: tcsEpoch\ntcsEpoch: 7\n")
	if err == nil || !strings.Contains(out, "Referral") || !strings.Contains(out, p.URL) {
		t.Fatalf("a write to the consumer: want a referral to %s, got %v:\n%s", p.URL, err, out)
	}
}

// A MirrorMode pair replicates both ways; only the active one expires
// leases, and a replicated dynamic entry does not crash the standby.
func TestMirror(t *testing.T) {
	a, b := ldaptest.StartMirror(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	a.Apply(`dn: cn=lease-1,ou=services,dc=example,dc=org
objectClass: tcsService
objectClass: dynamicObject
cn: lease-1
geoLocation: Texas
`)
	b.Apply("dn: cn=texas-routers,ou=smartsets,dc=example,dc=org\nchangetype: modify\nreplace: tcsEpoch\ntcsEpoch: 7\n")
	waitFor(t, "the standby's write on the active", func() bool {
		return strings.Contains(a.Search("ou=smartsets,"+a.BaseDN, "(cn=texas-routers)", "tcsEpoch"), "tcsEpoch: 7")
	})
	waitFor(t, "the lease's expiry on both", func() bool {
		return !strings.Contains(a.Search("ou=services,"+a.BaseDN, "(cn=lease-1)", "cn"), "lease-1") &&
			!strings.Contains(b.Search("ou=services,"+b.BaseDN, "(cn=lease-1)", "cn"), "lease-1")
	})
	for _, s := range []*ldaptest.Server{a, b} {
		if ok, err := s.CaughtUp(a); err != nil {
			t.Fatalf("%s is down after replicating a dynamic entry: %v\n%s", s.URL, err, s.Log())
		} else if !ok {
			t.Logf("%s not caught up yet", s.URL)
		}
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func ldapmodify(s *ldaptest.Server, ldif string) (string, error) {
	cmd := exec.Command("ldapmodify", "-x", "-H", s.URL, "-D", s.BindDN, "-w", s.Password)
	cmd.Stdin = strings.NewReader(ldif)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
