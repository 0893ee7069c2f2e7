package chaos

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// The names of the checks, one per invariant of issue 10.
const (
	CheckEpochs       = "1-epochs-increase"       // per set, committed epochs strictly increase, one owner each
	CheckOneServer    = "2-one-process-per-epoch" // no two live processes answer 200 for a set at one epoch
	CheckFencing      = "3-no-older-after-newer"  // no 200 at an older epoch after another process's newer one completed
	CheckAvailability = "4-reowned-within-ttl+3s" // an owner's loss is repaired within TTL + 3 s
	CheckOptimal      = "5-optimal-after-faults"  // every set placed optimally within TTL + 10 s of the last fault
	CheckNothingLost  = "6-nothing-lost"          // sets intact, unkilled processes still running
)

// Checks lists the check names in order.
var Checks = []string{CheckEpochs, CheckOneServer, CheckFencing, CheckAvailability, CheckOptimal, CheckNothingLost}

// Result is one check's outcome: how many things it checked and what broke.
type Result struct {
	Name       string
	Checked    int
	Excused    int // not checkable (e.g. the directory was down in the window)
	Violations []Violation
}

// Violation is one broken invariant, on one set where it concerns a set.
type Violation struct {
	Check  string
	Set    string
	At     time.Time
	Detail string
}

func (v Violation) String() string {
	if v.Set == "" {
		return fmt.Sprintf("%s: %s", v.Check, v.Detail)
	}
	return fmt.Sprintf("%s: set %s: %s", v.Check, v.Set, v.Detail)
}

// Slack absorbs the sampling period of the directory watcher and the
// loaded machine in the timing checks (4 and 5).
const Slack = 750 * time.Millisecond

// Check runs every check over h.
func Check(h *History) []Result {
	return []Result{
		checkEpochs(h), checkOneServer(h), checkFencing(h),
		checkAvailability(h), checkOptimal(h), checkNothingLost(h),
	}
}

// checkEpochs: invariant 1, over the accesslog's committed writes. A set's
// epochs restart when it is deleted and added again.
func checkEpochs(h *History) Result {
	r := Result{Name: CheckEpochs}
	type last struct {
		epoch int64
		owner string
		seq   string
	}
	prev := map[string]last{}
	for _, c := range h.Commits {
		switch c.Type {
		case "add", "delete":
			delete(prev, c.Set)
			continue
		}
		if c.Epoch == 0 {
			continue // a release request: no epoch change
		}
		r.Checked++
		p, ok := prev[c.Set]
		switch {
		case !ok:
		case c.Epoch == p.epoch && c.Owner != p.owner:
			r.Violations = append(r.Violations, Violation{Check: r.Name, Set: c.Set, At: c.At,
				Detail: fmt.Sprintf("epoch %d committed with two owners: %q (%s) and %q (%s, by %s)",
					c.Epoch, p.owner, p.seq, c.Owner, c.Seq, c.By)})
		case c.Epoch <= p.epoch:
			r.Violations = append(r.Violations, Violation{Check: r.Name, Set: c.Set, At: c.At,
				Detail: fmt.Sprintf("epoch went from %d (%s) to %d (%s, owner %q, by %s)",
					p.epoch, p.seq, c.Epoch, c.Seq, c.Owner, c.By)})
		}
		prev[c.Set] = last{c.Epoch, c.Owner, c.Seq}
	}
	return r
}

// good reports whether a read counts for invariants 2 and 3: a 200 that is
// not a ?stale answer of a fenced agent.
func good(rd Read) bool { return rd.Status == 200 && !rd.Fenced && rd.Epoch > 0 }

func overlap(a, b *Process) bool {
	end := func(p *Process) time.Time {
		if p.End.IsZero() {
			return time.Unix(1<<40, 0)
		}
		return p.End
	}
	lo := a.Start
	if b.Start.After(lo) {
		lo = b.Start
	}
	hi := end(a)
	if end(b).Before(hi) {
		hi = end(b)
	}
	return lo.Before(hi)
}

// checkOneServer: invariant 2. Two processes that answered 200 for one set
// at one epoch break it when both were alive at once (a restarted process
// of the same agent that takes its sets back at the same epoch after the
// old one died does not).
func checkOneServer(h *History) Result {
	r := Result{Name: CheckOneServer}
	type key struct {
		set   string
		epoch int64
	}
	type seen struct {
		p     *Process
		first Read
	}
	by := map[key][]seen{}
	for _, rd := range h.Reads {
		if !good(rd) {
			continue
		}
		p := h.process(rd.Port, rd.End)
		if p == nil {
			continue
		}
		r.Checked++
		k := key{rd.Set, rd.Epoch}
		found := false
		for _, s := range by[k] {
			if s.p == p {
				found = true
				break
			}
		}
		if found {
			continue
		}
		for _, s := range by[k] {
			if overlap(s.p, p) {
				r.Violations = append(r.Violations, Violation{Check: r.Name, Set: rd.Set, At: rd.End,
					Detail: fmt.Sprintf("epoch %d served with 200 by %s (%s) and by %s (%s) while both ran",
						rd.Epoch, s.p.ID, span(h, s.first.Start, s.first.End), p.ID, span(h, rd.Start, rd.End))})
			}
		}
		by[k] = append(by[k], seen{p, rd})
	}
	return r
}

