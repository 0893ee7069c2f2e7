package agent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	"tcs/ldapdir"
	"tcs/smartset"
)

// Options configure an Agent. Zero durations take the defaults shown.
type Options struct {
	Service smartset.Service // Name, Location, Endpoint, Capacity

	LeaseTTL      time.Duration // 5s; whole seconds
	RenewDeadline time.Duration // 2/3 of LeaseTTL, at most ldapdir.LeaseSafeFor(LeaseTTL)

	ClaimStagger      time.Duration // δ between orphan-claim ranks: 500ms
	ReconcileInterval time.Duration // level-triggered timer: 2s
	MoveInterval      time.Duration // move budget window: 1s
	MoveBudget        int           // release requests per MoveInterval: 64
	HysteresisKm      float64       // smartset.DefaultHysteresisKm when 0; <0 means 0
	SweepInterval     time.Duration // safety-net re-read of every set; 0 = off

	Poll         bool          // watch by polling instead of syncrepl
	PollInterval time.Duration // 2s

	WriteConcurrency int // parallel writes in one reconcile: 8

	// Tables, when set, keeps the table of every set the agent owns.
	Tables Tables

	// Reads, when set, is the read side of the directory (a Dir from
	// ldapdir.Dir.Reads, on read replicas): the watch, the searches for a
	// dead agent's sets and the HTTP listings use it. Writes, the lease and
	// what must be current (the agent's own sets after it registered, a set
	// re-read after a lost compare-and-swap) use the Dir given to New. The
	// caller closes it.
	Reads *ldapdir.Dir

	Logger  logrus.FieldLogger
	Metrics *Metrics
}

func (o *Options) fill() error {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.LeaseTTL, 5*time.Second)
	def(&o.RenewDeadline, min(o.LeaseTTL*2/3, ldapdir.LeaseSafeFor(o.LeaseTTL)))
	def(&o.ClaimStagger, 500*time.Millisecond)
	def(&o.ReconcileInterval, 2*time.Second)
	def(&o.MoveInterval, time.Second)
	def(&o.PollInterval, 2*time.Second)
	if o.MoveBudget <= 0 {
		o.MoveBudget = 64
	}
	if o.HysteresisKm == 0 {
		o.HysteresisKm = smartset.DefaultHysteresisKm
	} else if o.HysteresisKm < 0 {
		o.HysteresisKm = 0
	}
	if o.WriteConcurrency <= 0 {
		o.WriteConcurrency = 8
	}
	if o.Logger == nil {
		o.Logger = logrus.StandardLogger()
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	switch {
	case o.Service.Name == "":
		return errors.New("agent: service name is empty")
	case o.Service.Location == "":
		return errors.New("agent: service location is empty")
	case o.RenewDeadline > ldapdir.LeaseSafeFor(o.LeaseTTL):
		return fmt.Errorf("agent: renew deadline %v must be at most the lease TTL %v less %v (slapd expires leases in whole seconds, so one can end up to 1s early)",
			o.RenewDeadline, o.LeaseTTL, o.LeaseTTL-ldapdir.LeaseSafeFor(o.LeaseTTL))
	}
	return nil
}

