package smartset

import "testing"

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