// checkFencing: invariant 3.
func checkFencing(h *History) Result {
	r := Result{Name: CheckFencing}
	for set, reads := range h.readsBySet() {
		var good200 []Read
		for _, rd := range reads {
			if good(rd) {
				good200 = append(good200, rd)
			}
		}
		byEnd := append([]Read(nil), good200...)
		sort.Slice(byEnd, func(i, j int) bool { return byEnd[i].End.Before(byEnd[j].End) })
		best := map[*Process]Read{} // the newest-epoch completed answer of each process
		j := 0
		for _, rd := range good200 {
			for ; j < len(byEnd) && byEnd[j].End.Before(rd.Start); j++ {
				p := h.process(byEnd[j].Port, byEnd[j].End)
				if p == nil {
					continue
				}
				if b, ok := best[p]; !ok || byEnd[j].Epoch > b.Epoch {
					best[p] = byEnd[j]
				}
			}
			p := h.process(rd.Port, rd.End)
			if p == nil {
				continue
			}
			r.Checked++
			var worst *Read
			var worstP *Process
			for q, b := range best {
				if q != p && b.Epoch > rd.Epoch && (worst == nil || b.Epoch > worst.Epoch) {
					b := b
					worst, worstP = &b, q
				}
			}
			if worst != nil {
				r.Violations = append(r.Violations, Violation{Check: r.Name, Set: set, At: rd.Start,
					Detail: fmt.Sprintf("%s answered 200 at epoch %d (%s) after %s had answered epoch %d (%s)",
						p.ID, rd.Epoch, span(h, rd.Start, rd.End), worstP.ID, worst.Epoch, span(h, worst.Start, worst.End))})
			}
		}
	}
	return r
}

// ownerRemoving are the faults after which an agent's sets must move when
// they last long enough: the agent is dead, stopped or cut off from its lease.
var ownerRemoving = map[Kind]bool{Kill9: true, Stop: true, Term: true, BlackHole: true, Reset: true, FreezeLease: true}

// checkAvailability: invariant 4, in two parts over the directory samples
// and the committed writes. (a) Every orphan interval of a set — no owner,
// or an owner without a lease — while the directory is up and writable and
// some agent is live, is shorter than TTL + 3 s; it ends at the commit that
// gave the set its next owner (between the last orphaned sample and the
// first good one), so the sampling period does not count against the swarm.
// (b) For each fault that removes an owner and lasts past TTL + 3 s, each
// set the target owned when it began is committed to, or seen with, another
// live agent by then. Faults during a directory fault are excused.
//
// A directory fault is a slapd fault (kill, outage, slow directory) or an
// interval of h.Unwritable (a MirrorMode provider killed until the frontend
// switched, a switch), each with one TTL after it: the agents fence without
// the directory and re-register after it returns, and after a switch they
// hold one TTL on purpose (README "Replicated directory"). In (a) a sample
// whose period since the previous sample overlaps an Unwritable interval
// restarts a set's clock, as a failed sample does.
func checkAvailability(h *History) Result {
	r := Result{Name: CheckAvailability}
	bound := h.TTL + 3*time.Second + Slack
	// (a)
	type open struct{ since, last time.Time }
	orphan := map[string]open{}
	closeAt := func(set string, op open, s *Sample) {
		end := s.At
		if c := h.lastCommitIn(set, op.last, s.At); c != nil {
			end = c.At
		}
		if end.Sub(op.since) > bound {
			r.Violations = append(r.Violations, Violation{Check: r.Name, Set: set, At: end,
				Detail: fmt.Sprintf("orphaned from %s to %s (%.1fs > TTL+3s), %d agents live",
					rel(h, op.since), rel(h, end), end.Sub(op.since).Seconds(), len(s.Live))})
		}
	}
	var prev time.Time
	for i := range h.Samples {
		s := &h.Samples[i]
		from := prev
		prev = s.At
		if !s.OK || len(s.Live) == 0 || h.unwritableIn(from, s.At) {
			for set := range orphan {
				orphan[set] = open{} // restart the clock when the directory is back
			}
			continue
		}
		for set, o := range s.Sets {
			op, was := orphan[set]
			if o.State != "orphaned" {
				if was && !op.since.IsZero() {
					closeAt(set, op, s)
				}
				delete(orphan, set)
				continue
			}
			if !was {
				r.Checked++
			}
			if !was || op.since.IsZero() {
				op.since = s.At
			}
			op.last = s.At
			orphan[set] = op
		}
		for set := range orphan {
			if _, ok := s.Sets[set]; !ok {
				delete(orphan, set) // deleted
			}
		}
	}
	if n := len(h.Samples); n > 0 {
		for set, op := range orphan {
			if !op.since.IsZero() {
				closeAt(set, op, &h.Samples[n-1])
			}
		}
	}
	// (b)
	for _, f := range h.Faults {
		if !ownerRemoving[f.Kind] {
			continue
		}
		deadline := f.Start.Add(h.TTL + 3*time.Second)
		if f.End.Before(deadline) {
			continue // healed in time: the agent may keep its sets
		}
		before := h.sampleBefore(f.Start)
		if before == nil {
			continue
		}
		dn := h.serviceDN(f.Target, before)
		if dn == "" {
			continue
		}
		if h.directoryFault(f.Start, deadline.Add(Slack)) || !h.sampledUntil(deadline.Add(Slack)) {
			r.Excused++
			continue
		}
		for set, o := range before.Sets {
			if o.Owner != dn {
				continue
			}
			r.Checked++
			if !h.movedAway(set, dn, f.Start, deadline.Add(Slack)) {
				r.Violations = append(r.Violations, Violation{Check: r.Name, Set: set, At: deadline,
					Detail: fmt.Sprintf("%s of %s at %s: the set was still not owned by another live agent at %s",
						f.Kind, f.Target, rel(h, f.Start), rel(h, deadline.Add(Slack)))})
			}
		}
	}
	return r
}