// Agent is one member of the swarm.
type Agent struct {
	opts     Options
	dir      *ldapdir.Dir
	reads    *ldapdir.Dir // the read side: dir, or read replicas (Options.Reads)
	leaseDir *ldapdir.Dir // a connection of its own: refreshes never queue behind bulk writes
	log      logrus.FieldLogger
	m        *Metrics
	selfDN   string

	kick      chan struct{} // a reconcile is wanted (capacity 1: coalesces)
	scopeKick chan struct{} // the live services changed: check the watch's scope (scope.go)

	mu        sync.Mutex
	v         *view
	lease     *ldapdir.Lease
	claimAt   map[string]time.Time // orphan -> when this agent (rank k > 0) may claim it
	progress  map[string]progress  // orphan group (former owner key) -> progress seen
	requested map[string]requested // set -> the release request this agent last wrote
	// behind holds the orphan groups (former owner, location) in which a
	// claim of this agent lost a race, and when: the view is behind the
	// directory there, and the group's claims are checked against it
	// before they are sent (stillListed), until a batch's claims of the
	// group all go through.
	behind map[group]time.Time
	// giving counts, per set, this agent's writes in flight that hand the
	// set to another agent or release it: the agent stops serving a set
	// before it gives it away (serve.go), as a consumer group revokes a
	// partition before assigning it, so the new owner's first answer never
	// comes before the old owner's last.
	giving map[string]int
	counts smartset.Counts // owned counts of the view for HTTP lookups; nil = recount
	tokens int             // move budget left in this window
	window time.Time       // start of the budget window
	// homeOrphanAt is when the view last showed an orphan of this agent's
	// location: balance waits until they have been claimed (reconcile.go).
	homeOrphanAt time.Time
	watch        *ldapdir.Watch
	leaving      bool
	gone         map[string]bool // services whose sets to search for (queueOrphanScan)
	scanning     bool            // a scanOrphans goroutine is at work
	onChange     []func(Change)
	// incarnations are the lease incarnations this process has held: its
	// own service entry showing any other one means another process holds
	// the agent's name.
	incarnations map[string]bool
	recovering   atomic.Bool // a re-read before unfencing is running
	// reclaimFor is the lease registered after the previous one was lost:
	// recover rewrites every owned set under it before unfencing (loops.go).
	reclaimFor atomic.Pointer[ldapdir.Lease]
	switchHold atomic.Int64 // unix ns: fenced until then after a provider switch (mirror.go)

	fenced   atomic.Bool // lease lost or not renewed in time: own nothing, write nothing
	standing broadcast   // fired on fence and unfence (http.go)

	place placement // re-reads after changes, loads of others, bad entries (affected.go)
}

// progress is how many orphans of one group (one former owner) are left,
// and when that number last went down.
type progress struct {
	count int
	at    time.Time
	// backoff stretches the wait between re-checks of a group that keeps
	// making progress (doubling up to the lease TTL), so a rank-k agent
	// does not search a large orphan group several times a second while
	// the rank-0 agent works through it.
	backoff time.Duration
}

// requested is a release request this agent wrote: for which epoch, when.
type requested struct {
	epoch int64
	at    time.Time
}

// requestBackoff is how long a rejected release request is not repeated
// for the same epoch of a set.
const requestBackoff = 5 * time.Second

// balanceHold is how long after the last orphan of its location an agent
// asks for no set for balance: the claims settle the counts first (see
// smartset.Options.HoldBalance), as the watch brings the others' claims.
const balanceHold = 4 * time.Second

// Change is one ownership change this agent saw happen to a set it owns or
// now owns (for the table cache).
type Change struct {
	Set      smartset.Set
	Owned    bool // this agent owns the set now
	Previous smartset.Set
}

// New returns an agent over dir; Run starts it.
func New(dir *ldapdir.Dir, opts Options) (*Agent, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	self := dir.ServiceDN(opts.Service.Name)
	opts.Service.DN = self
	a := &Agent{
		opts:      opts,
		dir:       dir,
		reads:     dir,
		leaseDir:  dir.CloneWithTimeout(max(opts.RenewDeadline, 500*time.Millisecond)),
		log:       opts.Logger.WithField("agent", opts.Service.Name),
		m:         opts.Metrics,
		selfDN:    self,
		kick:      make(chan struct{}, 1),
		scopeKick: make(chan struct{}, 1),
		v:         newView(self, opts.Service.Location),
		claimAt:   map[string]time.Time{},
		progress:  map[string]progress{},
		behind:    map[group]time.Time{},
		requested: map[string]requested{},
		giving:    map[string]int{},
		tokens:    opts.MoveBudget,

		incarnations: map[string]bool{},
	}
	if opts.Reads != nil {
		a.reads = opts.Reads
	}
	dir.OnSwitch(a.providerSwitched)
	if opts.Tables != nil {
		a.onChange = append(a.onChange, a.keepTables)
	}
	return a, nil
}

// DN returns the agent's service DN.
func (a *Agent) DN() string { return a.selfDN }

// OnChange registers f to be called (from the agent's goroutines, without
// locks held) whenever a set this agent owned or now owns changes.
func (a *Agent) OnChange(f func(Change)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.onChange = append(a.onChange, f)
}

