package chaos

import (
	"reflect"
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

func TestPlanKeepsItsRules(t *testing.T) {
	for seed := int64(1); seed <= 50; seed++ {
		steps := Plan(seed, 2*time.Minute, topo)
		if len(steps) < 20 {
			t.Fatalf("seed %d: only %d faults in 2 minutes", seed, len(steps))
		}
		for i, s := range steps {
			if s.At+length(s) > 2*time.Minute {
				t.Errorf("seed %d: %v ends after the run", seed, s)
			}
			if s.Kind == Stop && s.For <= topo.TTL {
				t.Errorf("seed %d: %v does not last past the TTL", seed, s)
			}
			if s.Kind == SlapdDown && s.For <= topo.TTL {
				t.Errorf("seed %d: %v is not longer than the TTL", seed, s)
			}
			impaired := map[string]bool{}
			dir := 0
			for _, o := range steps[:i+1] {
				if o.At+length(o) <= s.At {
					continue
				}
				if agentKinds[o.Kind] {
					if impaired[o.Target] {
						t.Errorf("seed %d: two faults on %s at once at %v", seed, o.Target, s.At)
					}
					impaired[o.Target] = true
				}
				if directoryKinds[o.Kind] {
					dir++
				}
			}
			if len(impaired) > len(topo.Agents)-2 {
				t.Errorf("seed %d: %d agents impaired at %v", seed, len(impaired), s.At)
			}
			if dir > 1 {
				t.Errorf("seed %d: %d directory faults at once at %v", seed, dir, s.At)
			}
		}
	}
}

func TestPlanCoversEveryKind(t *testing.T) {
	seen := map[Kind]bool{}
	for seed := int64(1); seed <= 5; seed++ {
		for _, s := range Plan(seed, 2*time.Minute, topo) {
			seen[s.Kind] = true
		}
	}
	for _, k := range Kinds {
		if !seen[k] {
			t.Errorf("no %s in five 2-minute schedules", k)
		}
	}
}

func length(s Step) time.Duration {
	if s.Kind == StuckWatch {
		return s.For + s.By
	}
	return s.For
}
