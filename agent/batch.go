package agent

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	"tcs/ldapdir"
	"tcs/smartset"
)

// errFenced stops a batch: the agent's lease is not valid, so it writes
// nothing.
var errFenced = errors.New("agent: fenced: lease not valid")

// errMovedOn fails a batched write, unsent, whose set the view has seen
// at a newer epoch since the write was planned: the write asserts the old
// epoch and could only lose. On a loaded directory a batch sent one write
// at a time takes minutes, and the world moves meanwhile: in the scale run
// (README, Benchmarks) one agent's 5,000 claims, planned while it saw no
// other agent of its location, took 16 minutes, and 4,299 of them went to
// sets the others had claimed long before — 268,000 writes that could
// only fail, each still a write for slapd to log.
var errMovedOn = errors.New("agent: the set has moved on since the write was planned")

// errRaced fails a claim, unsent, once another claim of the same batch and
// kind (rank 0, or helping: rank k) for a set of the same group (former
// owner and location) has lost its race: someone else is claiming that
// group, and the plan the batch was made from is out of date. The scale
// run (README, Benchmarks) showed both ways a plan goes stale while a
// batch of thousands of single writes takes minutes: an agent planned its
// share of a location while it saw fewer agents there than there were,
// and agents of rank k whose watch lagged minutes saw no progress by rank
// 0 and claimed everything — in both, the writes lost one after another
// (66,570 of 166,000 writes in run D). The first loss is news the view
// does not have yet: the rest waits for the next reconcile, which plans
// with the lost set re-read and, for rank k, after a longer wait (see
// raced). Each agent sends its claims in an order of its own
// (claimsInOrder), so agents claiming the same sets meet only now and then.
var errRaced = errors.New("agent: another claim of the same group lost its race in this batch")

// group is what a claim was planned with: the set's former owner ("" for
// a set never owned) and its location.
type group struct{ owner, location string }

func groupOf(s smartset.Set) group {
	return group{smartset.Key(s.Owner), smartset.Key(s.Location)}
}

// raceKey is what one lost claim stops in its batch: the claims of the same
// group and the same kind. A helping claim (rank k) that meets the
// better-ranked agents' progress does not stop the agent's own rank-0
// claims of the group, nor the other way round.
type raceKey struct {
	group
	helping bool
}

// movedOn reports errMovedOn when the view holds set s at a newer epoch
// than s.
func (a *Agent) movedOn(s smartset.Set) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if cur, ok := a.v.snap.Sets[smartset.Key(s.Name)]; ok && cur.Epoch > s.Epoch {
		return errMovedOn
	}
	return nil
}

// pending is one write of a batch and what to do when it succeeds.
type pending struct {
	w       ldapdir.Write
	op      string // claim, transfer, release, request, clear: the metric label
	reason  string // for ownership changes: why (smartset.Reason*)
	helping bool   // a claim of rank k > 0: the better-ranked agents made no progress
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
// offers them), checking right before each write is sent (or queued in a
// transaction) that the lease is valid and that the view has not seen its
// set move on (errMovedOn), and records the outcome of each write as the
// single-write path did. It returns for each write the set as written
// (epoch floor included), nil where the write was not applied.
func (a *Agent) batch(ctx context.Context, ps []pending) []*smartset.Set {
	ok := make([]*smartset.Set, len(ps))
	if len(ps) == 0 || !a.valid() {
		return ok
	}
	ws := make([]ldapdir.Write, len(ps))
	var giving []string
	a.mu.Lock()
	for i, p := range ps {
		ws[i] = p.w
		if p.w.Kind == ldapdir.SetOwner && smartset.SameDN(p.w.Set.Owner, a.selfDN) && !smartset.SameDN(p.w.To, a.selfDN) {
			key := smartset.Key(p.w.Set.Name)
			a.giving[key]++ // stop serving it before the write can commit
			giving = append(giving, key)
		}
	}
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		for _, key := range giving {
			if a.giving[key]--; a.giving[key] <= 0 {
				delete(a.giving, key)
			}
		}
		a.mu.Unlock()
	}()
	start := time.Now()
	var (
		racedMu sync.Mutex
		raced   = map[raceKey]bool{}
	)
	res, stats := a.dir.WriteBatch(ctx, ws, ldapdir.BatchHooks{
		Gate: func(i int) error {
			if !a.valid() {
				return errFenced
			}
			if ps[i].op == "claim" {
				racedMu.Lock()
				lost := raced[raceKey{groupOf(ws[i].Set), ps[i].helping}]
				racedMu.Unlock()
				if lost {
					return errRaced
				}
			}
			return a.movedOn(ws[i].Set)
		},
		Done: func(i int, r ldapdir.Result) {
			if ps[i].op != "claim" || !errors.Is(r.Err, ldapdir.ErrConflict) {
				return
			}
			k := raceKey{groupOf(ws[i].Set), ps[i].helping}
			racedMu.Lock()
			first := !raced[k]
			raced[k] = true
			racedMu.Unlock()
			if first {
				a.raced(k)
			}
		},
	})
	// A group whose claims all went through is no longer behind.
	clean := map[group]bool{}
	for i, r := range res {
		if ps[i].op == "claim" && r.Err == nil {
			if g := groupOf(ws[i].Set); !raced[raceKey{g, false}] && !raced[raceKey{g, true}] {
				clean[g] = true
			}
		}
	}
	if len(clean) > 0 {
		a.mu.Lock()
		for g := range clean {
			delete(a.behind, g)
		}
		a.mu.Unlock()
	}
	a.m.BatchTransactions.WithLabelValues("committed").Add(float64(stats.Transactions))
	a.m.BatchTransactions.WithLabelValues("aborted").Add(float64(stats.Aborted))
	a.m.WriteWindow.Set(float64(stats.Window))
	skipped, stopped := 0, 0
	for _, r := range res {
		switch {
		case errors.Is(r.Err, errMovedOn):
			skipped++
		case errors.Is(r.Err, errRaced):
			stopped++
		}
	}
	if len(ps) > 1 || stats.Aborted > 0 {
		a.log.WithFields(logrus.Fields{"writes": len(ps), "transactions": stats.Transactions, "aborted": stats.Aborted,
			"single": stats.Single, "window": stats.Window, "moved_on": skipped, "raced": stopped,
			"took": time.Since(start).Round(time.Millisecond)}).Debug("batch written")
	}
	// Successes first (cheap, in order), then the failures, whose re-reads
	// go several at a time.
	var failed []int
	for i, r := range res {
		if r.Err != nil {
			failed = append(failed, i)
			continue
		}
		ok[i] = &res[i].Set
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
		case errors.Is(r.Err, errMovedOn), errors.Is(r.Err, errRaced):
			// Not sent; the view holds the newer state (or, after a lost
			// race, will once the loser is re-read), which the next
			// reconcile plans from.
			a.poke()
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