// Run registers the agent, watches and reconciles until ctx ends, then
// leaves gracefully: it hands every owned set to the best other live agent
// and deletes its lease entry. It returns nil after a graceful leave, and an
// error wrapping ldapdir.ErrNameHeld when another live process holds the
// agent's name (at start, or after this process lost its lease).
//
// The lease is refreshed until the very end: through the graceful leave,
// which writes only while the lease is valid.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.start(ctx); err != nil {
		a.mu.Lock()
		lease := a.lease
		a.mu.Unlock()
		if lease != nil { // stopped while starting: do not leave a lease behind
			cctx, cancel := context.WithTimeout(context.Background(), a.opts.LeaseTTL)
			lease.Close(cctx)
			cancel()
		}
		a.leaseDir.Close()
		if ctx.Err() != nil {
			return nil // asked to stop before the agent was up: nothing to hand over
		}
		return err
	}
	defer a.leaseDir.Close()
	defer a.watch.Close()

	leaseCtx, stopLease := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLease()
	var leaseErr error
	leaseDone := make(chan struct{})
	go func() {
		defer close(leaseDone)
		leaseErr = a.keepLease(leaseCtx, ctx)
	}()

	loops, lctx := errgroup.WithContext(ctx)
	loops.Go(func() error {
		select {
		case <-leaseDone:
			return leaseErr // the name is held by another process now
		case <-lctx.Done():
			return nil
		}
	})
	loops.Go(func() error { return a.follow(lctx) })
	loops.Go(func() error { return a.reconcileLoop(lctx) })
	loops.Go(func() error { return a.scopeLoop(lctx) })
	if a.opts.SweepInterval > 0 {
		loops.Go(func() error { return a.sweep(lctx) })
	}
	err := loops.Wait()
	if ctx.Err() == nil {
		stopLease()
		<-leaseDone
		return err // a loop failed on its own
	}
	leaveCtx, cancel := context.WithTimeout(context.Background(), a.opts.LeaseTTL*3)
	defer cancel()
	err = a.leave(leaveCtx)
	stopLease()
	<-leaseDone
	a.mu.Lock()
	lease := a.lease
	a.mu.Unlock()
	if cerr := lease.Close(leaveCtx); err == nil {
		err = cerr
	}
	return err
}

