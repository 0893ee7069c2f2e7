package ldapdir

import "github.com/go-ldap/ldap/v3"

// requestFilter asserts the set is still at epoch and carries the release
// request seen ("" for none). Writes that answer, make or reject a release
// request assert it (Write.AssertRequest): a requester deciding on a stale
// view cannot overwrite a request another agent wrote since — which may be
// better placed — and an owner cannot hand a set to, or reject, a request
// it has not judged; each gets ErrConflict instead, re-reads and decides
// again.
func requestFilter(epoch int64, seen string) string {
	if seen == "" {
		return "(&" + epochFilter(epoch) + "(!(tcsReleaseRequest=*)))"
	}
	return "(&" + epochFilter(epoch) + "(tcsReleaseRequest=" + ldap.EscapeFilter(seen) + "))"
}
