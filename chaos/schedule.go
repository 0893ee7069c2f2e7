package chaos

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"
)

// Kind is a kind of fault.
type Kind string

// The fault kinds of issue 10, and the proxy faults of issue 14.
const (
	Kill9       Kind = "kill-9"       // kill -9 an agent, restart it after Step.For
	Stop        Kind = "sigstop"      // SIGSTOP an agent past the TTL, SIGCONT after Step.For
	Term        Kind = "sigterm"      // SIGTERM an agent (graceful leave), restart after Step.For
	Duplicate   Kind = "duplicate"    // a second process with a live agent's name, for Step.For
	SlapdKill   Kind = "slapd-kill-9" // kill -9 slapd, restart after Step.For
	SlapdDown   Kind = "slapd-outage" // slapd down longer than the TTL
	BlackHole   Kind = "black-hole"   // one agent's directory traffic dropped (both ways)
	Reset       Kind = "reset"        // one agent's directory connections reset, new ones too
	Delay       Kind = "delay"        // one agent's directory traffic delayed (Step.By each way)
	FreezeWatch Kind = "freeze-watch" // one agent's watch connection frozen
	FreezeLease Kind = "freeze-lease" // one agent's lease connection frozen
	HoldRefresh Kind = "hold-refresh" // only the replies to one agent's lease refreshes held Step.By
	// StuckWatch is issue 14's first scenario: one agent's watch and lease
	// connections frozen for Step.For (past the TTL), then only the lease
	// released; the watch stays frozen Step.By more.
	StuckWatch Kind = "stuck-watch"
	// LateRefresh is issue 14's second: the replies to one agent's lease
	// refreshes held Step.By (past the renew deadline) while its watch is
	// frozen, for Step.For.
	LateRefresh Kind = "late-refresh"
	SlowDir     Kind = "slow-directory" // every agent's requests delayed Step.By
	MoveLoc     Kind = "move-location"  // a location's coordinates changed, restored after Step.For
	AddSet      Kind = "add-set"        // a new set added
	DelSet      Kind = "delete-set"     // a set the run added is deleted
)

// The fault kinds of a replicated directory (issue 11), each only in its
// topology (Topology.Directory).
const (
	// ConsumerKill kills a read replica (-9) and restarts it after Step.For.
	ConsumerKill Kind = "consumer-kill-9"
	// ConsumerLag delays a replica's syncrepl link to the provider by
	// Step.By each way for Step.For: the replica lags.
	ConsumerLag Kind = "consumer-lag"
	// ConsumerStall freezes a replica's syncrepl link for Step.For, then
	// releases what it held in order: the replica answers but stops
	// replicating, then catches up.
	ConsumerStall Kind = "consumer-stall"
	// ProviderKill kills the active provider of a MirrorMode pair (-9); after
	// Step.By (the frontend noticing) the standby takes lease expiry over and
	// the frontend switches to it; the killed one is started again, as the
	// standby, Step.For after the kill.
	ProviderKill Kind = "provider-kill-9"
	// Switch switches the frontend of a MirrorMode pair to the standby while
	// both providers run (maintenance, a flapping health check).
	Switch Kind = "switch"
	// ReplicationCut drops the standby's replication from the active
	// provider of a MirrorMode pair (both ways) for Step.For, then resets
	// it, as a network partition between the two would: what the active
	// takes meanwhile is on the active only, and lost if it is killed
	// before the cut heals.
	ReplicationCut Kind = "replication-cut"
)

// Kinds lists every fault kind, in report order.
var Kinds = []Kind{Kill9, Stop, Term, Duplicate, SlapdKill, SlapdDown, BlackHole, Reset, Delay,
	FreezeWatch, FreezeLease, HoldRefresh, StuckWatch, LateRefresh, SlowDir, MoveLoc, AddSet, DelSet,
	ConsumerKill, ConsumerLag, ConsumerStall, ProviderKill, Switch, ReplicationCut}

// The directory topologies a run can have (CHAOS_TOPOLOGY).
const (
	Single    = "single"    // one slapd
	Consumers = "consumers" // a provider and two read replicas (syncrepl consumers)
	Mirror    = "mirror"    // a MirrorMode pair behind a switchable frontend
)

// Topologies lists the topology names.
var Topologies = []string{Single, Consumers, Mirror}

// onlyIn names the topology of each kind that exists in one topology only.
var onlyIn = map[Kind]string{ConsumerKill: Consumers, ConsumerLag: Consumers, ConsumerStall: Consumers,
	ProviderKill: Mirror, Switch: Mirror, ReplicationCut: Mirror}

// KindsOf lists the fault kinds a schedule of topology dir can hold.
func KindsOf(dir string) []Kind {
	var out []Kind
	for _, k := range Kinds {
		if t, ok := onlyIn[k]; !ok || t == dir {
			out = append(out, k)
		}
	}
	return out
}