// start waits for the directory, registers, starts the watch, and reads what
// the watch does not cover.
func (a *Agent) start(ctx context.Context) error {
	err := retry(ctx, a.log, "reach the directory", func() error {
		if err := a.dir.Ping(ctx); err != nil {
			return err
		}
		if err := a.dir.CheckSchema(ctx); errors.Is(err, ldapdir.ErrNoSchema) {
			return permanent{err} // not a passing fault: say so and stop
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := a.register(ctx); err != nil {
		return err
	}
	// The lease is refreshed while the agent starts, not only once it has:
	// the first refresh of the watch on a loaded directory can take longer
	// than the TTL (a hundred agents starting together each lost the lease
	// they had just registered). A lease lost meanwhile is found by
	// keepLease, which registers again; no write is sent without a valid
	// lease either way.
	a.mu.Lock()
	registered := a.lease
	a.mu.Unlock()
	holdCtx, stopHold := context.WithCancel(ctx)
	held := make(chan struct{})
	go func() {
		defer close(held)
		registered.Run(holdCtx, a.opts.RenewDeadline, func(err error, took time.Duration) {
			a.m.LeaseRefresh.Observe(took.Seconds())
			if err != nil {
				a.m.LeaseFailures.Inc()
				a.log.WithError(err).WithField("took", took).Debug("lease refresh failed while starting")
			}
		})
	}()
	defer func() {
		stopHold()
		<-held
	}()
	w := a.reads.Watch(ctx, ldapdir.WatchSpec{
		Base:         a.dir.BaseDN(),
		Scope:        ldapdir.ScopeSub,
		Filter:       a.startScope(),
		Attrs:        []string{"objectClass", "cn", "geoLocation", "owner", "tcsEpoch", "tcsQuery", "tcsReleaseRequest", "tcsEndpoint", "tcsCapacity", "tcsIncarnation", "tcsCoordinates", "tcsDatabaseURL", "description", "entryCSN"},
		Poll:         a.opts.Poll,
		PollInterval: a.opts.PollInterval,
		// The agent's own lease refreshes reach its watch as modifies of
		// its service entry several times per TTL: a session silent for a
		// whole TTL is stalled.
		IdleTimeout: a.opts.LeaseTTL,
	})
	a.mu.Lock() // Ready reads it from HTTP handlers
	a.watch = w
	a.mu.Unlock()
	// The first refresh, then everything else once.
	if err := a.startFollowing(ctx, func() bool { return a.v.synced }, nil); err != nil {
		a.watch.Close()
		return err
	}
	err = a.startFollowing(ctx, nil, func(ctx context.Context) error {
		return retry(ctx, a.log, "read the sets", func() error { return a.rescan(ctx, false) })
	})
	if err == nil && a.reads != a.dir {
		// A replica's view may predate the registration: what it says this
		// agent owns is confirmed by the provider first (the view never
		// steps back, so the replica's older events cannot undo it).
		err = a.startFollowing(ctx, nil, func(ctx context.Context) error {
			return retry(ctx, a.log, "read its own sets", func() error { return a.confirmOwned(ctx) })
		})
	}
	if err != nil {
		a.watch.Close()
		return err
	}
	a.log.WithFields(logrus.Fields{"dn": a.selfDN, "location": a.opts.Service.Location, "sets_known": a.knownSets()}).Info("agent registered and watching")
	a.mu.Lock()
	l, leftover := a.lease, a.ownsAnyLocked()
	a.mu.Unlock()
	if leftover {
		// Sets a previous process of this name still owns were orphans to
		// the swarm from the moment its lease entry went: claims of them
		// may be in flight at the epoch just read. The agent starts fenced
		// and recover writes them once more before they are served, as
		// after registering again (loops.go, rewriteOwned).
		a.fence("its name's previous process left sets: rewriting them before serving")
		a.reclaimFor.Store(l)
		a.recover(ctx, l)
		return nil
	}
	a.ownAll()
	return nil
}

// register adds the lease entry, retrying until the directory answers. It
// fails (without retrying) when another live process holds the name.
func (a *Agent) register(ctx context.Context) error {
	return retry(ctx, a.log, "register the lease", func() error {
		inc, err := ldapdir.NewIncarnation()
		if err != nil {
			return err
		}
		a.mu.Lock() // known before the watch can show the entry
		a.incarnations[inc] = true
		a.mu.Unlock()
		svc := a.opts.Service
		svc.Incarnation = inc
		l, err := a.leaseDir.RegisterAgain(ctx, svc, a.opts.LeaseTTL, func(inc string) bool {
			a.mu.Lock()
			defer a.mu.Unlock()
			return a.incarnations[inc] // an earlier registration of this process
		})
		if errors.Is(err, ldapdir.ErrNameHeld) || errors.Is(err, ldapdir.ErrNoDDS) {
			return permanent{err}
		}
		if err != nil {
			return err
		}
		a.mu.Lock()
		a.lease = l
		a.mu.Unlock()
		return nil
	})
}

// startFollowing applies the watch's events to the view while the agent
// starts: until done reports true (a.mu held), or until read returns. The
// watch is read all along: slapd holds one of its threads on a client that
// does not read its search results, and a hundred agents starting at once,
// each reading the sets while its watch went unread, held them all (binds
// and lease refreshes then waited for minutes).
func (a *Agent) startFollowing(ctx context.Context, done func() bool, read func(context.Context) error) error {
	var result chan error
	if read != nil {
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		result = make(chan error, 1)
		go func() { result <- read(rctx) }()
		defer func() {
			cancel()
			<-result
		}()
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-result:
			result <- err // for the deferred wait
			return err
		case ev, ok := <-a.watch.Events():
			if !ok {
				return errors.New("agent: watch ended")
			}
			a.mu.Lock()
			a.applyLocked(ctx, ev)
			finished := done != nil && done()
			a.mu.Unlock()
			if finished {
				return nil
			}
		}
	}
}

// rescan reads the sets the watch does not cover (at start and after
// registering again). Unless full, it skips the locations that have a live
// agent: their sets are that agent's to claim and keep (this agent's own
// location is watched anyway), and orphans (watched too), so with agents
// everywhere an agent reads almost nothing here, however many sets there
// are.
func (a *Agent) rescan(ctx context.Context, full bool) error {
	svcs, err := a.dir.Services(ctx)
	if err != nil && svcs == nil {
		return err
	}
	filter := ""
	if !full {
		seen := map[string]bool{smartset.Key(a.opts.Service.Location): true}
		var not strings.Builder
		for _, s := range svcs {
			if k := smartset.Key(s.Location); !seen[k] {
				seen[k] = true
				not.WriteString("(geoLocation=" + ldapdir.EscapeFilter(s.Location) + ")")
			}
		}
		not.WriteString("(geoLocation=" + ldapdir.EscapeFilter(a.opts.Service.Location) + ")")
		// Orphans are in the watch too; and (owner=*) is indexed, so at a
		// start where most sets are orphans slapd reads few entries.
		filter = "(&(owner=*)(!(|" + not.String() + ")))"
	}
	sets, err := a.dir.Sets(ctx, filter)
	if err != nil && sets == nil {
		return err
	}
	if err != nil {
		a.log.WithError(err).Warn("some smartSet entries are malformed and ignored")
	}
	// Services come from the watch only: a search result may be older than
	// a delete the watch has already delivered.
	var changes []Change
	a.mu.Lock()
	for _, s := range sets {
		changes = append(changes, a.putSetLocked(s)...)
	}
	a.mu.Unlock()
	a.notify(changes)
	a.poke()
	return nil
}

// sweep re-reads every set now and then (when configured): a safety net
// for what the focused watch cannot see.
func (a *Agent) sweep(ctx context.Context) error {
	t := time.NewTicker(a.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := a.rescan(ctx, true); err != nil && ctx.Err() == nil {
				a.log.WithError(err).Warn("sweep failed")
			}
		}
	}
}

func (a *Agent) knownSets() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.v.snap.Sets)
}

