package ldapdir

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"

	"tcs/smartset"
)

// WriteKind is what one Write of a batch changes.
type WriteKind int

const (
	// SetOwner is a Claim, Transfer or Release: owner := To ("" = none),
	// tcsEpoch := epoch+1, tcsReleaseRequest cleared.
	SetOwner WriteKind = iota
	// SetRequest is a RequestRelease (To = requester) or a ClearRequest
	// (To = ""): the epoch does not move.
	SetRequest
)

// Write is one compare-and-swap of a batch: Set as the writer read it (its
// Epoch is asserted), what changes and to what.
type Write struct {
	Set  smartset.Set
	Kind WriteKind
	To   string
	// AssertRequest: the write also asserts the release request the writer
	// judged (Set.ReleaseRequest, "" for none; see requestFilter): a request
	// written since, by an agent not yet judged, makes it a conflict.
	AssertRequest bool

	floor int64 // the Dir's epoch floor when the batch started (MirrorMode)
}

// nextEpoch is the epoch an ownership write sets: one more than read, and
// at least the Dir's epoch floor after a provider switch (see EpochFloor).
func (w Write) nextEpoch() int64 { return max(w.Set.Epoch+1, w.floor) }

// After returns the set as the write leaves it when it succeeds: the writer
// knows the result without reading it back (post-read is refused inside a
// transaction).
func (w Write) After() smartset.Set {
	s := w.Set
	switch w.Kind {
	case SetOwner:
		s.Owner, s.Epoch, s.ReleaseRequest = w.To, w.nextEpoch(), ""
	case SetRequest:
		s.ReleaseRequest = w.To
	}
	return s
}

func (w Write) modify(dn string, controls ...ldap.Control) (*ldap.ModifyRequest, error) {
	filter := epochFilter(w.Set.Epoch)
	if w.AssertRequest {
		filter = requestFilter(w.Set.Epoch, w.Set.ReleaseRequest)
	}
	assert, err := assertionControl(filter)
	if err != nil {
		return nil, err
	}
	req := ldap.NewModifyRequest(dn, append([]ldap.Control{assert}, controls...))
	switch w.Kind {
	case SetOwner:
		if w.To == "" {
			req.Replace("owner", nil)
		} else {
			req.Replace("owner", []string{w.To})
		}
		req.Replace("tcsEpoch", []string{strconv.FormatInt(w.nextEpoch(), 10)})
		req.Replace("tcsReleaseRequest", nil)
	case SetRequest:
		if w.To == "" {
			req.Replace("tcsReleaseRequest", nil)
		} else {
			req.Replace("tcsReleaseRequest", []string{w.To})
		}
	}
	return req, nil
}

// Result is the outcome of one Write. Err is nil (Set is the set as
// written), ErrConflict (the set moved on; Set is the set as re-read when
// the batch had to re-read it, else zero), ErrNotFound, or another error
// after which the caller re-reads.
type Result struct {
	Set smartset.Set
	Err error
}

// BatchStats counts what WriteBatch did, for metrics and benchmarks.
type BatchStats struct {
	Transactions int // committed
	Aborted      int // ended with a failure (nothing applied) and retried without the losers
	Single       int // writes sent one by one (transactions off or not offered, or a fallback)
	// Window is how many single writes the Dir lets be in flight after
	// the batch (see window): below the most (16), the server answered
	// slower than Config.WriteTarget.
	Window int
}

// BatchHooks lets the writer of a batch act on it while it runs: a batch
// written one by one on a loaded directory can take minutes, and what the
// writer planned it on goes stale meanwhile. Either may be nil; both may be
// called from several goroutines at once.
type BatchHooks struct {
	// Gate is asked about writes[i] right before it is sent, or queued in
	// a transaction: when it returns an error (say the writer's lease is
	// no longer valid, or the writer has since seen the set move on, so
	// the write could only lose), that write fails with it, unsent.
	Gate func(i int) error
	// Done is told the result of writes[i] as soon as it is known: when
	// its single write is answered, or when its transaction commits or is
	// found to have lost. It is not told the writes Gate refused.
	Done func(i int, r Result)
}

func (h BatchHooks) gate(i int) error {
	if h.Gate == nil {
		return nil
	}
	return h.Gate(i)
}

func (h BatchHooks) done(i int, r Result) {
	if h.Done != nil {
		h.Done(i, r)
	}
}

