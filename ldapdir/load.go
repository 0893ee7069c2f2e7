package ldapdir

import (
	"context"

	"github.com/go-ldap/ldap/v3"
)

// Load counts the sets the service serviceDN owns or has asked for
// (tcsReleaseRequest), reading no attributes: what an owner over its
// capacity checks before handing a set to that service, whose count in its
// own view may be stale.
func (d *Dir) Load(ctx context.Context, serviceDN string) (int, error) {
	dn := ldap.EscapeFilter(serviceDN)
	es, err := d.search(ctx, d.SetsDN(), ldap.ScopeWholeSubtree,
		"(&(objectClass=smartSet)(|(owner="+dn+")"+RequestedBy(serviceDN)+"))", []string{"1.1"})
	if err != nil {
		return 0, err
	}
	return len(es), nil
}
