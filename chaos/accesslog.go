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
		0, 0, false, accessLogFilter, []string{"reqStart", "reqType", "reqDN", "reqMod", "reqAuthzID", "entryCSN"}, nil))
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
	c.CSN = e.GetAttributeValue("entryCSN") // the logged operation's CSN
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
				c.CSN = strings.TrimSpace(val)
			}
		}
	}
	return c, true
}

// CSNServer returns the server ID field of a CSN
// ("20261202133033.616668Z#000000#001#000000" -> "001"), "" when csn is not
// one.
func CSNServer(csn string) string {
	f := strings.Split(csn, "#")
	if len(f) != 4 {
		return ""
	}
	return f[2]
}

// MergeCommits merges the accesslogs of the providers of a MirrorMode pair
// into one history of the writes the pair took, in commit order. Each
// provider's log holds the writes it took itself and the ones it
// replicated from its peer (syncrepl's writes are logged too); a write is
// kept from the log of the provider that took it: the server ID in its CSN
// is that provider's (logs maps a server ID, "001", to that provider's
// records). A record without a CSN (a delete) is kept once per set and
// second. The writes a provider took and never replicated (a kill -9
// before its peer had them) are in its log only: they are kept, as commits
// some client may have seen; Commit.Replicated says when the peer had each
// write, zero when it never did: the write was lost (see reached).
func MergeCommits(logs map[string][]Commit) []Commit {
	var out []Commit
	type del struct {
		set string
		at  int64
	}
	seen := map[del]bool{}
	copies := map[string]time.Time{} // set and CSN -> when the peer logged it
	for sid, cs := range logs {
		for _, c := range cs {
			if c.CSN != "" && CSNServer(c.CSN) != sid {
				copies[c.Set+" "+c.CSN] = generalizedTime(c.Seq)
			}
		}
	}
	sids := make([]string, 0, len(logs))
	for sid := range logs {
		sids = append(sids, sid)
	}
	sort.Strings(sids)
	for _, sid := range sids {
		for _, c := range logs[sid] {
			if c.CSN != "" {
				if CSNServer(c.CSN) == sid {
					out = append(out, c)
				}
				continue
			}
			k := del{c.Set, c.At.Unix()}
			if !seen[k] {
				seen[k] = true
				out = append(out, c)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].At.Equal(out[j].At) {
			return out[i].At.Before(out[j].At)
		}
		return out[i].Seq < out[j].Seq
	})
	reached(out, copies)
	return out
}

// reached sets Replicated on the merged writes (in commit order) from the
// peer's copies. A provider that was down or behind catches up by a
// refresh, which carries only the latest state of an entry: a write
// reached the peer when the peer logged it, or a later write of the set by
// the same provider before any write of the peer's own to the set (that
// state descends from it). A write of the peer's own first means the peer
// wrote the set without it: the write was lost, even if its provider,
// back later, writes the set again.
func reached(out []Commit, copies map[string]time.Time) {
	bySet := map[string][]int{}
	for i, c := range out {
		if c.CSN != "" {
			bySet[c.Set] = append(bySet[c.Set], i)
		}
	}
	for set, idx := range bySet {
		for k, i := range idx {
			sid := CSNServer(out[i].CSN)
			var first time.Time
			for _, j := range idx[k:] {
				if CSNServer(out[j].CSN) != sid {
					break
				}
				if at, ok := copies[set+" "+out[j].CSN]; ok && (first.IsZero() || at.Before(first)) {
					first = at
				}
			}
			out[i].Replicated = first
		}
	}
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
