package chaos

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

func at(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }

const (
	dnA = "cn=tcs-a,ou=services,dc=example,dc=org"
	dnB = "cn=tcs-b,ou=services,dc=example,dc=org"
)

// cleanHistory is a small run that keeps every invariant: tcs-a owns s1 at
// epoch 1, is killed at +3s (restarted at +12s), its lease goes at +5s and
// tcs-b claims s1 at epoch 2 at +5.5s; s2 stays with tcs-b at epoch 1.
func cleanHistory() *History {
	h := &History{
		Seed: 42, Duration: 30 * time.Second, TTL: 2 * time.Second, Start: t0, End: at(30),
		Processes: []Process{
			{ID: "tcs-a#1", Agent: "tcs-a", Port: 1001, Start: at(0), End: at(3), Planned: true, Exit: "signal: killed"},
			{ID: "tcs-a#2", Agent: "tcs-a", Port: 1001, Start: at(12)},
			{ID: "tcs-b#1", Agent: "tcs-b", Port: 1002, Start: at(0)},
		},
		Faults: []Fault{{Kind: Kill9, Target: "tcs-a", Start: at(3), End: at(12)}},
		Commits: []Commit{
			{At: at(0.5), Seq: "01", Set: "s1", Type: "add"},
			{At: at(0.5), Seq: "02", Set: "s2", Type: "add"},
			{At: at(1), Seq: "03", Set: "s1", Type: "modify", Owner: dnA, Epoch: 1},
			{At: at(1), Seq: "04", Set: "s2", Type: "modify", Owner: dnB, Epoch: 1},
			{At: at(5.5), Seq: "05", Set: "s1", Type: "modify", Owner: dnB, Epoch: 2},
			{At: at(6), Seq: "06", Set: "s1", Type: "modify", Epoch: 0}, // a release request
		},
		Reads: []Read{
			{Set: "s1", Port: 1001, Asked: 1001, Status: 200, Epoch: 1, Start: at(1.5), End: at(1.6)},
			{Set: "s1", Port: 1002, Asked: 1002, Status: 307, Epoch: 1, Start: at(1.7), End: at(1.8)},
			{Set: "s1", Port: 1002, Asked: 1001, Follow: true, Status: 200, Epoch: 1, Start: at(2), End: at(2.1)}, // hmm: b serving a's set? no: see below
			{Set: "s1", Port: 1002, Asked: 1002, Status: 200, Epoch: 2, Start: at(6), End: at(6.1)},
			{Set: "s2", Port: 1002, Asked: 1002, Status: 200, Epoch: 1, Start: at(6), End: at(6.1)},
			{Set: "s1", Port: 1001, Asked: 1001, Status: 0, Err: "connection refused", Start: at(7), End: at(7)},
			{Set: "s1", Port: 1002, Asked: 1001, Follow: true, Status: 200, Epoch: 2, Start: at(13), End: at(13.1)},
		},
		Expected: map[string]SetAttrs{
			"s1": {Location: "A", Query: "ldap:///cn=A?cn?one?(cn=*)"},
			"s2": {Location: "B", Query: "ldap:///cn=B?cn?one?(cn=*)"},
		},
		Final: map[string]SetAttrs{
			"s1": {Location: "A", Query: "ldap:///cn=A?cn?one?(cn=*)"},
			"s2": {Location: "B", Query: "ldap:///cn=B?cn?one?(cn=*)"},
		},
	}
	// The follow read at +2s asked tcs-a and was answered by tcs-a itself.
	h.Reads[2].Port = 1001
	for s := 0.0; s <= 30; s += 0.5 {
		smp := Sample{At: at(s), OK: true, Live: map[string]bool{dnB: true}, Sets: map[string]Owning{
			"s2": {Owner: dnB, Epoch: 1, State: "optimal"},
		}}
		if s < 5 || s >= 13 {
			smp.Live[dnA] = true
		}
		switch {
		case s < 5:
			smp.Sets["s1"] = Owning{Owner: dnA, Epoch: 1, State: "optimal"}
		case s < 5.5:
			smp.Sets["s1"] = Owning{Owner: dnA, Epoch: 1, State: "orphaned"}
		default:
			smp.Sets["s1"] = Owning{Owner: dnB, Epoch: 2, State: "optimal"}
		}
		h.Samples = append(h.Samples, smp)
	}
	return h
}

func TestCheckCleanHistory(t *testing.T) {
	h := cleanHistory()
	for _, r := range Check(h) {
		if len(r.Violations) > 0 {
			t.Errorf("%s: %v", r.Name, r.Violations)
		}
		if r.Checked == 0 {
			t.Errorf("%s checked nothing in the clean history", r.Name)
		}
	}
}

