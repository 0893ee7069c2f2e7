package chaos

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

var topo = Topology{
	Agents:    []string{"a1", "a2", "b1", "b2", "c1", "d1"},
	Locations: []string{"A", "B", "C", "D", "E"},
	TTL:       2 * time.Second,
}

func TestPlanIsDeterministic(t *testing.T) {
	a := Plan(7, time.Minute, topo)
	b := Plan(7, time.Minute, topo)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed gave two schedules")
	}
	if c := Plan(8, time.Minute, topo); reflect.DeepEqual(a, c) {
		t.Fatal("seeds 7 and 8 gave the same schedule")
	}
}

// topoOf is the test topology with a directory topology.
func topoOf(dir string) Topology {
	t := topo
	t.Directory = dir
	if dir == Consumers {
		t.Consumers = []string{"r1", "r2"}
	}
	return t
}

func TestPlanKeepsItsRules(t *testing.T) {
	for _, dir := range Topologies {
		for seed := int64(1); seed <= 50; seed++ {
			steps := Plan(seed, 2*time.Minute, topoOf(dir))
			if len(steps) < 20 {
				t.Fatalf("%s seed %d: only %d faults in 2 minutes", dir, seed, len(steps))
			}
			for i, s := range steps {
				if s.At+length(s) > 2*time.Minute {
					t.Errorf("%s seed %d: %v ends after the run", dir, seed, s)
				}
				if s.Kind == Stop && s.For <= topo.TTL {
					t.Errorf("%s seed %d: %v does not last past the TTL", dir, seed, s)
				}
				if s.Kind == SlapdDown && s.For <= topo.TTL {
					t.Errorf("%s seed %d: %v is not longer than the TTL", dir, seed, s)
				}
				if s.Kind == ProviderKill && s.For <= s.By+topo.TTL {
					t.Errorf("%s seed %d: %v: the killed provider returns before the agents' hold after the switch ended", dir, seed, s)
				}
				if only, ok := onlyIn[s.Kind]; ok && only != dir {
					t.Errorf("%s seed %d: %v in a %s schedule", dir, seed, s, dir)
				}
				impaired := map[string]bool{}
				directory, replicas := 0, 0
				for _, o := range steps[:i+1] {
					if o.At+length(o) <= s.At {
						continue
					}
					if agentKinds[o.Kind] {
						if impaired[o.Target] {
							t.Errorf("%s seed %d: two faults on %s at once at %v", dir, seed, o.Target, s.At)
						}
						impaired[o.Target] = true
					}
					if directoryKinds[o.Kind] {
						directory++
					}
					if consumerKinds[o.Kind] {
						replicas++
					}
				}
				if len(impaired) > len(topo.Agents)-2 {
					t.Errorf("%s seed %d: %d agents impaired at %v", dir, seed, len(impaired), s.At)
				}
				if directory > 1 {
					t.Errorf("%s seed %d: %d directory faults at once at %v", dir, seed, directory, s.At)
				}
				if replicas > 1 {
					t.Errorf("%s seed %d: %d replica faults at once at %v", dir, seed, replicas, s.At)
				}
			}
		}
	}
}

func TestPlanCoversEveryKind(t *testing.T) {
	for _, dir := range Topologies {
		seen := map[Kind]bool{}
		for seed := int64(1); seed <= 5; seed++ {
			for _, s := range Plan(seed, 2*time.Minute, topoOf(dir)) {
				seen[s.Kind] = true
			}
		}
		for _, k := range KindsOf(dir) {
			if !seen[k] {
				t.Errorf("%s: no %s in five 2-minute schedules", dir, k)
			}
		}
	}
}

// The replicated topologies' kinds must not change what a seed gives a
// single server: testdata/plan-297-single.golden is seed 297's minute as
// main planned it before they existed (the schedule of TestChaos in make
// test).
func TestSingleScheduleUnchanged(t *testing.T) {
	want, err := os.ReadFile("testdata/plan-297-single.golden")
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"", Single} {
		var got strings.Builder
		for _, s := range Plan(defaultSeed, defaultDuration, topology(leaseTTL, dir)) {
			fmt.Fprintln(&got, s)
		}
		if got.String() != string(want) {
			t.Errorf("topology %q: seed %d's schedule changed:\n%s\nwant:\n%s", dir, defaultSeed, got.String(), want)
		}
	}
}

func length(s Step) time.Duration {
	if s.Kind == StuckWatch {
		return s.For + s.By
	}
	return s.For
}
