package smartset

import (
	"math/rand/v2"
	"testing"
)

func TestState(t *testing.T) {
	gone := serviceDN("tcs-gone-1")
	tests := []struct {
		name        string
		build       func(*Snapshot) Set // changes to patentAgents; returns the set to classify
		want        string
		wantOptimal bool
	}{
		{
			name:  "no owner",
			build: func(s *Snapshot) Set { return addSet(s, "texas-orders", "Texas", "", "") },
			want:  StateOrphaned,
		},
		{
			name:  "dead owner",
			build: func(s *Snapshot) Set { return addSet(s, "texas-orders", "Texas", gone, texas) },
			want:  StateOrphaned,
		},
		{
			name:  "a live service asked for it",
			build: func(s *Snapshot) Set { return addSet(s, "texas-orders", "Texas", california, texas) },
			want:  StatePending,
		},
		{
			name:        "a pending request does not make an optimal set non-optimal",
			build:       func(s *Snapshot) Set { return addSet(s, "texas-orders", "Texas", texas, california) },
			want:        StatePending,
			wantOptimal: true,
		},
		{
			name:  "a dead requester is ignored",
			build: func(s *Snapshot) Set { return addSet(s, "texas-orders", "Texas", california, gone) },
			want:  StateNonOptimal,
		},
		{
			name: "a request naming the owner is ignored",
			build: func(s *Snapshot) Set {
				return addSet(s, "texas-orders", "Texas", texas, "cn=TCS-texas-1,ou=services,dc=example,dc=org")
			},
			want:        StateOptimal,
			wantOptimal: true,
		},
		{
			name:  "California holds a Texas set while Texas is live",
			build: func(s *Snapshot) Set { return addSet(s, "texas-orders", "Texas", california, "") },
			want:  StateNonOptimal,
		},
		{
			name:        "Texas holds its own set",
			build:       func(s *Snapshot) Set { return addSet(s, "texas-orders", "Texas", texas, "") },
			want:        StateOptimal,
			wantOptimal: true,
		},
		{
			name: "California holds a Texas set while Texas is dead",
			build: func(s *Snapshot) Set {
				delete(s.Services, Key(texas))
				return addSet(s, "texas-orders", "Texas", california, "")
			},
			want:        StateOptimal,
			wantOptimal: true,
		},
		{
			name: "an agent 11 km nearer is within the margin",
			build: func(s *Snapshot) Set {
				addLocation(s, "Far", 31.0, -97.0)
				addLocation(s, "Closer", 30.9, -97.0)
				addLocation(s, "Site", 30.0, -97.0)
				addService(s, serviceDN("tcs-far-1"), "Far", 0)
				addService(s, serviceDN("tcs-closer-1"), "Closer", 0)
				return addSet(s, "site-orders", "Site", serviceDN("tcs-far-1"), "")
			},
			want:        StateOptimal,
			wantOptimal: true,
		},
		{
			name: "owner over its capacity",
			build: func(s *Snapshot) Set {
				addService(s, texas, "Texas", 1)
				addSet(s, "texas-billing", "Texas", texas, "")
				return addSet(s, "texas-orders", "Texas", texas, "")
			},
			want: StateNonOptimal,
		},
		{
			name: "owner at exactly its capacity",
			build: func(s *Snapshot) Set {
				addService(s, texas, "Texas", 1)
				return addSet(s, "texas-orders", "Texas", texas, "")
			},
			want:        StateOptimal,
			wantOptimal: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := patentAgents()
			set := tt.build(snap)
			counts := snap.Counts()
			if got := State(snap, counts, set); got != tt.want {
				t.Errorf("State = %q, want %q", got, tt.want)
			}
			if got := Optimal(snap, counts, set); got != tt.wantOptimal {
				t.Errorf("Optimal = %v, want %v", got, tt.wantOptimal)
			}
		})
	}
}

// States answers as State does for every set of random worlds with
// capacities (so counts matter), agentless locations, sets whose location
// names no entry, dead owners and release requests.
func TestStatesAgreesWithState(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		topo := newTopology(rng, 400)
		snap := topo.snapshot()
		var dns []string
		for _, svc := range topo.services {
			dns = append(dns, svc.DN)
		}
		dns = append(dns, serviceDN("tcs-gone-1"), "")
		for _, set := range topo.sets {
			set.Owner = dns[rng.IntN(len(dns))]
			if rng.IntN(10) == 0 {
				set.ReleaseRequest = dns[rng.IntN(len(dns))]
			}
			snap.Sets[Key(set.Name)] = set
		}
		states := NewStates(snap)
		counts := snap.Counts()
		for _, set := range snap.Sets {
			if got, want := states.Of(set), State(snap, counts, set); got != want {
				t.Fatalf("seed %d: %s (at %s, owner %q, request %q): States %s, State %s",
					seed, set.Name, set.Location, set.Owner, set.ReleaseRequest, got, want)
			}
		}
		if len(states.memo) >= len(snap.Sets) {
			t.Errorf("seed %d: %d answers remembered for %d sets", seed, len(states.memo), len(snap.Sets))
		}
	}
}

// The states of 100,000 sets among 100 services in 20 locations, one by
// one with State and with States (what the status page and `tcs-agent
// status` compute on every change).
func BenchmarkStates(b *testing.B) {
	snap := largeWorld(100, 100000)
	b.Run("State", func(b *testing.B) {
		for range b.N {
			counts := snap.Counts()
			for _, set := range snap.Sets {
				State(snap, counts, set)
			}
		}
	})
	b.Run("States", func(b *testing.B) {
		for range b.N {
			states := NewStates(snap)
			for _, set := range snap.Sets {
				states.Of(set)
			}
		}
	})
}
