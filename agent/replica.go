package agent

import (
	"context"

	"github.com/sirupsen/logrus"

	"tcs/smartset"
)

// confirmOrphans keeps, of the orphan claims about to be written, those whose
// former owner the provider confirms gone. Only with read replicas
// (Options.Reads): a replica's view of the services can lag the provider,
// and a set re-read from the provider after a lost compare-and-swap can name
// an owner that registered after the replica's state, which the view would
// take for a dead one. A claim on such a set would win the compare-and-swap
// and take a set from a live agent. One search per former owner; an owner
// that cannot be checked keeps its sets this time. Unowned sets need no
// check: the epoch assertion covers them.
func (a *Agent) confirmOrphans(ctx context.Context, claims []smartset.Set) []smartset.Set {
	if a.reads == a.dir || len(claims) == 0 {
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
				a.log.WithFields(logrus.Fields{"owner": s.Owner}).Debug("the read replica lags: an owner it does not show is live on the provider; not claiming its sets")
			}
		}
		if dead {
			keep = append(keep, s)
		}
	}
	return keep
}
