package agent

import (
	"sync"

	"github.com/sirupsen/logrus"

	"tcs/smartset"
)

// aclChecks holds, by agent, bind DN and attribute, how many failed
// compare-and-swap writes in a row found the asserted value in place, and
// whether that was logged: each problem is logged once per process, not
// once per write.
var aclChecks sync.Map // string -> *aclCheck

type aclCheck struct {
	mu       sync.Mutex
	inARow   int
	reported bool
}

// aclSuspectAfter is how many failed writes in a row must find the
// asserted value in place before the agent calls it an access problem (a
// single one could be a write that failed for another entry's sake).
const aclSuspectAfter = 3

// checkAssertion looks at a set re-read after a compare-and-swap write
// failed with result 122. Losing a race moves the epoch; a set still at
// the very epoch the write asserted means the assertion failed on a value
// that matches, which is what slapd answers when the bind DN lacks search
// access to the asserted attribute. That is a permissions mistake, not a
// race, and every such write will fail the same way: say so, once.
func (a *Agent) checkAssertion(op string, asserted int64, now smartset.Set) {
	const attr = "tcsEpoch"
	bindDN := a.dir.BindDN()
	v, _ := aclChecks.LoadOrStore(a.selfDN+"\x00"+bindDN+"\x00"+attr, &aclCheck{})
	c := v.(*aclCheck)
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Epoch != asserted {
		c.inARow = 0 // a real race: someone else wrote
		return
	}
	if c.inARow++; c.inARow < aclSuspectAfter || c.reported {
		return
	}
	c.reported = true
	a.log.WithFields(logrus.Fields{
		"attribute": attr, "bind_dn": bindDN, "set": now.Name, "epoch": asserted, "op": op,
	}).Errorf("compare-and-swap failed although the set is at the asserted epoch: the directory does not let %s search %s "+
		"(an assertion it may not evaluate fails with result 122, like a lost race); every ownership write will fail until "+
		"the access rules give it search (read) access to %s (README: Security model)", bindDN, attr, attr)
}
