package chaos

import (
	"strconv"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"tcs/internal/ldaptest"
)

func TestCommitFromEntry(t *testing.T) {
	const sets = "ou=smartsets,dc=example,dc=org"
	e := ldap.NewEntry("reqStart=20261202133033.000056Z,cn=accesslog", map[string][]string{
		"reqStart":   {"20261202133033.000056Z"},
		"reqType":    {"modify"},
		"reqDN":      {"cn=texas-routers,ou=smartsets,dc=example,dc=org"},
		"reqAuthzID": {"cn=admin,dc=example,dc=org"},
		"reqMod": {"owner:= cn=TCS-Texas-1, ou=services,dc=example,dc=org", "tcsEpoch:= 4",
			"tcsReleaseRequest:=", "entryCSN:= 20261202133033.616668Z#000000#000#000000"},
	})
	c, ok := commitFromEntry(e, sets)
	if !ok {
		t.Fatal("a set modify was not taken")
	}
	want := Commit{At: time.Date(2026, 12, 2, 13, 30, 33, 616668000, time.UTC), Seq: "20261202133033.000056Z",
		Set: "texas-routers", Type: "modify", Owner: "cn=tcs-texas-1,ou=services,dc=example,dc=org", Epoch: 4,
		By: "cn=admin,dc=example,dc=org", CSN: "20261202133033.616668Z#000000#000#000000"}
	if c != want {
		t.Fatalf("got %+v\nwant %+v", c, want)
	}
	e.Attributes[1].Values = []string{"cn=tcs-texas-1,ou=services,dc=example,dc=org"}
	for _, a := range e.Attributes {
		if a.Name == "reqDN" {
			a.Values = []string{"cn=tcs-texas-1,ou=services,dc=example,dc=org"}
		}
	}
	if _, ok := commitFromEntry(e, sets); ok {
		t.Fatal("a write to a service entry was taken as a set write")
	}
}

// TestReadCommitsFromTheShippedAccessLog writes to a set of a real slapd
// made with the shipped configuration and reads the writes back.
func TestReadCommitsFromTheShippedAccessLog(t *testing.T) {
	srv := ldaptest.Start(t)
	sets := "ou=smartsets," + srv.BaseDN
	srv.Apply("dn: cn=s1," + sets + "\nobjectClass: smartSet\ncn: s1\ngeoLocation: A\n")
	conn, err := ldap.DialURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Bind(srv.BindDN, srv.Password); err != nil {
		t.Fatal(err)
	}
	for epoch, owner := range []string{"cn=a,ou=services," + srv.BaseDN, "cn=b,ou=services," + srv.BaseDN} {
		req := ldap.NewModifyRequest("cn=s1,"+sets, nil)
		req.Replace("owner", []string{owner})
		req.Replace("tcsEpoch", []string{strconv.Itoa(epoch + 1)})
		if err := conn.Modify(req); err != nil {
			t.Fatal(err)
		}
	}
	lost := ldap.NewModifyRequest("cn=s1,"+sets, nil) // a failed write is not a commit
	lost.Replace("tcsEpoch", []string{"9"})
	lost.Delete("geoLocation", []string{"nowhere"})
	if err := conn.Modify(lost); err == nil {
		t.Fatal("a modify deleting an absent value succeeded")
	}
	commits, err := ReadCommits(conn, sets)
	if err != nil {
		t.Fatal(err)
	}
	if len(commits) != 3 {
		t.Fatalf("got %d commits, want the add and two modifies: %+v", len(commits), commits)
	}
	want := []struct {
		typ   string
		owner string
		epoch int64
	}{{"add", "", 0}, {"modify", "cn=a,ou=services,dc=example,dc=org", 1}, {"modify", "cn=b,ou=services,dc=example,dc=org", 2}}
	for i, w := range want {
		c := commits[i]
		if c.Set != "s1" || c.Type != w.typ || c.Owner != w.owner || c.Epoch != w.epoch || c.At.IsZero() {
			t.Errorf("commit %d = %+v, want %s owner %q epoch %d", i, c, w.typ, w.owner, w.epoch)
		}
	}
	if commits[2].At.Before(commits[1].At) {
		t.Errorf("commit times out of order: %v then %v", commits[1].At, commits[2].At)
	}
}