// agentKinds are faults that impair one agent; an agent has one at a time.
var agentKinds = map[Kind]bool{Kill9: true, Stop: true, Term: true, Duplicate: true, BlackHole: true,
	Reset: true, Delay: true, FreezeWatch: true, FreezeLease: true, HoldRefresh: true, StuckWatch: true, LateRefresh: true}

// directoryKinds impair the directory itself (in a MirrorMode pair: the
// active provider, or which one is active); one at a time.
var directoryKinds = map[Kind]bool{SlapdKill: true, SlapdDown: true, SlowDir: true, ProviderKill: true, Switch: true}

// consumerKinds impair one read replica; one at a time over all replicas,
// so the agents always have a replica that replicates (the agent does not
// detect a replica that answers but has stopped replicating: README
// "Replicated directory").
var consumerKinds = map[Kind]bool{ConsumerKill: true, ConsumerLag: true, ConsumerStall: true}

// weights of each kind in a schedule.
var weights = []struct {
	k Kind
	w int
}{
	{Kill9, 10}, {Stop, 8}, {Term, 6}, {Duplicate, 5}, {SlapdKill, 3}, {SlapdDown, 2},
	{BlackHole, 6}, {Reset, 5}, {Delay, 4}, {FreezeWatch, 5}, {FreezeLease, 5}, {HoldRefresh, 5},
	{StuckWatch, 4}, {LateRefresh, 4},
	{SlowDir, 3}, {MoveLoc, 3}, {AddSet, 5}, {DelSet, 4},
	// Only in their topology (onlyIn): a single-server schedule draws from
	// the kinds above alone, so its seeds give the schedules they always gave.
	{ConsumerKill, 6}, {ConsumerLag, 5}, {ConsumerStall, 4},
	{ProviderKill, 4}, {Switch, 3}, {ReplicationCut, 4},
}

// Topology is what a schedule picks targets from.
type Topology struct {
	Agents    []string // agent names
	Locations []string // location names (coordinates may change)
	TTL       time.Duration
	// MaxImpaired is how many agents may be impaired at once (default:
	// all but two, at least one), so a live agent always exists.
	MaxImpaired int
	// Directory is the topology (Single when empty); Consumers names its
	// read replicas (Consumers topology).
	Directory string
	Consumers []string
}

// Step is one fault of a schedule.
type Step struct {
	At     time.Duration // from the start of the run
	Kind   Kind
	Target string        // agent, location, new set name or replica; "" for the directory
	For    time.Duration // how long the fault lasts (until restart, continue, heal)
	// By: Delay, SlowDir, ConsumerLag: the delay; HoldRefresh: how long each
	// reply is held; ProviderKill: from the kill to the frontend's switch.
	By     time.Duration
	Coords string // MoveLoc: the new coordinates
	// Location is the location of a set AddSet adds.
	Location string
}

func (s Step) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "+%5.1fs %-14s", s.At.Seconds(), s.Kind)
	if s.Target != "" {
		fmt.Fprintf(&b, " %s", s.Target)
	}
	if s.For > 0 {
		fmt.Fprintf(&b, " for %.1fs", s.For.Seconds())
	}
	if s.By > 0 {
		fmt.Fprintf(&b, " by %v", s.By)
	}
	if s.Location != "" {
		fmt.Fprintf(&b, " in %s", s.Location)
	}
	if s.Coords != "" {
		fmt.Fprintf(&b, " to %s", s.Coords)
	}
	return b.String()
}