// Batch tuning. The size bounds how long one commit holds slapd's single
// LMDB writer (and so how long a lease refresh can queue behind it); see
// the README's benchmark section for the measurement behind the default.
const (
	DefaultBatchSize = 500
	// DefaultWriteTarget: single writes slower than this shrink the
	// write window (Config.WriteTarget).
	DefaultWriteTarget = 250 * time.Millisecond
	pipeline           = 16 // requests in flight on one connection, at most
	// MaxWritesInFlight is the write window's size when writes are fast.
	MaxWritesInFlight = pipeline
	// txnSettle is the pause between the last queued modify's answer and
	// End Transaction. Measured on slapd 2.5.13: with no pause, slapd
	// crashed within about 100 one-modify transactions; with 2ms it ran
	// 9,240 without a crash. 5ms leaves room for a loaded machine and is
	// small beside the commit of a full batch.
	txnSettle = 5 * time.Millisecond
)

// WriteBatch applies writes, each still a single-entry modify under its own
// epoch assertion, so a batch is exactly as safe as the same writes one by
// one. Where the server offers RFC 5805 transactions (and the Dir's
// TxnMode is auto) they go in transactions of at most BatchSize modifies,
// all-or-nothing each, pipelined on a connection of their own; a
// transaction that fails applies nothing, its losers are found by
// re-reading the batch's sets and the rest is retried. Otherwise the writes
// go one by one, pipelined. results[i] belongs to writes[i].
//
// hooks lets the writer act on the batch while it runs (see BatchHooks).
func (d *Dir) WriteBatch(ctx context.Context, writes []Write, hooks BatchHooks) (results []Result, stats BatchStats) {
	results = make([]Result, len(writes))
	if len(writes) == 0 {
		return results, stats
	}
	floor := d.track.epochFloor()
	writes = append([]Write(nil), writes...)
	for i := range writes {
		writes[i].floor = floor
	}
	defer func() { stats.Window = int(d.writes.size()) }()
	if !d.useTxn(ctx) {
		d.writeSingle(ctx, writes, idx(len(writes)), results, hooks)
		stats.Single = len(writes)
		return results, stats
	}
	d.batchMu.Lock() // one open transaction per connection (slapd answers busy otherwise)
	defer d.batchMu.Unlock()
	size := d.cfg.BatchSize
	all := idx(len(writes))
	for lo := 0; lo < len(writes); lo += size {
		d.writeTxn(ctx, writes, all[lo:min(lo+size, len(writes))], results, &stats, hooks)
	}
	return results, stats
}

func idx(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// useTxn reports whether batches go in transactions: mode auto and the
// server advertising them (asked once; asked again after a failed probe).
func (d *Dir) useTxn(ctx context.Context) bool {
	if d.cfg.Transactions == TxnOff {
		return false
	}
	d.batchMu.Lock()
	defer d.batchMu.Unlock()
	if d.txnKnown {
		return d.txnOK
	}
	ok, err := d.Transactions(ctx)
	if err != nil {
		d.log.WithError(err).Warn("cannot read the root DSE; writing this batch one by one")
		return false
	}
	d.txnKnown, d.txnOK = true, ok
	if !ok {
		d.log.Info("the directory offers no RFC 5805 transactions; batches are single writes")
	}
	return ok
}

// writeTxn writes writes[part] in one transaction, and on failure finds the
// losers and retries the rest until every write has a result.
func (d *Dir) writeTxn(ctx context.Context, writes []Write, part []int, results []Result, stats *BatchStats, hooks BatchHooks) {
	for {
		open := part[:0:0]
		for _, i := range part {
			if err := hooks.gate(i); err != nil {
				results[i] = Result{Err: err}
			} else {
				open = append(open, i)
			}
		}
		if part = open; len(part) == 0 {
			return
		}
		err := d.commit(ctx, writes, part)
		if err == nil {
			for _, i := range part {
				results[i] = Result{Set: writes[i].After()}
				hooks.done(i, results[i])
			}
			stats.Transactions++
			return
		}
		if errors.Is(err, errTxnRefused) || errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
			// Nothing was applied (a transaction that did not commit
			// applies nothing), but the connection or the server's
			// willingness is in doubt: one by one, each with its own answer.
			d.log.WithError(err).Warn("transaction failed; writing its modifies one by one")
			d.writeSingle(ctx, writes, part, results, hooks)
			stats.Single += len(part)
			return
		}
		stats.Aborted++
		// Nothing was applied: find the writes whose set moved on.
		rest := part[:0:0]
		lost := 0
		for k, cur := range d.reread(ctx, writes, part) {
			i := part[k]
			switch {
			case errors.Is(cur.Err, ErrNotFound):
				results[i] = Result{Err: fmt.Errorf("%s: %w", d.SetDN(writes[i].Set.Name), ErrNotFound)}
			case cur.Err != nil:
				results[i] = Result{Err: cur.Err}
			case cur.Set.Epoch != writes[i].Set.Epoch,
				writes[i].AssertRequest && !smartset.SameDN(cur.Set.ReleaseRequest, writes[i].Set.ReleaseRequest):
				results[i] = Result{Set: cur.Set, Err: fmt.Errorf("%s at epoch %d (now %d): %w",
					d.SetDN(writes[i].Set.Name), writes[i].Set.Epoch, cur.Set.Epoch, ErrConflict)}
			default:
				rest = append(rest, i)
				continue
			}
			lost++
			hooks.done(i, results[i])
		}
		if lost == 0 {
			// The failure is not an epoch that moved (say a schema or
			// access error): one by one, so each write gets its own answer.
			d.log.WithError(err).Warn("transaction failed without a lost race; writing its modifies one by one")
			d.writeSingle(ctx, writes, rest, results, hooks)
			stats.Single += len(rest)
			return
		}
		part = rest
	}
}