func TestCheckFindsPlantedViolations(t *testing.T) {
	cases := []struct {
		name  string
		check string
		plant func(h *History)
	}{
		{"a second owner committed at one epoch", CheckEpochs, func(h *History) {
			h.Commits = append(h.Commits, Commit{At: at(5.6), Seq: "05a", Set: "s1", Type: "modify", Owner: dnA, Epoch: 2})
		}},
		{"an epoch going down", CheckEpochs, func(h *History) {
			h.Commits = append(h.Commits, Commit{At: at(7), Seq: "07", Set: "s2", Type: "modify", Owner: dnA, Epoch: 1})
			h.Commits[len(h.Commits)-1].Owner = dnB // same owner: not "two owners", but no increase
		}},
		{"a duplicate process serving the owner's epoch", CheckOneServer, func(h *History) {
			h.Processes = append(h.Processes, Process{ID: "tcs-b~dup#1", Agent: "tcs-b", Port: 1003, Start: at(8), End: at(11), Planned: true, Exempt: true})
			h.Faults = append(h.Faults, Fault{Kind: Duplicate, Target: "tcs-b", Start: at(8), End: at(11)})
			h.Reads = append(h.Reads, Read{Set: "s2", Port: 1003, Asked: 1003, Status: 200, Epoch: 1, Start: at(9), End: at(9.1)})
		}},
		{"an older epoch served after a newer one completed", CheckFencing, func(h *History) {
			h.Reads = append(h.Reads, Read{Set: "s1", Port: 1001, Asked: 1001, Status: 200, Epoch: 1, Start: at(13.5), End: at(13.6)})
		}},
		{"an orphan never reclaimed", CheckAvailability, func(h *History) {
			for i := range h.Samples {
				if s := &h.Samples[i]; s.At.After(at(5)) && s.At.Before(at(12)) {
					s.Sets["s1"] = Owning{Owner: dnA, Epoch: 1, State: "orphaned"}
				}
			}
		}},
		{"a dead agent's sets kept past TTL+3s while its lease lingers", CheckAvailability, func(h *History) {
			h.Commits = slices.DeleteFunc(h.Commits, func(c Commit) bool { return c.Seq == "05" })
			for i := range h.Samples {
				if s := &h.Samples[i]; !s.At.Before(at(5)) && s.At.Before(at(12)) {
					s.Live[dnA] = true
					s.Sets["s1"] = Owning{Owner: dnA, Epoch: 1, State: "optimal"}
				}
			}
		}},
		{"sets left non-optimal after the last fault", CheckOptimal, func(h *History) {
			for i := range h.Samples {
				if s := &h.Samples[i]; s.At.After(at(12)) {
					s.Sets["s1"] = Owning{Owner: dnB, Epoch: 2, State: "non-optimal"}
				}
			}
		}},
		{"a set's query changed", CheckNothingLost, func(h *History) {
			h.Final["s2"] = SetAttrs{Location: "B", Query: "ldap:///cn=B?cn?one?(cn=x*)"}
		}},
		{"a set lost", CheckNothingLost, func(h *History) { delete(h.Final, "s1") }},
		{"an agent process that died unplanned", CheckNothingLost, func(h *History) {
			h.Processes[2].End = at(20)
			h.Processes[2].Exit = "exit status 2"
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := cleanHistory()
			tc.plant(h)
			results := Check(h)
			found := false
			for _, r := range results {
				switch {
				case r.Name == tc.check && len(r.Violations) > 0:
					found = true
				case r.Name != tc.check && len(r.Violations) > 0:
					t.Errorf("the planted violation also broke %s: %v", r.Name, r.Violations)
				}
			}
			if !found {
				t.Fatalf("%s did not find the planted violation: %+v", tc.check, results)
			}
			var out bytes.Buffer
			Report(&out, h, results)
			for _, want := range []string{"seed 42", "VIOLATION " + tc.check, "CHAOS_SEED=42 CHAOS_DURATION=30s CHAOS_TOPOLOGY=single"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("report lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}

func TestReportShowsExcerptOfViolatingSet(t *testing.T) {
	h := cleanHistory()
	h.Reads = append(h.Reads, Read{Set: "s1", Port: 1001, Asked: 1001, Status: 200, Epoch: 1, Start: at(13.5), End: at(13.6)})
	var out bytes.Buffer
	Report(&out, h, Check(h))
	for _, want := range []string{"history of s1", "commit  modify owner=\"" + dnB + "\" epoch=2", "read    direct tcs-a#2 -> 200 epoch=1", "fault   kill-9 tcs-a"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("excerpt lacks %q:\n%s", want, out.String())
		}
	}
}

// A ?stale answer of a fenced agent is stale by definition: the same read
// that breaks check 3 without TCS-Fenced breaks nothing with it.
func TestCheckExcusesFencedStaleReads(t *testing.T) {
	h := cleanHistory()
	h.Reads = append(h.Reads, Read{Set: "s1", Port: 1001, Asked: 1001, AllowStale: true, Status: 200, Epoch: 1,
		Stale: true, Fenced: true, Start: at(13.5), End: at(13.6)})
	for _, r := range Check(h) {
		if len(r.Violations) > 0 {
			t.Errorf("%s: %v", r.Name, r.Violations)
		}
	}
}

// A process that exits with status 3 while another process of its agent
// name runs followed the one-name rule (README "One process per agent
// name"): excused. The same exit with no other process of its name, or
// another exit status, is a lost process.
func TestCheckExcusesAProcessThatGaveWay(t *testing.T) {
	h := cleanHistory()
	h.Processes = append(h.Processes,
		Process{ID: "tcs-b~dup#1", Agent: "tcs-b", Port: 1003, Start: at(14)},
		Process{ID: "tcs-b#2", Agent: "tcs-b", Port: 1002, Start: at(15), End: at(17), Exit: "exit status 3"})
	for _, r := range Check(h) {
		if len(r.Violations) > 0 {
			t.Errorf("%s: %v", r.Name, r.Violations)
		}
	}
	h.Processes[len(h.Processes)-1].Exit = "exit status 1"
	found := false
	for _, r := range Check(h) {
		found = found || (r.Name == CheckNothingLost && len(r.Violations) == 1)
	}
	if !found {
		t.Error("an exit with status 1 was excused")
	}
}

// A MirrorMode provider killed at +4s, the frontend switching to the other
// at +5s, the killed one back as the standby at +11s: no writable directory
// from +4s to +5s (Unwritable), and the agents hold one TTL after the
// switch on purpose. A fault that removes an owner within that window plus
// one TTL is excused by check 4, as one during a slapd outage is; one whose
// bound lies past it is held to it, although the ProviderKill fault itself
// lasts until +11s.
func TestCheckExcusesTheUnwritableWindowOfASwitch(t *testing.T) {
	mirror := func(h *History) {
		h.Topology = Mirror
		h.Faults = append(h.Faults, Fault{Kind: ProviderKill, Start: at(4), End: at(11)})
		h.Unwritable = append(h.Unwritable, Interval{Start: at(4), End: at(5), Why: "provider-kill-9 until the switch"})
	}
	// tcs-a's sets stay with it (its lease lingers) from +5s to +12s.
	kept := func(h *History) {
		h.Commits = slices.DeleteFunc(h.Commits, func(c Commit) bool { return c.Seq == "05" })
		for i := range h.Samples {
			if s := &h.Samples[i]; !s.At.Before(at(5)) && s.At.Before(at(12)) {
				s.Live[dnA] = true
				s.Sets["s1"] = Owning{Owner: dnA, Epoch: 1, State: "optimal"}
			}
		}
	}
	violations := func(h *History) []Violation {
		for _, r := range Check(h) {
			if r.Name == CheckAvailability {
				return r.Violations
			}
		}
		return nil
	}

	h := cleanHistory() // tcs-a killed at +3s: its bound +8s falls in [+4s, +5s+TTL]
	mirror(h)
	kept(h)
	if v := violations(h); len(v) > 0 {
		t.Errorf("a kill overlapping the switch was not excused: %v", v)
	}

	h = cleanHistory() // the same kill and switch, tcs-a killed at +7.5s instead: bound +12.5s > +5s+TTL
	mirror(h)
	h.Faults[0] = Fault{Kind: Kill9, Target: "tcs-a", Start: at(7.5), End: at(14)}
	h.Processes[0].End = at(7.5)
	h.Processes[1].Start = at(14)
	h.Commits = slices.DeleteFunc(h.Commits, func(c Commit) bool { return c.Seq == "05" })
	for i := range h.Samples {
		if s := &h.Samples[i]; !s.At.Before(at(5)) && s.At.Before(at(14)) {
			s.Live[dnA] = true
			s.Sets["s1"] = Owning{Owner: dnA, Epoch: 1, State: "optimal"}
		}
	}
	if v := violations(h); len(v) == 0 {
		t.Error("a dead agent's sets kept past TTL+3s after the switch's window were excused (the ProviderKill fault lasts until +11s)")
	}
}

// In check 4(a) a set's orphan clock restarts after an Unwritable interval,
// as after a failed sample; an orphan that then lasts past TTL + 3 s is
// still a violation.
func TestCheckRestartsTheOrphanClockAfterAnUnwritableInterval(t *testing.T) {
	orphan := func(h *History, from, to float64) {
		for i := range h.Samples {
			if s := &h.Samples[i]; !s.At.Before(at(from)) && s.At.Before(at(to)) {
				s.Sets["s2"] = Owning{Owner: "", Epoch: 1, State: "orphaned"}
			}
		}
	}
	count := func(h *History) int {
		for _, r := range Check(h) {
			if r.Name == CheckAvailability {
				return len(r.Violations)
			}
		}
		return -1
	}
	h := cleanHistory()
	orphan(h, 14, 22) // 8 s > TTL+3s+slack: a violation
	if n := count(h); n == 0 {
		t.Fatal("an 8 s orphan was not caught")
	}
	h.Unwritable = []Interval{{Start: at(16), End: at(17.2), Why: "switch"}}
	if n := count(h); n != 0 {
		t.Errorf("an orphan of 2 s before and 4.8 s after an unwritable interval was not excused: %d violations", n)
	}
	h = cleanHistory()
	orphan(h, 14, 25) // 7.8 s after the interval
	h.Unwritable = []Interval{{Start: at(16), End: at(17.2), Why: "switch"}}
	if n := count(h); n == 0 {
		t.Error("an orphan of 7.8 s after an unwritable interval was excused")
	}
}

// MergeCommits keeps each write once, from the log of the provider that
// took it (the server ID in its CSN), and keeps a write that never
// replicated; check 1 over the merged history catches an epoch committed
// to two owners on the two providers (a lost write's epoch reused).
func TestMergeCommitsOfAMirrorPair(t *testing.T) {
	csn := func(sec float64, sid string) string {
		return at(sec).Format("20060102150405.000000Z") + "#000000#" + sid + "#000000"
	}
	c := func(sec float64, set, owner string, epoch int64, sid, server string) Commit {
		return Commit{At: at(sec), Seq: at(sec).Format("20060102150405.000000Z"), Set: set, Type: "modify",
			Owner: owner, Epoch: epoch, CSN: csn(sec, sid), Server: server}
	}
	logs := map[string][]Commit{
		"001": {
			c(1, "s1", dnA, 1, "001", "p1"),
			c(2, "s1", dnB, 2, "001", "p1"), // acknowledged by p1, lost in the kill
			c(6, "s1", dnA, 1<<21, "002", "p1"),
			c(3, "s2", dnB, 4, "001", "p1"), // superseded by the next before p2 had it
			c(4, "s2", dnA, 5, "001", "p1"),
			c(9, "s1", dnB, 1<<21+1, "001", "p1"),
		},
		"002": {
			c(1, "s1", dnA, 1, "001", "p2"), // replicated from p1
			c(6, "s1", dnA, 1<<21, "002", "p2"),
			{At: at(8), Seq: at(8).Format("20060102150405.000000Z"), Set: "s2", Type: "modify", Owner: dnA, Epoch: 5,
				CSN: csn(4, "001"), Server: "p2"}, // p1's last write of s2, by a refresh at +8s
			c(9, "s1", dnB, 1<<21+1, "001", "p2"), // p1, back and active again, writes s1
			{At: at(7), Seq: "d", Set: "s9", Type: "delete", Server: "p2"},
		},
	}
	logs["001"] = append(logs["001"], Commit{At: at(7), Seq: "d", Set: "s9", Type: "delete", Server: "p1"})
	got := MergeCommits(logs)
	var desc []string
	for _, g := range got {
		desc = append(desc, g.Set+"@"+g.Server+"/"+g.Type)
	}
	want := []string{"s1@p1/modify", "s1@p1/modify", "s2@p1/modify", "s2@p1/modify", "s1@p2/modify", "s9@p1/delete", "s1@p1/modify"}
	if !slices.Equal(desc, want) {
		t.Fatalf("merged %v, want %v", desc, want)
	}
	if got[0].Replicated.IsZero() || !got[1].Replicated.IsZero() {
		t.Errorf("replicated: %v (want set) and %v (want zero: the lost write, though p1 writes s1 again later)", got[0].Replicated, got[1].Replicated)
	}
	if !got[2].Replicated.Equal(at(8)) || !got[3].Replicated.Equal(at(8)) {
		t.Errorf("s2's writes reached p2 at %v and %v, want both at +8s (a refresh carries the latest)", got[2].Replicated, got[3].Replicated)
	}
	h := &History{Commits: got}
	if r := checkEpochs(h); len(r.Violations) != 0 || r.Checked != 6 {
		t.Errorf("check 1 over the merged log: %d checked, %v", r.Checked, r.Violations)
	}
	// An agent that never saw the switch writes epoch 2 again on p2, to
	// another owner: the lost write's epoch reused.
	logs["002"] = append(logs["002"], c(5, "s1", dnA, 2, "002", "p2"))
	h = &History{Commits: MergeCommits(logs)}
	if r := checkEpochs(h); len(r.Violations) != 1 || !strings.Contains(r.Violations[0].Detail, "two owners") {
		t.Errorf("check 1 missed a lost epoch reused on the other provider: %v", r.Violations)
	}
}
