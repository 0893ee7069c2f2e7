package chaos

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// AccessLogBase is the suffix of slapo-accesslog's database in the shipped
// configuration (schema/overlay-accesslog.ldif).
const AccessLogBase = "cn=accesslog"

// accessLogFilter selects the committed writes (reqResult 0) of the data tree.
const accessLogFilter = "(&(|(objectClass=auditModify)(objectClass=auditAdd)(objectClass=auditDelete))(reqResult=0))"

// Searcher is the one directory call ReadCommits needs (*ldap.Conn has it).
type Searcher interface {
	Search(*ldap.SearchRequest) (*ldap.SearchResult, error)
}

// ReadCommits reads back from the accesslog every committed write to a set
// under setsDN (e.g. "ou=smartsets,dc=example,dc=org"), in commit order.
// It needs a connection bound as the rootDN (the log is readable by no one
// else).
func ReadCommits(s Searcher, setsDN string) ([]Commit, error) {
	res, err := s.Search(ldap.NewSearchRequest(AccessLogBase, ldap.ScopeSingleLevel, ldap.NeverDerefAliases,
		0, 0, false, accessLogFilter, []string{"reqStart", "reqType", "reqDN", "reqMod", "reqAuthzID"}, nil))
	if err != nil {
		return nil, fmt.Errorf("reading the accesslog %s: %w", AccessLogBase, err)
	}
	var out []Commit
	for _, e := range res.Entries {
		if c, ok := commitFromEntry(e, setsDN); ok {
			out = append(out, c)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out, nil
}

// commitFromEntry turns one accesslog record into a Commit when it is a
// write to a set directly under setsDN.
func commitFromEntry(e *ldap.Entry, setsDN string) (Commit, bool) {
	dn, err := ldap.ParseDN(e.GetAttributeValue("reqDN"))
	if err != nil || len(dn.RDNs) < 2 {
		return Commit{}, false
	}
	parent := &ldap.DN{RDNs: dn.RDNs[1:]}
	want, err := ldap.ParseDN(setsDN)
	if err != nil || !parent.EqualFold(want) || len(dn.RDNs[0].Attributes) != 1 {
		return Commit{}, false
	}
	c := Commit{
		Seq:  e.GetAttributeValue("reqStart"),
		Set:  dn.RDNs[0].Attributes[0].Value,
		Type: e.GetAttributeValue("reqType"),
		By:   e.GetAttributeValue("reqAuthzID"),
	}
	c.At = generalizedTime(c.Seq)
	for _, m := range e.GetAttributeValues("reqMod") {
		attr, op, val := splitReqMod(m)
		switch strings.ToLower(attr) {
		case "owner":
			if op == "=" || op == "+" {
				c.Owner = normDN(val)
			}
		case "tcsepoch":
			if op == "=" || op == "+" {
				c.Epoch, _ = strconv.ParseInt(strings.TrimSpace(val), 10, 64)
			}
		case "entrycsn":
			if t := generalizedTime(val); !t.IsZero() {
				c.At = t
			}
		}
	}
	return c, true
}

// splitReqMod splits "attr:<op> value" (op is one of = + - #).
func splitReqMod(m string) (attr, op, val string) {
	i := strings.IndexByte(m, ':')
	if i < 0 || i+1 >= len(m) {
		return m, "", ""
	}
	attr, op, val = m[:i], m[i+1:i+2], m[i+2:]
	return attr, op, strings.TrimPrefix(val, " ")
}

// generalizedTime parses "YYYYmmddHHMMSS[.ffffff]Z[#...]" (reqStart, entryCSN).
func generalizedTime(s string) time.Time {
	if i := strings.IndexByte(s, '#'); i >= 0 {
		s = s[:i]
	}
	for _, layout := range []string{"20060102150405.999999Z", "20060102150405Z"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	return time.Time{}
}

// normDN lower-cases a DN and drops spaces after separators, the way the
// checker compares owners.
func normDN(s string) string {
	if dn, err := ldap.ParseDN(s); err == nil {
		parts := make([]string, len(dn.RDNs))
		for i, r := range dn.RDNs {
			var as []string
			for _, a := range r.Attributes {
				as = append(as, strings.ToLower(a.Type)+"="+strings.ToLower(a.Value))
			}
			parts[i] = strings.Join(as, "+")
		}
		return strings.Join(parts, ",")
	}
	return strings.ToLower(strings.TrimSpace(s))
}