// commit runs one transaction of writes[part] on the batch connection.
func (d *Dir) commit(ctx context.Context, writes []Write, part []int) error {
	bd := d.batchDir()
	what := fmt.Sprintf("transaction of %d writes", len(part))
	return bd.do(ctx, what, func(c *ldap.Conn) error {
		id, err := startTxn(c)
		if err != nil {
			return err
		}
		spec := txnSpec{id: id}
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			queued error
		)
		next := make(chan int)
		for range min(pipeline, len(part)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					req, err := writes[i].modify(d.SetDN(writes[i].Set.Name), spec)
					if err == nil {
						err = c.Modify(req)
					}
					if err != nil {
						mu.Lock()
						if queued == nil {
							queued = err
						}
						mu.Unlock()
					}
				}
			}()
		}
		for _, i := range part {
			next <- i
		}
		close(next)
		wg.Wait()
		if queued != nil {
			if !isNetwork(queued) && !c.IsClosing() {
				endTxn(c, id, false) // abort; the answer does not matter
			}
			if isNetwork(queued) || c.IsClosing() {
				return queued
			}
			return fmt.Errorf("%w: %v", errTxnRefused, queued)
		}
		// slapd 2.5.13 sends a queued operation's answer before the thread
		// that queued it is done with it; an End Transaction arriving in
		// that window crashed slapd about once in a hundred transactions
		// here. A short pause closes the window (see txnSettle).
		time.Sleep(txnSettle)
		return endTxn(c, id, true)
	})
}

// batchDir returns the Dir whose connection carries transactions, apart
// from the shared one so that reads are never inside a transaction.
func (d *Dir) batchDir() *Dir {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.batch == nil {
		d.batch = d.Clone()
		d.batch.closed = d.closed
	}
	return d.batch
}

// reread reads the sets of writes[part] again, pipelined.
func (d *Dir) reread(ctx context.Context, writes []Write, part []int) []Result {
	out := make([]Result, len(part))
	d.pipelined(len(part), func(k int) {
		s, err := d.Set(ctx, writes[part[k]].Set.Name)
		out[k] = Result{Set: s, Err: err}
	})
	return out
}

// writeSingle writes writes[part] one compare-and-swap at a time, pipelined
// on the shared connection, as many in flight as the Dir's write window
// allows (see window).
func (d *Dir) writeSingle(ctx context.Context, writes []Write, part []int, results []Result, hooks BatchHooks) {
	d.pipelined(len(part), func(k int) {
		i := part[k]
		w := writes[i]
		if err := d.writes.acquire(ctx); err != nil {
			results[i] = Result{Err: err}
			hooks.done(i, results[i])
			return
		}
		var took time.Duration
		defer func() { d.writes.release(took) }()
		if err := hooks.gate(i); err != nil { // after the wait: the lease may have gone, or the set moved on, meanwhile
			results[i] = Result{Err: err}
			return
		}
		defer func() { hooks.done(i, results[i]) }()
		req, err := w.modify(d.SetDN(w.Set.Name))
		if err == nil {
			start := time.Now()
			err = d.do(ctx, fmt.Sprintf("write %s at epoch %d", d.SetDN(w.Set.Name), w.Set.Epoch), func(c *ldap.Conn) error {
				return c.Modify(req)
			})
			if ctx.Err() == nil {
				took = time.Since(start) // answered, refused (a lost race) or timed out: all say how loaded the server is
			}
		}
		if err != nil {
			results[i] = Result{Err: err}
			return
		}
		results[i] = Result{Set: w.After()}
	})
}

// pipelined runs f(0..n-1) from up to pipeline goroutines.
func (d *Dir) pipelined(n int, f func(int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(pipeline, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				f(k)
			}
		}()
	}
	for k := range n {
		next <- k
	}
	close(next)
	wg.Wait()
}
