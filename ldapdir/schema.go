package ldapdir

import (
	"context"
	"fmt"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// What a tcs directory must know: the tcs object classes and attributes, and
// dynamicObject (RFC 2589, slapd's dds module) for the leases.
var (
	neededClasses = []string{"smartSet", "tcsService", "tcsLocation", "dynamicObject"}
	neededAttrs   = []string{"geoLocation", "tcsEpoch", "tcsQuery", "tcsReleaseRequest", "tcsEndpoint", "tcsCapacity", "tcsIncarnation", "entryTtl"}
)

// CheckSchema reads the server's subschema and reports, as ErrNoSchema, the
// object classes and attributes tcs needs that the server does not know.
// A server that does not publish its subschema passes (the first write
// will say what is wrong).
func (d *Dir) CheckSchema(ctx context.Context) error {
	var classes, attrs []string
	err := d.do(ctx, "read the subschema", func(c *ldap.Conn) error {
		root, err := c.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=*)", []string{"subschemaSubentry"}, nil))
		if err != nil || len(root.Entries) == 0 {
			return err
		}
		sub := root.Entries[0].GetAttributeValue("subschemaSubentry")
		if sub == "" {
			return nil
		}
		res, err := c.Search(ldap.NewSearchRequest(sub, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=subschema)", []string{"objectClasses", "attributeTypes"}, nil))
		if err != nil || len(res.Entries) == 0 {
			return err
		}
		classes = res.Entries[0].GetAttributeValues("objectClasses")
		attrs = res.Entries[0].GetAttributeValues("attributeTypes")
		return nil
	})
	if err != nil || classes == nil {
		return err
	}
	var missing []string
	for _, n := range neededClasses {
		if !definesName(classes, n) {
			missing = append(missing, "objectClass "+n)
		}
	}
	for _, n := range neededAttrs {
		if !definesName(attrs, n) {
			missing = append(missing, "attribute "+n)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	hint := "load schema/tcs.ldif into the server's cn=config (README: Troubleshooting)"
	if len(missing) == 1 && (missing[0] == "objectClass dynamicObject" || missing[0] == "attribute entryTtl") {
		hint = "load slapd's dds module (olcModuleLoad: dds)"
	}
	return fmt.Errorf("%w: %s does not know %s: %s", ErrNoSchema, d.cfg.URL, strings.Join(missing, ", "), hint)
}

// definesName reports whether one of the RFC 4512 definitions names n.
func definesName(defs []string, n string) bool {
	quoted := "'" + strings.ToLower(n) + "'"
	for _, d := range defs {
		l := strings.ToLower(d)
		i := strings.Index(l, " name ")
		if i < 0 {
			continue
		}
		names := l[i+len(" name "):]
		if j := strings.Index(names, ")"); strings.HasPrefix(names, "(") && j > 0 {
			names = names[:j]
		} else if j := strings.Index(names, " "); j > 0 {
			names = names[:j]
		}
		if strings.Contains(names, quoted) {
			return true
		}
	}
	return false
}
