// Package schema_test checks the access control shipped in slapd.ldif the
// way an operator would: with ldapmodify, ldapadd, ldapdelete, ldapexop and
// ldapsearch, bound as an agent account, an operator account and anonymously.
package schema_test

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"tcs/internal/ldaptest"
)

const base = "dc=example,dc=org"

func svc(name string) string { return "cn=" + name + ",ou=services," + base }
func set(name string) string { return "cn=" + name + ",ou=smartsets," + base }

// resultRE finds the LDAP result code ldap-utils print, e.g.
// "ldap_modify: Insufficient access (50)".
var resultRE = regexp.MustCompile(`(?m)\((\d+)\)\s*$`)

// run runs an ldap-utils tool bound as who (nil: anonymous) and returns the
// LDAP result code (0 on success) and the output.
func run(t *testing.T, srv *ldaptest.Server, who *ldaptest.Account, stdin, tool string, args ...string) (int, string) {
	t.Helper()
	full := []string{"-x", "-H", srv.URL}
	if who != nil {
		full = append(full, "-D", who.DN, "-y", passwordFile(t, who))
	}
	cmd := exec.Command(tool, append(full, args...)...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err == nil {
		return 0, string(out)
	}
	m := resultRE.FindAllStringSubmatch(string(out), -1)
	if len(m) == 0 {
		t.Fatalf("%s %s: %v, and no LDAP result code in its output:\n%s", tool, strings.Join(args, " "), err, out)
	}
	code, _ := strconv.Atoi(m[len(m)-1][1])
	return code, string(out)
}

// passwordFile is a copy of who's password without the trailing newline
// (ldap-utils -y use the whole file).
func passwordFile(t *testing.T, who *ldaptest.Account) string {
	t.Helper()
	p := t.TempDir() + "/pw"
	writeFile(t, p, who.Password)
	return p
}

func lease(name, location, incarnation string) string {
	return "dn: " + svc(name) + "\nobjectClass: top\nobjectClass: tcsService\nobjectClass: dynamicObject\ncn: " + name +
		"\ngeoLocation: " + location + "\ntcsEndpoint: http://127.0.0.1:1\ntcsIncarnation: " + incarnation + "\n"
}

func modify(dn string, changes ...string) string {
	return "dn: " + dn + "\nchangetype: modify\n" + strings.Join(changes, "-\n") + "-\n"
}

func replace(attr string, values ...string) string {
	s := "replace: " + attr + "\n"
	for _, v := range values {
		s += attr + ": " + v + "\n"
	}
	return s
}

// Every allowed operation of an agent succeeds and every forbidden one
// fails with result 50 (insufficient access), done with the ldap-utils an
// operator would use.
func TestAgentAccess(t *testing.T) {
	srv := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	texas := srv.AddAgent("tcs-texas-1")
	cali := srv.AddAgent("tcs-california-1")
	if code, out := run(t, srv, &cali, lease("tcs-california-1", "California", "c1"), "ldapadd"); code != 0 {
		t.Fatalf("california cannot add its own lease: %d\n%s", code, out)
	}
	// A TTL of an hour: the leases must outlive this test on a loaded
	// machine (a new entry gets olcDDSdefaultTtl, 10 s).
	if code, out := run(t, srv, &cali, "", "ldapexop", "refresh", svc("tcs-california-1"), "3600"); code != 0 {
		t.Fatalf("california cannot refresh its own lease: %d\n%s", code, out)
	}

	type step struct {
		name  string
		stdin string
		tool  string
		args  []string
	}
	allowed := []step{
		{"add its own lease entry", lease("tcs-texas-1", "Texas", "t1"), "ldapadd", nil},
		{"refresh its own lease", "", "ldapexop", []string{"refresh", svc("tcs-texas-1"), "3600"}},
		{"modify its own lease, asserting its incarnation",
			modify(svc("tcs-texas-1"), replace("geoLocation", "Texas"), replace("tcsEndpoint", "http://127.0.0.1:2"),
				replace("tcsCapacity", "5"), replace("description", "texas agent")),
			"ldapmodify", []string{"-e", "!assert=(tcsIncarnation=t1)"}},
		{"claim an orphan: assert no epoch, owner := itself, epoch 1, post-read",
			modify(set("texas-routers"), replace("owner", svc("tcs-texas-1")), replace("tcsEpoch", "1"), replace("tcsReleaseRequest")),
			"ldapmodify", []string{"-e", "!assert=(|(tcsEpoch=0)(!(tcsEpoch=*)))", "-e", "postread=owner,tcsEpoch"}},
		{"transfer it to california at epoch 1",
			modify(set("texas-routers"), replace("owner", svc("tcs-california-1")), replace("tcsEpoch", "2"), replace("tcsReleaseRequest")),
			"ldapmodify", []string{"-e", "!assert=(tcsEpoch=1)"}},
		{"ask for a set with its own service DN",
			modify(set("texas-routers"), replace("tcsReleaseRequest", svc("tcs-texas-1"))),
			"ldapmodify", []string{"-e", "!assert=(tcsEpoch=2)"}},
		{"release a set (owner := nothing, request cleared)",
			modify(set("texas-linux-servers"), replace("owner"), replace("tcsEpoch", "1"), replace("tcsReleaseRequest")),
			"ldapmodify", []string{"-e", "!assert=(!(tcsEpoch=*))"}},
	}
	for _, s := range allowed {
		if code, out := run(t, srv, &texas, s.stdin, s.tool, s.args...); code != 0 {
			t.Errorf("allowed: %s: result %d, want 0\n%s", s.name, code, out)
		}
	}
	// The owner (california) clears the request, as a reject does.
	if code, out := run(t, srv, &cali, modify(set("texas-routers"), replace("tcsReleaseRequest")), "ldapmodify", "-e", "!assert=(tcsEpoch=2)"); code != 0 {
		t.Errorf("allowed: the owner clears a release request: result %d\n%s", code, out)
	}

	forbidden := []step{
		{"add another agent's lease entry", lease("tcs-japan-1", "Japan", "j1"), "ldapadd", nil},
		{"modify another agent's lease", modify(svc("tcs-california-1"), replace("tcsEndpoint", "http://evil")), "ldapmodify", nil},
		{"delete another agent's lease", "", "ldapdelete", []string{svc("tcs-california-1")}},
		{"refresh another agent's lease", "", "ldapexop", []string{"refresh", svc("tcs-california-1"), "10"}},
		{"rename its own lease to another agent's name", "", "ldapmodrdn", []string{"-r", svc("tcs-texas-1"), "cn=tcs-japan-1"}},
		{"add a second name to its own lease", modify(svc("tcs-texas-1"), "add: cn\ncn: tcs-japan-1\n"), "ldapmodify", nil},
		{"add another agent's lease entry carrying its own name too",
			lease("tcs-japan-1", "Japan", "j2") + "cn: tcs-texas-1\n", "ldapadd", nil},
		{"add a set", "dn: " + set("evil") + "\nobjectClass: smartSet\ncn: evil\ngeoLocation: Texas\n", "ldapadd", nil},
		{"delete a set", "", "ldapdelete", []string{set("japan-routers")}},
		{"change tcsQuery", modify(set("japan-routers"), replace("tcsQuery", "ldap:///"+base+"??sub?(objectClass=*)")), "ldapmodify", nil},
		{"change a set's geoLocation", modify(set("japan-routers"), replace("geoLocation", "Texas")), "ldapmodify", nil},
		{"change a set's cn", modify(set("japan-routers"), "add: cn\ncn: other\n"), "ldapmodify", nil},
		{"set owner to a DN outside ou=services", modify(set("japan-routers"), replace("owner", "cn=admin,"+base), replace("tcsEpoch", "1")), "ldapmodify", nil},
		{"set owner to an account DN", modify(set("japan-routers"), replace("owner", texas.DN)), "ldapmodify", nil},
		{"ask for a set in another agent's name", modify(set("japan-routers"), replace("tcsReleaseRequest", svc("tcs-california-1"))), "ldapmodify", nil},
		{"write tcsReleaseRequest outside ou=services", modify(set("japan-routers"), replace("tcsReleaseRequest", "cn=admin,"+base)), "ldapmodify", nil},
		{"change a location's coordinates", modify("cn=Texas,ou=locations,"+base, replace("tcsCoordinates", "0,0")), "ldapmodify", nil},
		{"add a location", "dn: cn=Evil,ou=locations," + base + "\nobjectClass: tcsLocation\ncn: Evil\n", "ldapadd", nil},
		{"delete a location's system", "", "ldapdelete", []string{"cn=tx-rtr-01,cn=Texas,ou=locations," + base}},
		{"change another account's password", modify(cali.DN, replace("userPassword", "x")), "ldapmodify", nil},
		{"change another account", modify(cali.DN, replace("description", "x")), "ldapmodify", nil},
		{"add an account", "dn: cn=evil,ou=agents," + base + "\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\ncn: evil\nuserPassword: x\n", "ldapadd", nil},
		{"change the suffix entry", modify(base, replace("o", "evil")), "ldapmodify", nil},
	}
	for _, s := range forbidden {
		if code, out := run(t, srv, &texas, s.stdin, s.tool, s.args...); code != 50 {
			t.Errorf("forbidden: %s: result %d, want 50 (insufficient access)\n%s", s.name, code, out)
		}
	}

	// Reads: services, sets, locations and what the queries select; no
	// password, no other account.
	reads := []struct{ base, filter, want string }{
		{"ou=services," + base, "(objectClass=tcsService)", "dn: " + svc("tcs-california-1")},
		{"ou=smartsets," + base, "(owner=" + svc("tcs-california-1") + ")", "dn: " + set("texas-routers")},
		{"ou=locations," + base, "(tcsCoordinates=*)", "dn: cn=Japan,ou=locations," + base},
		{"cn=Texas,ou=locations," + base, "(&(objectClass=tcsSystem)(tcsSystemType=router))", "dn: cn=tx-rtr-02,cn=Texas,ou=locations," + base},
	}
	for _, r := range reads {
		code, out := run(t, srv, &texas, "", "ldapsearch", "-LLL", "-o", "ldif_wrap=no", "-b", r.base, r.filter)
		if code != 0 || !strings.Contains(out, r.want) {
			t.Errorf("agent search -b %s %s: result %d, want %q in:\n%s", r.base, r.filter, code, r.want, out)
		}
	}
	_, out := run(t, srv, &texas, "", "ldapsearch", "-LLL", "-b", base, "(objectClass=*)", "*", "userPassword")
	if strings.Contains(strings.ToLower(out), "userpassword") || strings.Contains(out, cali.DN) {
		t.Errorf("an agent reads passwords or other accounts:\n%s", out)
	}

	// Its own lease: delete under the incarnation assertion (last, it ends
	// the lease).
	if code, out := run(t, srv, &texas, "", "ldapdelete", "-e", "!assert=(tcsIncarnation=t1)", svc("tcs-texas-1")); code != 0 {
		t.Errorf("allowed: delete its own lease asserting its incarnation: result %d\n%s", code, out)
	}
}

// The shipped rules give an agent search access to tcsEpoch and
// tcsIncarnation: an asserted write with the right value succeeds and one
// with a wrong value fails with 122. Without search access the right value
// fails with 122 too, which would look like a lost race (the planted case
// shows the check catches it).
func TestAssertionsNeedSearch(t *testing.T) {
	check := func(t *testing.T, srv *ldaptest.Server, wantRight int) {
		t.Helper()
		texas := srv.AddAgent("tcs-texas-1")
		if code, out := run(t, srv, &texas, lease("tcs-texas-1", "Texas", "inc-7"), "ldapadd"); code != 0 {
			t.Fatalf("add own lease: %d\n%s", code, out)
		}
		if code, out := run(t, srv, &texas, "", "ldapexop", "refresh", svc("tcs-texas-1"), "3600"); code != 0 {
			t.Fatalf("refresh own lease: %d\n%s", code, out)
		}
		srv.Apply(modify(set("texas-routers"), replace("tcsEpoch", "4")))
		claim := modify(set("texas-routers"), replace("owner", svc("tcs-texas-1")), replace("tcsEpoch", "5"))
		if code, out := run(t, srv, &texas, claim, "ldapmodify", "-e", "!assert=(tcsEpoch=3)"); code != 122 {
			t.Errorf("epoch assertion with a wrong value: result %d, want 122\n%s", code, out)
		}
		if code, out := run(t, srv, &texas, claim, "ldapmodify", "-e", "!assert=(tcsEpoch=4)"); code != wantRight {
			t.Errorf("epoch assertion with the right value: result %d, want %d\n%s", code, wantRight, out)
		}
		mod := modify(svc("tcs-texas-1"), replace("tcsEndpoint", "http://127.0.0.1:3"))
		if code, out := run(t, srv, &texas, mod, "ldapmodify", "-e", "!assert=(tcsIncarnation=inc-6)"); code != 122 {
			t.Errorf("incarnation assertion with a wrong value: result %d, want 122\n%s", code, out)
		}
		if code, out := run(t, srv, &texas, mod, "ldapmodify", "-e", "!assert=(tcsIncarnation=inc-7)"); code != wantRight {
			t.Errorf("incarnation assertion with the right value: result %d, want %d\n%s", code, wantRight, out)
		}
	}
	t.Run("shipped", func(t *testing.T) {
		check(t, ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif")), 0)
	})
	t.Run("planted: write without search", func(t *testing.T) {
		agents := `dn.onelevel="ou=agents,` + base + `"`
		srv := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"), ldaptest.WithACL(
			`to attrs=userPassword by anonymous auth by * none`,
			`to attrs=entryTtl by `+agents+` manage by * none`,
			`to attrs=tcsEpoch,tcsIncarnation by `+agents+` =w by * none`,
			`to * by `+agents+` write by * none`,
		))
		check(t, srv, 122)
	})
}

