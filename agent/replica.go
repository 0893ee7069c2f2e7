package agent

import (
	"context"

	"github.com/sirupsen/logrus"

	"tcs/smartset"
)

// confirmOrphans keeps, of the orphan claims about to be written, those whose
// former owner the directory confirms gone. The view's services can lag the
// directory: a read replica's state, or this agent's own watch while it
// reconnects (a chaos run, seed 1796309500: an agent whose watch had been
// cut saw a lease expire, missed the owner registering again, and its
// delayed search for the lost owner's sets then brought sets that owner
// had claimed since; it took them from the live owner, which went on
// answering at the old epoch). A set re-read from the directory can so
// name an owner that registered after the view's state, which the view
// takes for a dead one; a claim on it would win the compare-and-swap and
// take the set from a live agent. One search per former owner; an owner
// that cannot be checked keeps its sets this time. Unowned sets need no
// check: the epoch assertion covers them.
func (a *Agent) confirmOrphans(ctx context.Context, claims []smartset.Set) []smartset.Set {
	if len(claims) == 0 {
		return claims
	}
	gone := map[string]bool{}
	keep := claims[:0]
	for _, s := range claims {
		if s.Owner == "" {
			keep = append(keep, s)
			continue
		}
		k := smartset.Key(s.Owner)
		dead, ok := gone[k]
		if !ok {
			live, err := a.dir.ServiceLive(ctx, s.Owner)
			dead = err == nil && !live
			gone[k] = dead
			if err == nil && live {
				a.log.WithFields(logrus.Fields{"owner": s.Owner}).Debug("the view lags: an owner it does not show is live in the directory; not claiming its sets")
			}
		}
		if dead {
			keep = append(keep, s)
		}
	}
	return keep
}
