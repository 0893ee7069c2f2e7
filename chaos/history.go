package chaos

import (
	"sort"
	"time"
)

// History is everything one run recorded; Check reads nothing else.
type History struct {
	Seed     int64
	Duration time.Duration // the schedule's length (CHAOS_DURATION)
	Topology string        // the directory's topology (CHAOS_TOPOLOGY): Single, Consumers, Mirror
	TTL      time.Duration
	Start    time.Time // the schedule's time zero
	End      time.Time // when recording stopped

	Processes []Process
	Faults    []Fault
	Reads     []Read
	Samples   []Sample // the directory as a watcher saw it, in time order
	Commits   []Commit // committed writes to sets, from the accesslog, in commit order
	// Unwritable are the intervals in which the agents' directory address
	// reached no provider that takes writes, beyond the slapd faults
	// themselves: in a MirrorMode pair, from a provider's kill (or the start
	// of a switch) until the frontend sent clients to the other one.
	Unwritable []Interval

	// Expected is what every set should hold at the end apart from
	// ownership (the sets the run loaded or added and did not delete);
	// Deleted names the sets the schedule deleted; Final is what the
	// directory held at the end (nil when it could not be read).
	Expected map[string]SetAttrs
	Deleted  map[string]bool
	Final    map[string]SetAttrs
}

// Process is one tcs-agent process the run started. Reads name their
// process by its HTTP port; restarts reuse the port, so the answering
// process is the latest one started on that port before the answer ended.
type Process struct {
	ID    string // "<agent>#<n>", "<agent>~dup#<n>" for a second process with a live agent's name
	Agent string // the agent name (cn) it runs as
	Port  int    // its HTTP port
	Start time.Time
	// End is when the process exited; zero when it still ran at the end.
	End time.Time
	// Planned is set when the schedule ended it (kill -9, SIGTERM, the end of
	// a duplicate); a process that exited otherwise breaks invariant 6.
	Planned bool
	// Exempt processes are not held to invariant 6 (a duplicate and the
	// process it duplicated: the one-name rule may make either exit).
	Exempt bool
	Exit   string // how it exited, when it did
}

// Fault is one injected fault as it really happened.
type Fault struct {
	Kind   Kind
	Target string // agent name, location, set, or "" for the directory
	Start  time.Time
	End    time.Time // healed (restarted, continued, rule removed)
	Note   string
}

// Read is one HTTP GET of a set by a client.
type Read struct {
	Client int
	Set    string
	// Port is the port of the agent that answered: the one asked, or the
	// last one redirected to when Follow is set.
	Port   int
	Asked  int // the port asked first
	Follow bool
	// AllowStale is set when the read asked for ?stale=1: a fenced agent
	// may then answer 200 with TCS-Fenced: true.
	AllowStale bool
	Status     int // 0 when the request failed (Err)
	Epoch      int64
	Stale      bool // TCS-Stale: true
	Fenced     bool // TCS-Fenced: true (a ?stale read of a fenced agent)
	Start      time.Time
	End        time.Time
	Err        string
}

// Sample is one read of the whole directory.
type Sample struct {
	At   time.Time
	OK   bool              // false when the directory could not be read
	Live map[string]bool   // lease entries present (service DNs, lower case)
	Sets map[string]Owning // by set name
}

// Owning is a set's ownership in one Sample.
type Owning struct {
	Owner    string // owner DN, lower case, "" when none
	Epoch    int64
	State    string // smartset.State: optimal, non-optimal, pending-handoff, orphaned
	Location string
}

// Commit is one committed write that changed a set's owner or epoch, or
// added or deleted a set.
type Commit struct {
	At    time.Time // when slapd committed it (entryCSN time)
	Seq   string    // reqStart: the accesslog's order
	Set   string
	Type  string // "modify", "add" or "delete"
	Owner string // the new owner DN, lower case, "" when cleared
	Epoch int64  // the new tcsEpoch (0 when the write had none)
	By    string // reqAuthzID
	// CSN is the write's entryCSN ("" when the record holds none, e.g. a
	// delete); its third field is the server ID of the provider that took
	// the write (000 without replication).
	CSN string
	// Server is the provider whose accesslog held the record (a URL; ""
	// with one server).
	Server string
	// Replicated is when the other provider of a MirrorMode pair had the
	// write (logged it, or a later write of the set by the same provider:
	// a refresh carries only an entry's latest state); zero when it never
	// did (MergeCommits): a lost write.
	Replicated time.Time
}

// Interval is a span of the run with what it was.
type Interval struct {
	Start, End time.Time
	Why        string
}

// SetAttrs are a set's attributes apart from ownership.
type SetAttrs struct {
	Location    string
	Query       string
	Description string
}

// process returns the process that answered on port at t.
func (h *History) process(port int, t time.Time) *Process {
	var best *Process
	for i := range h.Processes {
		p := &h.Processes[i]
		if p.Port != port || p.Start.After(t) {
			continue
		}
		if best == nil || p.Start.After(best.Start) {
			best = p
		}
	}
	return best
}

// readsBySet groups reads by set, each group sorted by start time.
func (h *History) readsBySet() map[string][]Read {
	out := map[string][]Read{}
	for _, r := range h.Reads {
		out[r.Set] = append(out[r.Set], r)
	}
	for _, rs := range out {
		sort.Slice(rs, func(i, j int) bool { return rs[i].Start.Before(rs[j].Start) })
	}
	return out
}

// lastFaultEnd is when the last fault healed (Start when there was none).
func (h *History) lastFaultEnd() time.Time {
	t := h.Start
	for _, f := range h.Faults {
		if f.End.After(t) {
			t = f.End
		}
		if f.Start.After(t) {
			t = f.Start
		}
	}
	return t
}
