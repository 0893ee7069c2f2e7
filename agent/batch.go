package agent

import (
	"context"
	"errors"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	"tcs/ldapdir"
	"tcs/smartset"
)

// errFenced stops a batch: the agent's lease is not valid, so it writes
// nothing.
var errFenced = errors.New("agent: fenced: lease not valid")

// pending is one write of a batch and what to do when it succeeds.
type pending struct {
	w      ldapdir.Write
	op     string // claim, transfer, release, request, clear: the metric label
	reason string // for ownership changes: why (smartset.Reason*)
}

func claimOf(s smartset.Set, self string) pending {
	return pending{w: ldapdir.Write{Set: s, Kind: ldapdir.SetOwner, To: self}, op: "claim", reason: smartset.ReasonOrphan}
}

// handoffOf answers a release request asserting the request is still the
// one judged (a better-placed agent's newer request is answered instead).
func handoffOf(mv smartset.Move, reason string) pending {
	op := "transfer"
	if mv.To == "" {
		op = "release"
	}
	answers := mv.To != "" && mv.Set.ReleaseRequest != "" && smartset.SameDN(mv.Set.ReleaseRequest, mv.To)
	return pending{w: ldapdir.Write{Set: mv.Set, Kind: ldapdir.SetOwner, To: mv.To, AssertRequest: answers}, op: op, reason: reason}
}

// requestOf never writes over a request written since the set was read.
func requestOf(s smartset.Set, self string) pending {
	return pending{w: ldapdir.Write{Set: s, Kind: ldapdir.SetRequest, To: self, AssertRequest: true}, op: "request"}
}

// clearOf rejects only the request judged.
func clearOf(s smartset.Set) pending {
	return pending{w: ldapdir.Write{Set: s, Kind: ldapdir.SetRequest, AssertRequest: true}, op: "clear"}
}

// batch sends ps in one ldapdir batch (transactions where the directory
// offers them), checking the lease right before each transaction is sent,
// and records the outcome of each write as the single-write path did. It
// returns for each write whether it was applied.
func (a *Agent) batch(ctx context.Context, ps []pending) []bool {
	ok := make([]bool, len(ps))
	if len(ps) == 0 || !a.valid() {
		return ok
	}
	ws := make([]ldapdir.Write, len(ps))
	for i, p := range ps {
		ws[i] = p.w
	}
	defer a.resumeServing(a.stopServing(ps))
	start := time.Now()
	res, stats := a.dir.WriteBatch(ctx, ws, func() error {
		if !a.valid() {
			return errFenced
		}
		return nil
	})
	a.m.BatchTransactions.WithLabelValues("committed").Add(float64(stats.Transactions))
	a.m.BatchTransactions.WithLabelValues("aborted").Add(float64(stats.Aborted))
	if len(ps) > 1 || stats.Aborted > 0 {
		a.log.WithFields(logrus.Fields{"writes": len(ps), "transactions": stats.Transactions, "aborted": stats.Aborted,
			"single": stats.Single, "took": time.Since(start).Round(time.Millisecond)}).Debug("batch written")
	}
	// Successes first (cheap, in order), then the failures, whose re-reads
	// go several at a time.
	var failed []int
	for i, r := range res {
		if r.Err != nil {
			failed = append(failed, i)
			continue
		}
		ok[i] = true
		a.m.Writes.WithLabelValues(ps[i].op, "ok").Inc()
		a.applied(ps[i], r.Set)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(a.opts.WriteConcurrency)
	for _, i := range failed {
		p, r := ps[i], res[i]
		switch {
		case errors.Is(r.Err, errFenced):
			a.m.Writes.WithLabelValues(p.op, "fenced").Inc()
		case errors.Is(r.Err, ldapdir.ErrConflict) && r.Set.Name != "":
			// The batch re-read the set already: no second read.
			a.m.Writes.WithLabelValues(p.op, "conflict").Inc()
			a.m.CASConflicts.WithLabelValues(p.op).Inc()
			a.log.WithFields(logrus.Fields{"set": p.w.Set.Name, "epoch": p.w.Set.Epoch, "op": p.op}).Debug("lost a compare-and-swap race; re-reading")
			a.mu.Lock()
			changes := a.putSetLocked(r.Set)
			a.mu.Unlock()
			a.notify(changes)
			a.poke()
		default:
			if p.w.AssertRequest {
				g.Go(func() error { a.wroteRequest(gctx, p.op, p.w.Set, r.Err); return nil })
			} else {
				g.Go(func() error { a.wrote(gctx, p.op, p.w.Set, r.Err); return nil })
			}
		}
	}
	g.Wait()
	return ok
}

// stopServing stops serving the sets that ps give away before they are
// written, and returns their keys for resumeServing. A handoff commits
// before its reply arrives, and a batch's replies are applied once all
// have come: the new owner may serve the next epoch meanwhile (found by
// the chaos run: a leaving agent answered 200 at epoch 6 0.4 s after the
// set's new owner had answered at 7). Not serving first keeps a set from
// being served at two epochs at once; a failed write serves it again.
func (a *Agent) stopServing(ps []pending) []string {
	var keys []string
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range ps {
		if (p.op == "transfer" || p.op == "release") && smartset.SameDN(p.w.Set.Owner, a.selfDN) {
			k := smartset.Key(p.w.Set.Name)
			a.giving[k]++
			keys = append(keys, k)
		}
	}
	return keys
}

// resumeServing ends what stopServing began (the view says by then whether
// the agent still owns each set).
func (a *Agent) resumeServing(keys []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, k := range keys {
		if a.giving[k]--; a.giving[k] <= 0 {
			delete(a.giving, k)
		}
	}
}

// applied records one successful write of a batch.
func (a *Agent) applied(p pending, after smartset.Set) {
	s := p.w.Set
	switch p.op {
	case "claim", "transfer", "release":
		a.owned(s, after, p.reason)
	case "request":
		a.log.WithFields(logrus.Fields{"set": s.Name, "owner": s.Owner, "epoch": s.Epoch}).Info("asked the owner to hand the set over")
		a.mu.Lock()
		a.v.putSet(after) // not an ownership change
		a.requested[smartset.Key(s.Name)] = requested{epoch: s.Epoch, at: time.Now()}
		a.mu.Unlock()
	case "clear":
		a.log.WithFields(logrus.Fields{"set": s.Name, "requester": s.ReleaseRequest, "epoch": s.Epoch}).Info("rejected a release request (requester gone or not better placed)")
		a.mu.Lock()
		changes := a.putSetLocked(after)
		a.mu.Unlock()
		a.notify(changes)
	}
}