// Plan makes the schedule of a run of length d from seed: faults arrive
// about every 1.5 s, overlapping; each agent has at most one fault at a
// time, the directory at most one, and at most MaxImpaired agents are
// impaired at once. Every fault ends by d. The same seed and topology give
// the same schedule.
func Plan(seed int64, d time.Duration, topo Topology) []Step {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x7c5))
	ttl := topo.TTL
	maxImp := topo.MaxImpaired
	if maxImp <= 0 {
		maxImp = max(1, len(topo.Agents)-2)
	}
	busyAgent := map[string]time.Duration{} // agent -> free again at
	var busyDir, busyLoc, busyConsumer, busyLink time.Duration
	dir := topo.Directory
	if dir == "" {
		dir = Single
	}
	var kinds []struct {
		k Kind
		w int
	}
	total := 0
	for _, w := range weights {
		if t, ok := onlyIn[w.k]; ok && t != dir {
			continue
		}
		if consumerKinds[w.k] && len(topo.Consumers) == 0 {
			continue
		}
		kinds = append(kinds, w)
		total += w.w
	}
	dur := func(lo, hi time.Duration) time.Duration { // uniform, in 100 ms steps
		n := int64((hi - lo) / (100 * time.Millisecond))
		return lo + time.Duration(rng.Int64N(n+1))*100*time.Millisecond
	}
	var steps []Step
	added := []string{}
	nAdded := 0
	at := 2 * time.Second // let the swarm settle first
	for {
		at += dur(300*time.Millisecond, 2700*time.Millisecond)
		if at >= d-time.Second {
			break
		}
		pick := rng.IntN(total)
		var k Kind
		for _, w := range kinds {
			if pick < w.w {
				k = w.k
				break
			}
			pick -= w.w
		}
		s := Step{At: at, Kind: k}
		switch k {
		case Kill9, Term:
			s.For = dur(300*time.Millisecond, ttl+2*time.Second)
		case Stop:
			s.For = dur(ttl+500*time.Millisecond, ttl+4*time.Second)
		case Duplicate:
			s.For = dur(2*time.Second, 3*ttl)
		case SlapdKill:
			s.For = dur(200*time.Millisecond, time.Second)
		case SlapdDown:
			s.For = dur(ttl+time.Second, ttl+3*time.Second)
		case BlackHole, Reset, FreezeWatch, FreezeLease:
			s.For = dur(time.Second, ttl+4*time.Second)
		case Delay:
			s.For = dur(time.Second, 4*time.Second)
			s.By = dur(100*time.Millisecond, ttl/2)
		case HoldRefresh:
			s.For = dur(ttl, ttl+4*time.Second)
			s.By = dur(ttl/2, ttl+2*time.Second)
		case StuckWatch:
			s.For = dur(ttl+time.Second, ttl+4*time.Second)
			s.By = dur(2*time.Second, 6*time.Second)
		case LateRefresh:
			s.For = dur(ttl+time.Second, ttl+5*time.Second)
			s.By = dur(ttl, ttl+2*time.Second)
		case SlowDir:
			s.For = dur(time.Second, 4*time.Second)
			s.By = dur(20*time.Millisecond, 300*time.Millisecond)
		case MoveLoc:
			s.For = dur(2*time.Second, 6*time.Second)
			s.Coords = fmt.Sprintf("%.4f,%.4f", rng.Float64()*140-70, rng.Float64()*340-170)
		case ConsumerKill:
			s.For = dur(300*time.Millisecond, ttl+4*time.Second)
		case ConsumerLag:
			s.For = dur(2*time.Second, 8*time.Second)
			s.By = dur(200*time.Millisecond, 1500*time.Millisecond)
		case ConsumerStall:
			s.For = dur(time.Second, 6*time.Second)
		case ReplicationCut:
			s.For = dur(time.Second, 6*time.Second)
		case ProviderKill:
			// The killed provider returns (as the standby) after the
			// switch and the agents' hold of one TTL.
			s.By = dur(200*time.Millisecond, 1500*time.Millisecond)
			s.For = dur(s.By+ttl+2*time.Second, s.By+ttl+6*time.Second)
		}
		end := at + s.For
		if k == StuckWatch {
			end += s.By
		}
		if end > d {
			continue // would outlast the run
		}
		switch {
		case agentKinds[k]:
			var free []string
			impaired := 0
			for _, a := range topo.Agents {
				if busyAgent[a] > at {
					impaired++
				} else {
					free = append(free, a)
				}
			}
			if len(free) == 0 || impaired >= maxImp {
				continue
			}
			s.Target = free[rng.IntN(len(free))]
			busyAgent[s.Target] = end + 500*time.Millisecond
		case directoryKinds[k]:
			if busyDir > at {
				continue
			}
			busyDir = end + time.Second
			if k == ProviderKill || k == Switch {
				busyDir += ttl // the agents hold one TTL after a switch
			}
		case k == ReplicationCut: // may overlap a provider kill: that loses writes
			if busyLink > at {
				continue
			}
			busyLink = end + 500*time.Millisecond
		case consumerKinds[k]:
			if busyConsumer > at {
				continue
			}
			s.Target = topo.Consumers[rng.IntN(len(topo.Consumers))]
			busyConsumer = end + 500*time.Millisecond
		case k == MoveLoc:
			if busyLoc > at || len(topo.Locations) == 0 {
				continue
			}
			s.Target = topo.Locations[rng.IntN(len(topo.Locations))]
			busyLoc = end
		case k == AddSet:
			nAdded++
			s.Target = fmt.Sprintf("chaos-added-%d", nAdded)
			if len(topo.Locations) > 0 {
				s.Location = topo.Locations[rng.IntN(len(topo.Locations))]
			}
			added = append(added, s.Target)
		case k == DelSet:
			if len(added) == 0 {
				continue
			}
			i := rng.IntN(len(added))
			s.Target = added[i]
			added = append(added[:i], added[i+1:]...)
		}
		steps = append(steps, s)
	}
	sort.SliceStable(steps, func(i, j int) bool { return steps[i].At < steps[j].At })
	return steps
}