// poke asks for a reconcile soon.
func (a *Agent) poke() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// valid reports whether the agent may act as an owner now: registered, not
// fenced, and its lease renewed within the renew deadline.
func (a *Agent) valid() bool {
	a.mu.Lock()
	l := a.lease
	a.mu.Unlock()
	ok := l != nil && !a.fenced.Load() && l.Valid(a.opts.RenewDeadline)
	if !ok && !a.fenced.Load() {
		a.fence("lease not renewed within the renew deadline")
	}
	return ok
}

func (a *Agent) fence(why string) {
	if a.fenced.CompareAndSwap(false, true) {
		a.standing.fire()
		a.m.Fenced.Set(1)
		a.log.WithField("reason", why).Warn("fenced: acting as owner of nothing until re-registered")
	}
}

// ownsAnyLocked reports whether the view says this agent owns a set (a.mu
// held).
func (a *Agent) ownsAnyLocked() bool {
	for _, s := range a.v.snap.Sets {
		if s.Owner != "" && smartset.SameDN(s.Owner, a.selfDN) {
			return true
		}
	}
	return false
}

func (a *Agent) unfence() {
	if a.fenced.CompareAndSwap(true, false) {
		a.standing.fire()
		a.m.Fenced.Set(0)
		a.log.Info("unfenced: lease renewed and directory re-read")
	}
}

// retry runs f until it succeeds or ctx ends, with capped exponential
// backoff, logging each failure.
func retry(ctx context.Context, log logrus.FieldLogger, what string, f func() error) error {
	wait := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil {
			return nil
		}
		if p, ok := err.(permanent); ok {
			return p.err
		}
		if errors.Is(err, ldapdir.ErrClosed) {
			return err // the agent is shutting down
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.WithError(err).WithField("attempt", attempt).Warnf("cannot %s; retrying in %v", what, wait)
		if !pause(ctx, wait) {
			return ctx.Err()
		}
		wait = min(wait*2, 5*time.Second)
	}
}

// permanent wraps an error that retry returns at once instead of retrying.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }

func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}