// Anonymous clients see the root DSE and nothing else; an operator reads
// everything but passwords and writes nothing.
func TestAnonymousAndOperator(t *testing.T) {
	srv := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	agent := srv.AddAgent("tcs-texas-1")
	op := srv.AddOperator("alice")

	for _, b := range []string{"ou=smartsets," + base, "ou=services," + base, "ou=locations," + base, base} {
		_, out := run(t, srv, nil, "", "ldapsearch", "-LLL", "-b", b, "(objectClass=*)")
		if strings.Contains(out, "dn:") {
			t.Errorf("anonymous search of %s returns entries:\n%s", b, out)
		}
	}
	if code, out := run(t, srv, nil, "", "ldapsearch", "-LLL", "-s", "base", "-b", "", "supportedControl"); code != 0 || !strings.Contains(out, "1.3.6.1.1.12") {
		t.Errorf("anonymous cannot read the root DSE: %d\n%s", code, out)
	}

	code, out := run(t, srv, &op, "", "ldapsearch", "-LLL", "-o", "ldif_wrap=no", "-b", base, "(objectClass=*)", "*", "userPassword")
	for _, want := range []string{"dn: " + set("texas-routers"), "dn: cn=tx-rtr-01,cn=Texas,ou=locations," + base, "dn: " + agent.DN, "tcsQuery: "} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("operator search: result %d, want %q", code, want)
		}
	}
	if strings.Contains(strings.ToLower(out), "userpassword") {
		t.Errorf("operator reads passwords:\n%s", out)
	}
	if code, out := run(t, srv, &op, modify(set("texas-routers"), replace("owner", svc("x")), replace("tcsEpoch", "1")), "ldapmodify"); code != 50 {
		t.Errorf("operator writes a set: result %d, want 50\n%s", code, out)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
