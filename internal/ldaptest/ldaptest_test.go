package ldaptest

import (
	"strings"
	"testing"
	"time"
)

// The helper's own contract: a server that answers with the tcs schema and
// containers, survives a restart with its data, and loads LDIF.
func TestStartRestartLoad(t *testing.T) {
	s := Start(t)
	out := s.Search(s.BaseDN, "(objectClass=organizationalUnit)", "dn")
	for _, ou := range []string{"ou=services", "ou=smartsets", "ou=locations"} {
		if !strings.Contains(out, "dn: "+ou+","+s.BaseDN) {
			t.Errorf("container %s missing:\n%s", ou, out)
		}
	}
	s.Apply("dn: cn=x,ou=smartsets," + s.BaseDN + "\nobjectClass: smartSet\ncn: x\ngeoLocation: Texas\n")
	s.Restart(100 * time.Millisecond)
	if out := s.Search("ou=smartsets,"+s.BaseDN, "(cn=x)", "geoLocation"); !strings.Contains(out, "geoLocation: Texas") {
		t.Fatalf("entry lost over a restart:\n%s", out)
	}
}