// lastCommitIn returns the last commit giving set an owner in (from, to].
func (h *History) lastCommitIn(set string, from, to time.Time) *Commit {
	var out *Commit
	for i := range h.Commits {
		c := &h.Commits[i]
		if c.Set == set && c.Owner != "" && c.Epoch > 0 && c.At.After(from) && !c.At.After(to) {
			out = c
		}
	}
	return out
}

func (h *History) sampleBefore(t time.Time) *Sample {
	var out *Sample
	for i := range h.Samples {
		s := &h.Samples[i]
		if s.At.After(t) {
			break
		}
		if s.OK {
			out = s
		}
	}
	return out
}

func (h *History) sampledUntil(t time.Time) bool {
	n := len(h.Samples)
	return n > 0 && !h.Samples[n-1].At.Before(t)
}

// serviceDN finds the DN of agent name among the live services of s.
func (h *History) serviceDN(name string, s *Sample) string {
	prefix := "cn=" + strings.ToLower(name) + ","
	for dn := range s.Live {
		if strings.HasPrefix(dn, prefix) {
			return dn
		}
	}
	for _, o := range s.Sets { // not live any more, but still named as owner
		if strings.HasPrefix(o.Owner, prefix) {
			return o.Owner
		}
	}
	return ""
}

// slapdKinds are the faults of the directory server itself: the fault's
// whole span is a directory fault. (ProviderKill and Switch last until the
// killed provider returns as the standby; only their Unwritable part is.)
var slapdKinds = map[Kind]bool{SlapdKill: true, SlapdDown: true, SlowDir: true}

func (h *History) directoryFault(from, to time.Time) bool {
	for _, f := range h.Faults {
		if slapdKinds[f.Kind] && f.Start.Before(to) && f.End.Add(h.TTL).After(from) {
			return true
		}
	}
	for _, u := range h.Unwritable {
		if u.Start.Before(to) && u.End.Add(h.TTL).After(from) {
			return true
		}
	}
	return false
}

// unwritableIn reports whether an Unwritable interval overlaps (from, to]
// (the time since the previous sample: a switch may take no time at all).
func (h *History) unwritableIn(from, to time.Time) bool {
	for _, u := range h.Unwritable {
		if !u.Start.After(to) && u.End.After(from) {
			return true
		}
	}
	return false
}

// movedAway reports whether a commit in [from, to] gave set to an agent
// other than dn, or some sample in [from, to] shows it owned by a live agent
// other than dn, or gone.
func (h *History) movedAway(set, dn string, from, to time.Time) bool {
	for _, c := range h.Commits {
		if c.Set == set && c.Epoch > 0 && c.Owner != "" && c.Owner != dn && !c.At.Before(from) && !c.At.After(to) {
			return true
		}
	}
	for _, s := range h.Samples {
		if !s.OK || s.At.Before(from) || s.At.After(to) {
			continue
		}
		o, ok := s.Sets[set]
		if !ok {
			return true
		}
		if o.Owner != "" && o.Owner != dn && s.Live[o.Owner] {
			return true
		}
	}
	return false
}

