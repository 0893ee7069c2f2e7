package chaos

import (
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
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
		By: "cn=admin,dc=example,dc=org"}
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