// checkOptimal: invariant 5. After the last fault healed, the sets must
// reach a state where every one is placed optimally, by TTL + 10 s, and stay
// there while the run still watches.
func checkOptimal(h *History) Result {
	r := Result{Name: CheckOptimal, Checked: 1}
	last := h.lastFaultEnd()
	deadline := last.Add(h.TTL + 10*time.Second + Slack)
	var lastBad, firstGood *Sample
	for i := range h.Samples {
		s := &h.Samples[i]
		if s.At.Before(last) || !s.OK {
			continue
		}
		if len(nonOptimal(s)) > 0 {
			lastBad, firstGood = s, nil
		} else if firstGood == nil {
			firstGood = s
		}
	}
	switch {
	case lastBad == nil && firstGood == nil:
		r.Violations = append(r.Violations, Violation{Check: r.Name, At: deadline,
			Detail: fmt.Sprintf("no directory sample after the last fault healed (%s)", rel(h, last))})
	case lastBad != nil && (firstGood == nil || lastBad.At.After(deadline)):
		what := "never all optimal after"
		if firstGood != nil {
			what = fmt.Sprintf("all optimal only at %s, %.1fs after", rel(h, firstGood.At), firstGood.At.Sub(last).Seconds())
		}
		for _, set := range nonOptimal(lastBad) {
			o := lastBad.Sets[set]
			r.Violations = append(r.Violations, Violation{Check: r.Name, Set: set, At: lastBad.At,
				Detail: fmt.Sprintf("%s (owner %q, epoch %d) at %s: %s the last fault (%s; bound TTL+10s)",
					o.State, o.Owner, o.Epoch, rel(h, lastBad.At), what, rel(h, last))})
		}
	}
	return r
}

func nonOptimal(s *Sample) []string {
	var out []string
	for set, o := range s.Sets {
		if o.State != "optimal" {
			out = append(out, set)
		}
	}
	sort.Strings(out)
	return out
}

// checkNothingLost: invariant 6.
func checkNothingLost(h *History) Result {
	r := Result{Name: CheckNothingLost}
	if h.Final == nil {
		r.Violations = append(r.Violations, Violation{Check: r.Name, Detail: "the final directory state was not read"})
		return r
	}
	names := make([]string, 0, len(h.Expected))
	for n := range h.Expected {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		want := h.Expected[n]
		r.Checked++
		got, ok := h.Final[n]
		switch {
		case !ok:
			r.Violations = append(r.Violations, Violation{Check: r.Name, Set: n, At: h.End, Detail: "the set is gone"})
		case got != want:
			r.Violations = append(r.Violations, Violation{Check: r.Name, Set: n, At: h.End,
				Detail: fmt.Sprintf("attributes changed: have %+v, want %+v", got, want)})
		}
	}
	for n := range h.Deleted {
		r.Checked++
		if _, ok := h.Final[n]; ok {
			r.Violations = append(r.Violations, Violation{Check: r.Name, Set: n, At: h.End, Detail: "deleted by the schedule but still there"})
		}
	}
	for _, p := range h.Processes {
		if p.Exempt {
			continue
		}
		r.Checked++
		if !p.End.IsZero() && !p.Planned && gaveWay(h, p) {
			r.Excused++ // the one-name rule: another process of its name held the name
			continue
		}
		if !p.End.IsZero() && !p.Planned {
			r.Violations = append(r.Violations, Violation{Check: r.Name, At: p.End,
				Detail: fmt.Sprintf("process %s exited at %s without the schedule killing it: %s", p.ID, rel(h, p.End), p.Exit)})
		}
	}
	return r
}

// rel formats t relative to the run's start.
func rel(h *History, t time.Time) string {
	return fmt.Sprintf("+%.3fs", t.Sub(h.Start).Seconds())
}

func span(h *History, a, b time.Time) string { return rel(h, a) + ".." + rel(h, b) }

// gaveWay reports whether p exited with status 3 (tcs-agent: another live
// process holds the agent's name) while another process of the same agent
// name was running: the documented refusal rule, not a lost process.
func gaveWay(h *History, p Process) bool {
	if !strings.Contains(p.Exit, "exit status 3") {
		return false
	}
	for _, q := range h.Processes {
		if q.ID != p.ID && q.Agent == p.Agent && !q.Start.After(p.End) && (q.End.IsZero() || !q.End.Before(p.End)) {
			return true
		}
	}
	return false
}
