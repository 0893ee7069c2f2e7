package smartset

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

// plan is a Plan written short for comparison: "set@rank" for claims and
// "set->cn reason" for moves.
type plan struct {
	Claims, Requests, Handoffs, Rejects []string
}

func summarize(p Plan) plan {
	moves := func(ms []Move) []string {
		var out []string
		for _, m := range ms {
			out = append(out, fmt.Sprintf("%s->%s %s", m.Set.Name, cnOf(m.To), m.Reason))
		}
		return out
	}
	var s plan
	for _, c := range p.Claims {
		s.Claims = append(s.Claims, fmt.Sprintf("%s@%d", c.Set.Name, c.Rank))
	}
	s.Requests = moves(p.Requests)
	s.Handoffs = moves(p.Handoffs)
	s.Rejects = moves(p.Rejects)
	return s
}

func (p plan) equal(q plan) bool {
	return slices.Equal(p.Claims, q.Claims) && slices.Equal(p.Requests, q.Requests) &&
		slices.Equal(p.Handoffs, q.Handoffs) && slices.Equal(p.Rejects, q.Rejects)
}

func (p plan) String() string {
	return fmt.Sprintf("\n  claims:   %q\n  requests: %q\n  handoffs: %q\n  rejects:  %q",
		p.Claims, p.Requests, p.Handoffs, p.Rejects)
}

// Three locations on one meridian for hysteresis: one degree of latitude is
// about 111.2 km.
func meridianWorld() *Snapshot {
	snap := NewSnapshot()
	addLocation(snap, "Site", 30.0, -97.0)
	addLocation(snap, "Far", 31.0, -97.0)    // 111.2 km from Site
	addLocation(snap, "Closer", 30.9, -97.0) // 100.1 km: 11.1 km better than Far
	addLocation(snap, "Near", 30.4, -97.0)   // 44.5 km: 66.7 km better than Far
	addService(snap, serviceDN("tcs-far-1"), "Far", 0)
	addService(snap, serviceDN("tcs-closer-1"), "Closer", 0)
	addService(snap, serviceDN("tcs-near-1"), "Near", 0)
	addSet(snap, "site-orders", "Site", serviceDN("tcs-far-1"), "")
	return snap
}

func TestDecide(t *testing.T) {
	gone := serviceDN("tcs-gone-1")
	tests := []struct {
		name  string
		build func() *Snapshot
		opts  Options
		want  plan
	}{
		{
			name: "not registered: empty plan",
			build: func() *Snapshot {
				snap := patentWorld()
				addService(snap, japan, "Japan", 0)
				addSet(snap, "texas-orders", "Texas", "", "")
				return snap
			},
			opts: Options{Self: texas, MoveBudget: 10},
			want: plan{},
		},
		{
			name: "no Self: empty plan",
			build: func() *Snapshot {
				snap := patentAgents()
				addSet(snap, "texas-orders", "Texas", "", "")
				return snap
			},
			opts: Options{MoveBudget: 10},
			want: plan{},
		},
		{
			name: "all three live, all orphaned: Texas claims its own sets first",
			build: func() *Snapshot {
				snap := patentAgents()
				addSet(snap, "texas-orders", "Texas", "", "")
				addSet(snap, "california-orders", "California", "", "")
				addSet(snap, "japan-orders", "Japan", gone, "")
				return snap
			},
			opts: Options{Self: "CN=tcs-texas-1, ou=services, dc=example, dc=org", MoveBudget: 10},
			want: plan{Claims: []string{"california-orders@1", "japan-orders@2", "texas-orders@0"}},
		},
		{
			name: "all three live, all orphaned: Japan's ranks",
			build: func() *Snapshot {
				snap := patentAgents()
				addSet(snap, "texas-orders", "Texas", "", "")
				addSet(snap, "california-orders", "California", "", "")
				addSet(snap, "japan-orders", "Japan", gone, "")
				return snap
			},
			opts: Options{Self: japan, MoveBudget: 10},
			want: plan{Claims: []string{"california-orders@2", "japan-orders@0", "texas-orders@2"}},
		},
		{
			name: "Texas dead: California claims the Texas sets at once",
			build: func() *Snapshot {
				snap := patentWorld()
				addService(snap, japan, "Japan", 0)
				addService(snap, california, "California", 0)
				addSet(snap, "texas-orders", "Texas", texas, "")
				addSet(snap, "texas-billing", "Texas", texas, "")
				addSet(snap, "california-orders", "California", california, "")
				return snap
			},
			opts: Options{Self: california, MoveBudget: 10},
			want: plan{Claims: []string{"texas-billing@0", "texas-orders@0"}},
		},
		{
			name: "Texas dead: Japan waits behind California",
			build: func() *Snapshot {
				snap := patentWorld()
				addService(snap, japan, "Japan", 0)
				addService(snap, california, "California", 0)
				addSet(snap, "texas-orders", "Texas", texas, "")
				return snap
			},
			opts: Options{Self: japan, MoveBudget: 10},
			want: plan{Claims: []string{"texas-orders@1"}},
		},
		{
			name: "Texas joins: it asks California for the Texas sets",
			build: func() *Snapshot {
				snap := patentAgents()
				addSet(snap, "texas-orders", "Texas", california, "")
				addSet(snap, "texas-billing", "Texas", california, "")
				addSet(snap, "california-orders", "California", california, "")
				addSet(snap, "japan-orders", "Japan", japan, "")
				return snap
			},
			opts: Options{Self: texas, MoveBudget: 10},
			want: plan{Requests: []string{
				"texas-billing->tcs-texas-1 better-placed",
				"texas-orders->tcs-texas-1 better-placed",
			}},
		},
		{
			name: "California sees Texas's request: it hands the set over",
			build: func() *Snapshot {
				snap := patentAgents()
				addSet(snap, "texas-orders", "Texas", california, texas)
				addSet(snap, "texas-billing", "Texas", california, "")
				addSet(snap, "california-orders", "California", california, "")
				return snap
			},
			opts: Options{Self: california, MoveBudget: 10},
			want: plan{Handoffs: []string{"texas-orders->tcs-texas-1 better-placed"}},
		},
		{
			name: "the request is already Self's: nothing to write",
			build: func() *Snapshot {
				snap := patentAgents()
				addSet(snap, "texas-orders", "Texas", california, texas)
				return snap
			},
			opts: Options{Self: texas, MoveBudget: 10},
			want: plan{},
		},
		{
			name: "a better-ranked agent has already asked: Self stands back",
			build: func() *Snapshot {
				snap := patentAgents()
				addSet(snap, "california-orders", "California", japan, california)
				return snap
			},
			opts: Options{Self: texas, MoveBudget: 10},
			want: plan{},
		},
		{
			name: "a worse-ranked agent has asked: Self asks over it",
			build: func() *Snapshot {
				snap := patentAgents()
				addSet(snap, "texas-orders", "Texas", japan, california)
				return snap
			},
			opts: Options{Self: texas, MoveBudget: 10},
			want: plan{Requests: []string{"texas-orders->tcs-texas-1 better-placed"}},
		},
		{
			name: "a dead agent has asked: Self asks over it",
			build: func() *Snapshot {
				snap := patentAgents()
				addSet(snap, "texas-orders", "Texas", japan, gone)
				return snap
			},
			opts: Options{Self: texas, MoveBudget: 10},
			want: plan{Requests: []string{"texas-orders->tcs-texas-1 better-placed"}},
		},
		{
			name: "a location with no agent: the nearest asks the far owner",
			build: func() *Snapshot {
				snap := patentAgents()
				addLocation(snap, "Mexico City", 19.4326, -99.1332)
				addSet(snap, "mexico-orders", "Mexico City", japan, "")
				addSet(snap, "mexico-spares", "Mexico City", "", "")
				return snap
			},
			opts: Options{Self: texas, MoveBudget: 10},
			want: plan{
				Claims:   []string{"mexico-spares@0"},
				Requests: []string{"mexico-orders->tcs-texas-1 better-placed"},
			},
		},
		{
			name: "an owner of unknown distance loses to a known one",
			build: func() *Snapshot {
				snap := patentAgents()
				addService(snap, serviceDN("tcs-mars-1"), "Mars", 0)
				addSet(snap, "texas-orders", "Texas", serviceDN("tcs-mars-1"), "")
				return snap
			},
			opts: Options{Self: japan, MoveBudget: 10},
			want: plan{Requests: []string{"texas-orders->tcs-japan-1 better-placed"}},
		},
		{
			name: "requests: location gains, then the larger distance gain, then balance (never capacity relief)",
			build: func() *Snapshot {
				snap := patentAgents()
				addLocation(snap, "Mexico City", 19.4326, -99.1332)
				addService(snap, serviceDN("tcs-full-1"), "Texas", 1)
				addSet(snap, "a-mexico", "Mexico City", california, "") // gains about 1,700 km
				addSet(snap, "b-mexico", "Mexico City", japan, "")      // gains about 10,000 km
				addSet(snap, "c-texas", "Texas", california, "")        // location
				addSet(snap, "d-texas", "Texas", japan, "")             // location
				addSet(snap, "e-full", "Texas", serviceDN("tcs-full-1"), "")
				addSet(snap, "f-full", "Texas", serviceDN("tcs-full-1"), "")
				return snap
			},
			opts: Options{Self: texas, MoveBudget: 10},
			want: plan{Requests: []string{
				"c-texas->tcs-texas-1 better-placed",
				"d-texas->tcs-texas-1 better-placed",
				"b-mexico->tcs-texas-1 better-placed",
				"a-mexico->tcs-texas-1 better-placed",
				"e-full->tcs-texas-1 balance",
			}},
		},
		{
			name: "the move budget cuts requests, best gains kept",
			build: func() *Snapshot {
				snap := patentAgents()
				addLocation(snap, "Mexico City", 19.4326, -99.1332)
				addSet(snap, "a-mexico", "Mexico City", california, "")
				addSet(snap, "b-texas", "Texas", california, "")
				addSet(snap, "c-texas", "Texas", japan, "")
				return snap
			},
			opts: Options{Self: texas, MoveBudget: 2},
			want: plan{Requests: []string{
				"b-texas->tcs-texas-1 better-placed",
				"c-texas->tcs-texas-1 better-placed",
			}},
		},
		{
			name: "a zero move budget: no requests, claims and handoffs still planned",
			build: func() *Snapshot {
				snap := patentAgents()
				addSet(snap, "b-texas", "Texas", california, "")
				addSet(snap, "texas-orders", "Texas", "", "")
				addSet(snap, "japan-orders", "Japan", texas, japan)
				return snap
			},
			opts: Options{Self: texas},
			want: plan{
				Claims:   []string{"texas-orders@0"},
				Handoffs: []string{"japan-orders->tcs-japan-1 better-placed"},
			},
		},
		{
			name:  "hysteresis blocks an 11 km gain",
			build: meridianWorld,
			opts:  Options{Self: serviceDN("tcs-closer-1"), MoveBudget: 10},
			want:  plan{},
		},
		{
			name:  "an explicit margin below the gain lets it through",
			build: meridianWorld,
			opts:  Options{Self: serviceDN("tcs-closer-1"), HysteresisKm: 5, MoveBudget: 10},
			want:  plan{Requests: []string{"site-orders->tcs-closer-1 better-placed"}},
		},
		{
			name:  "a negative margin means none",
			build: meridianWorld,
			opts:  Options{Self: serviceDN("tcs-closer-1"), HysteresisKm: -1, MoveBudget: 10},
			want:  plan{Requests: []string{"site-orders->tcs-closer-1 better-placed"}},
		},
		{
			name:  "a 67 km gain passes the default margin",
			build: meridianWorld,
			opts:  Options{Self: serviceDN("tcs-near-1"), MoveBudget: 10},
			want:  plan{Requests: []string{"site-orders->tcs-near-1 better-placed"}},
		},
		{
			name:  "a 67 km gain is blocked by a 100 km margin",
			build: meridianWorld,
			opts:  Options{Self: serviceDN("tcs-near-1"), HysteresisKm: 100, MoveBudget: 10},
			want:  plan{},
		},
		{
			name: "the owner rejects a request within the margin",
			build: func() *Snapshot {
				snap := meridianWorld()
				addSet(snap, "site-orders", "Site", serviceDN("tcs-far-1"), serviceDN("tcs-closer-1"))
				return snap
			},
			opts: Options{Self: serviceDN("tcs-far-1"), MoveBudget: 10},
			want: plan{Rejects: []string{"site-orders->tcs-closer-1 rejected"}},
		},
		{
			name: "dead requester: reject",
			build: func() *Snapshot {
				snap := patentAgents()
				addSet(snap, "texas-orders", "Texas", texas, gone)
				return snap
			},
			opts: Options{Self: texas, MoveBudget: 10},
			want: plan{Rejects: []string{"texas-orders->tcs-gone-1 rejected"}},
		},
		{
			name: "worse-placed requester: reject",
			build: func() *Snapshot {
				snap := patentAgents()
				addSet(snap, "texas-orders", "Texas", texas, california)
				return snap
			},
			opts: Options{Self: texas, MoveBudget: 10},
			want: plan{Rejects: []string{"texas-orders->tcs-california-1 rejected"}},
		},
		{
			name: "a stale request naming the owner itself: reject",
			build: func() *Snapshot {
				snap := patentAgents()
				addSet(snap, "texas-orders", "Texas", texas, "CN=tcs-texas-1,ou=services,dc=example,dc=org")
				return snap
			},
			opts: Options{Self: texas, MoveBudget: 10},
			want: plan{Rejects: []string{"texas-orders->tcs-texas-1 rejected"}},
		},
		{
			name: "requester at capacity in the owner's view: handed over (the requester judges its own room)",
			build: func() *Snapshot {
				snap := patentAgents()
				addService(snap, california, "California", 1)
				addSet(snap, "california-billing", "California", california, "")
				addSet(snap, "california-orders", "California", japan, california)
				return snap
			},
			opts: Options{Self: japan, MoveBudget: 10},
			want: plan{Handoffs: []string{"california-orders->tcs-california-1 better-placed"}},
		},
		{
			name: "owner over capacity hands over only what it is over",
			build: func() *Snapshot {
				snap := patentAgents()
				addService(snap, texas, "Texas", 1)
				addSet(snap, "texas-a", "Texas", texas, california)
				addSet(snap, "texas-b", "Texas", texas, california)
				return snap
			},
			opts: Options{Self: texas, MoveBudget: 10},
			want: plan{
				Handoffs: []string{"texas-a->tcs-california-1 over-capacity"},
				Rejects:  []string{"texas-b->tcs-california-1 rejected"},
			},
		},
		{
			name: "owner over capacity: a farther agent does not ask, the owner sheds itself",
			build: func() *Snapshot {
				snap := patentAgents()
				addService(snap, texas, "Texas", 1)
				addSet(snap, "texas-a", "Texas", texas, "")
				addSet(snap, "texas-b", "Texas", texas, "")
				return snap
			},
			opts: Options{Self: california, MoveBudget: 10},
			want: plan{},
		},
		{
			name: "owner over capacity sheds its worst-placed sets to the best agents with room",
			build: func() *Snapshot {
				snap := patentAgents()
				addService(snap, texas, "Texas", 2)
				addService(snap, california, "California", 1)
				addSet(snap, "texas-a", "Texas", texas, "")
				addSet(snap, "texas-b", "Texas", texas, "")
				addSet(snap, "california-a", "California", texas, "")
				addSet(snap, "japan-a", "Japan", texas, "")
				return snap
			},
			opts: Options{Self: texas, MoveBudget: 10},
			want: plan{Handoffs: []string{
				"japan-a->tcs-japan-1 over-capacity",
				"california-a->tcs-california-1 over-capacity",
			}},
		},
		{
			name: "owner over capacity: a full receiver is skipped, the budget bounds the handoffs",
			build: func() *Snapshot {
				snap := patentAgents()
				addService(snap, texas, "Texas", 1)
				addService(snap, california, "California", 1)
				addSet(snap, "texas-a", "Texas", texas, "")
				addSet(snap, "texas-b", "Texas", texas, "")
				addSet(snap, "texas-c", "Texas", texas, "")
				addSet(snap, "texas-d", "Texas", texas, "")
				return snap
			},
			opts: Options{Self: texas, MoveBudget: 2, Loads: map[string]int{Key(california): 1}},
			want: plan{Handoffs: []string{
				"texas-a->tcs-japan-1 over-capacity",
				"texas-b->tcs-japan-1 over-capacity",
			}},
		},
		{
			name: "owner over capacity and nobody has room: it keeps its sets",
			build: func() *Snapshot {
				snap := patentWorld()
				addService(snap, texas, "Texas", 1)
				addService(snap, california, "California", 1)
				addSet(snap, "texas-a", "Texas", texas, "")
				addSet(snap, "texas-b", "Texas", texas, "")
				addSet(snap, "california-a", "California", california, "")
				return snap
			},
			opts: Options{Self: texas, MoveBudget: 10},
			want: plan{},
		},
		{
			name: "Self full of far sets asks for a home set (a swap)",
			build: func() *Snapshot {
				snap := patentAgents()
				addService(snap, texas, "Texas", 1)
				addSet(snap, "japan-a", "Japan", texas, "")
				addSet(snap, "texas-a", "Texas", california, "")
				return snap
			},
			opts: Options{Self: texas, MoveBudget: 10},
			want: plan{Requests: []string{"texas-a->tcs-texas-1 better-placed"}},
		},
		{
			name: "Self full of home sets does not swap for another home set",
			build: func() *Snapshot {
				snap := patentAgents()
				addService(snap, texas, "Texas", 1)
				addSet(snap, "texas-a", "Texas", texas, "")
				addSet(snap, "texas-b", "Texas", california, "")
				return snap
			},
			opts: Options{Self: texas, MoveBudget: 10},
			want: plan{},
		},
		{
			name: "balance: an agent asks an equally placed one holding two more for the difference",
			build: func() *Snapshot {
				snap := patentAgents()
				addService(snap, serviceDN("tcs-texas-2"), "Texas", 0)
				for _, n := range []string{"a", "b", "c", "d", "e"} {
					addSet(snap, "texas-"+n, "Texas", texas, "")
				}
				return snap
			},
			opts: Options{Self: serviceDN("tcs-texas-2"), MoveBudget: 10},
			want: plan{Requests: []string{"texas-a->tcs-texas-2 balance", "texas-b->tcs-texas-2 balance"}},
		},
		{
			name: "balance: a difference of one is no reason",
			build: func() *Snapshot {
				snap := patentAgents()
				addService(snap, serviceDN("tcs-texas-2"), "Texas", 0)
				addSet(snap, "texas-a", "Texas", texas, "")
				addSet(snap, "texas-b", "Texas", texas, "")
				addSet(snap, "texas-c", "Texas", serviceDN("tcs-texas-2"), "")
				return snap
			},
			opts: Options{Self: serviceDN("tcs-texas-2"), MoveBudget: 10},
			want: plan{},
		},
		{
			name: "balance: the owner hands over while it holds two more, then rejects",
			build: func() *Snapshot {
				snap := patentAgents()
				t2 := serviceDN("tcs-texas-2")
				addService(snap, t2, "Texas", 0)
				addSet(snap, "texas-a", "Texas", texas, t2)
				addSet(snap, "texas-b", "Texas", texas, t2)
				addSet(snap, "texas-c", "Texas", texas, t2)
				addSet(snap, "texas-d", "Texas", texas, "")
				return snap
			},
			opts: Options{Self: texas, MoveBudget: 10},
			want: plan{
				Handoffs: []string{"texas-a->tcs-texas-2 balance", "texas-b->tcs-texas-2 balance"},
				Rejects:  []string{"texas-c->tcs-texas-2 rejected"},
			},
		},
		{
			name: "orphans among agents of one location without a limit go by hash (balance evens them out), each claimed at rank 0 by one",
			build: func() *Snapshot {
				snap := patentAgents()
				addService(snap, serviceDN("tcs-texas-2"), "Texas", 0)
				addService(snap, serviceDN("tcs-texas-3"), "Texas", 0)
				addSet(snap, "texas-owned", "Texas", texas, "")
				for _, n := range []string{"a", "b", "c", "d", "e"} {
					addSet(snap, "texas-"+n, "Texas", "", "")
				}
				return snap
			},
			opts: Options{Self: texas, MoveBudget: 10},
			want: plan{Claims: []string{"texas-a@0", "texas-b@1", "texas-c@2", "texas-d@0", "texas-e@0"}},
		},
		{
			name: "orphans go to the equally placed agent with most spare capacity",
			build: func() *Snapshot {
				snap := patentAgents()
				addService(snap, texas, "Texas", 10)
				addService(snap, serviceDN("tcs-texas-2"), "Texas", 4)
				addSet(snap, "texas-owned", "Texas", texas, "")
				for _, n := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
					addSet(snap, "texas-"+n, "Texas", "", "")
				}
				return snap
			},
			opts: Options{Self: serviceDN("tcs-texas-2"), MoveBudget: 10},
			want: plan{Claims: []string{"texas-a@1", "texas-b@1", "texas-c@1", "texas-d@1", "texas-e@1", "texas-f@1", "texas-g@0", "texas-h@0"}},
		},
		{
			name: "claims stop at Self's capacity: the rest go to the next-ranked",
			build: func() *Snapshot {
				snap := patentAgents()
				addService(snap, texas, "Texas", 2)
				for _, n := range []string{"a", "b", "c", "d"} {
					addSet(snap, "texas-"+n, "Texas", "", "")
				}
				addSet(snap, "mexico-a", "Mexico", "", "") // no location entry: distance unknown to all
				return snap
			},
			opts: Options{Self: texas, MoveBudget: 10},
			want: plan{Claims: []string{"mexico-a@2", "texas-a@0", "texas-b@0", "texas-c@2", "texas-d@2"}},
		},
		{
			name: "owner at exactly capacity keeps its sets",
			build: func() *Snapshot {
				snap := patentAgents()
				addService(snap, texas, "Texas", 1)
				addSet(snap, "texas-a", "Texas", texas, "")
				return snap
			},
			opts: Options{Self: california, MoveBudget: 10},
			want: plan{},
		},
		{
			name: "Self at capacity: no requests, orphans claimed after the others",
			build: func() *Snapshot {
				snap := patentAgents()
				addService(snap, texas, "Texas", 1)
				addSet(snap, "texas-a", "Texas", texas, "")
				addSet(snap, "texas-b", "Texas", california, "")
				addSet(snap, "texas-c", "Texas", "", "")
				return snap
			},
			opts: Options{Self: texas, MoveBudget: 10},
			want: plan{Claims: []string{"texas-c@2"}},
		},
		{
			name: "Self at capacity and alone: it still takes the orphan first",
			build: func() *Snapshot {
				snap := patentWorld()
				addService(snap, texas, "Texas", 1)
				addSet(snap, "texas-a", "Texas", texas, "")
				addSet(snap, "japan-orders", "Japan", "", "")
				return snap
			},
			opts: Options{Self: texas, MoveBudget: 10},
			want: plan{Claims: []string{"japan-orders@0"}},
		},
		{
			name: "requests are cut to Self's spare capacity, outstanding ones counted",
			build: func() *Snapshot {
				snap := patentAgents()
				addService(snap, texas, "Texas", 3)
				addSet(snap, "texas-a", "Texas", texas, "")
				addSet(snap, "texas-b", "Texas", california, texas) // outstanding
				addSet(snap, "texas-c", "Texas", california, "")
				addSet(snap, "texas-d", "Texas", california, "")
				addSet(snap, "texas-e", "Texas", japan, "")
				return snap
			},
			opts: Options{Self: texas, MoveBudget: 10},
			want: plan{Requests: []string{"texas-c->tcs-texas-1 better-placed"}},
		},
		{
			name: "leaving: Texas sets to Texas, California sets to the nearest other, Japan sets to Japan",
			build: func() *Snapshot {
				snap := patentAgents()
				addSet(snap, "texas-orders", "Texas", california, "")
				addSet(snap, "california-orders", "California", california, "")
				addSet(snap, "japan-orders", "Japan", california, texas)
				addSet(snap, "orphan", "California", "", "")                // not claimed
				addSet(snap, "california-billing", "California", japan, "") // not requested
				return snap
			},
			opts: Options{Self: california, MoveBudget: 10, Leaving: true},
			want: plan{Handoffs: []string{
				"california-orders->tcs-texas-1 leave",
				"japan-orders->tcs-japan-1 leave",
				"texas-orders->tcs-texas-1 leave",
			}},
		},
		{
			name: "leaving alone: release every set",
			build: func() *Snapshot {
				snap := patentWorld()
				addService(snap, california, "California", 0)
				addSet(snap, "texas-orders", "Texas", california, "")
				addSet(snap, "california-orders", "California", california, "")
				return snap
			},
			opts: Options{Self: california, Leaving: true},
			want: plan{Handoffs: []string{
				"california-orders-> leave",
				"texas-orders-> leave",
			}},
		},
		{
			name: "leaving fills a receiver up to its capacity, then the next best",
			build: func() *Snapshot {
				snap := patentAgents()
				addService(snap, texas, "Texas", 2)
				addSet(snap, "texas-a", "Texas", texas, "")
				addSet(snap, "texas-b", "Texas", california, "")
				addSet(snap, "texas-c", "Texas", california, "")
				return snap
			},
			opts: Options{Self: california, Leaving: true},
			want: plan{Handoffs: []string{
				"texas-b->tcs-texas-1 leave",
				"texas-c->tcs-japan-1 leave",
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := summarize(Decide(tt.build(), tt.opts))
			if !got.equal(tt.want) {
				t.Errorf("Decide:%v\nwant:%v", got, tt.want)
			}
		})
	}
}

// TestDecideStory plays the patent's example end to end, applying each plan
// to the snapshot the way the agent loop would.
func TestDecideStory(t *testing.T) {
	snap := patentAgents()
	for _, loc := range []string{"Japan", "Texas", "California"} {
		for _, n := range []string{"orders", "billing"} {
			addSet(snap, strings.ToLower(loc)+"-"+n, loc, "", "")
		}
	}
	agents := []string{japan, texas, california}
	claimAll := func(t *testing.T) {
		t.Helper()
		for _, key := range slices.Sorted(maps.Keys(snap.Sets)) {
			set := snap.Sets[key]
			if !snap.Orphaned(set) {
				continue
			}
			// The agent at rank 0 claims first.
			for _, dn := range agents {
				for _, c := range Decide(snap, Options{Self: dn}).Claims {
					if c.Set.Name == set.Name && c.Rank == 0 {
						set.Owner = dn
						set.Epoch++
						snap.Sets[key] = set
					}
				}
			}
		}
	}
	wantOwners := func(t *testing.T, want map[string]string) {
		t.Helper()
		for name, owner := range want {
			if got := snap.Sets[Key(name)].Owner; cnOf(got) != owner {
				t.Errorf("%s owned by %q, want %q", name, cnOf(got), owner)
			}
		}
	}

	t.Run("start: every set goes to its own location's agent", func(t *testing.T) {
		claimAll(t)
		wantOwners(t, map[string]string{
			"japan-orders": "tcs-japan-1", "texas-orders": "tcs-texas-1", "california-billing": "tcs-california-1",
		})
	})
	t.Run("Texas dies: California takes the Texas sets", func(t *testing.T) {
		delete(snap.Services, Key(texas))
		agents = []string{japan, california}
		claimAll(t)
		wantOwners(t, map[string]string{"texas-orders": "tcs-california-1", "texas-billing": "tcs-california-1"})
	})
	t.Run("Texas comes back: request, handoff", func(t *testing.T) {
		addService(snap, texas, "Texas", 0)
		p := Decide(snap, Options{Self: texas, MoveBudget: 1})
		if len(p.Requests) != 1 || p.Requests[0].Set.Name != "texas-billing" {
			t.Fatalf("Texas plan:%v\nwant one request for texas-billing", summarize(p))
		}
		set := snap.Sets[Key("texas-billing")]
		set.ReleaseRequest = texas
		snap.Sets[Key("texas-billing")] = set

		p = Decide(snap, Options{Self: california})
		if len(p.Handoffs) != 1 || p.Handoffs[0].To != texas {
			t.Fatalf("California plan:%v\nwant one handoff to Texas", summarize(p))
		}
		set.Owner, set.ReleaseRequest = texas, ""
		set.Epoch++
		snap.Sets[Key("texas-billing")] = set
		wantOwners(t, map[string]string{"texas-billing": "tcs-texas-1", "texas-orders": "tcs-california-1"})
		if got := State(snap, snap.Counts(), set); got != StateOptimal {
			t.Errorf("texas-billing state = %q, want %q", got, StateOptimal)
		}
		if got := State(snap, snap.Counts(), snap.Sets[Key("texas-orders")]); got != StateNonOptimal {
			t.Errorf("texas-orders state = %q, want %q", got, StateNonOptimal)
		}
	})
}

// TestDecideClaimsAgree checks that agents holding the same snapshot agree
// on the allocation of orphans: for each orphan the claim ranks of all
// agents are 0, 1, ..., n-1, so exactly one claims at once.
func TestDecideClaimsAgree(t *testing.T) {
	snap := patentAgents()
	addService(snap, serviceDN("tcs-texas-2"), "Texas", 0)
	addService(snap, serviceDN("tcs-texas-3"), "Texas", 1)
	addService(snap, serviceDN("tcs-mars-1"), "Mars", 0)
	addSet(snap, "owned", "Japan", serviceDN("tcs-texas-3"), "")
	for i, loc := range []string{"Japan", "Texas", "California", "Mars", "", "Texas", "Texas"} {
		addSet(snap, fmt.Sprintf("orphan-%d-%s", i, loc), loc, "", "")
	}
	ranks := map[string][]int{}
	for _, svc := range snap.Services {
		for _, c := range Decide(snap, Options{Self: svc.DN}).Claims {
			ranks[c.Set.Name] = append(ranks[c.Set.Name], c.Rank)
		}
	}
	if len(ranks) != 7 {
		t.Fatalf("claims for %d orphans, want 7", len(ranks))
	}
	for name, rs := range ranks {
		slices.Sort(rs)
		for i, r := range rs {
			if r != i {
				t.Errorf("%s: ranks %v, want 0..%d", name, rs, len(snap.Services)-1)
				break
			}
		}
	}
}

func TestBetter(t *testing.T) {
	gone := serviceDN("tcs-gone-1")
	tests := []struct {
		name   string
		build  func(*Snapshot) // changes to patentAgents; the set is texas-orders
		owner  string
		a, b   string
		margin float64
		want   bool
	}{
		{name: "same location beats another", a: texas, b: california, owner: california, want: true},
		{name: "another location loses to the same one", a: california, b: texas, owner: texas, want: false},
		{name: "nearer by more than the margin", a: california, b: japan, owner: japan, margin: 50, want: true},
		{name: "farther", a: japan, b: california, owner: california, want: false},
		{name: "a not live", a: gone, b: california, owner: california, want: false},
		{name: "b not live", a: japan, b: gone, owner: gone, want: true},
		{name: "same service", a: texas, b: texas, owner: texas, want: false},
		{
			name:  "b not live but a at capacity",
			build: func(s *Snapshot) { addService(s, japan, "Japan", 1); addSet(s, "x", "Japan", japan, "") },
			a:     japan, b: gone, owner: gone, want: false,
		},
		{
			name:  "a at capacity",
			build: func(s *Snapshot) { addService(s, texas, "Texas", 1); addSet(s, "x", "Japan", texas, "") },
			a:     texas, b: japan, owner: japan, want: false,
		},
		{
			name:  "b over capacity for this set",
			build: func(s *Snapshot) { addService(s, texas, "Texas", 1); addSet(s, "x", "Japan", texas, "") },
			a:     japan, b: texas, owner: texas, want: true,
		},
		{
			name:  "b at exactly capacity with this set",
			build: func(s *Snapshot) { addService(s, texas, "Texas", 1) },
			a:     california, b: texas, owner: texas, want: false,
		},
		{
			name: "same place, more spare capacity is no reason",
			build: func(s *Snapshot) {
				addService(s, serviceDN("tcs-texas-2"), "Texas", 0)
				addService(s, texas, "Texas", 3)
				addSet(s, "x", "Japan", texas, "")
			},
			a: serviceDN("tcs-texas-2"), b: texas, owner: texas, want: false,
		},
		{
			name:  "known distance beats unknown",
			build: func(s *Snapshot) { addService(s, serviceDN("tcs-mars-1"), "Mars", 0) },
			a:     japan, b: serviceDN("tcs-mars-1"), owner: serviceDN("tcs-mars-1"), want: true,
		},
		{
			name:  "unknown distance never beats",
			build: func(s *Snapshot) { addService(s, serviceDN("tcs-mars-1"), "Mars", 0) },
			a:     serviceDN("tcs-mars-1"), b: japan, owner: japan, want: false,
		},
		{
			name: "equal distances with no margin: no move",
			build: func(s *Snapshot) {
				addLocation(s, "Texas-West", 30.2672, -97.7431-1) // due west of Texas
				addService(s, serviceDN("tcs-west-1"), "Texas-West", 0)
				addService(s, serviceDN("tcs-self-1"), "Texas-West", 0)
			},
			a: serviceDN("tcs-west-1"), b: serviceDN("tcs-self-1"), owner: serviceDN("tcs-self-1"), margin: 0, want: false,
		},
		{
			name:  "a negative margin counts as none",
			build: func(s *Snapshot) { addService(s, serviceDN("tcs-japan-2"), "Japan", 0) },
			a:     serviceDN("tcs-japan-2"), b: japan, owner: japan, margin: -1000, want: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := patentAgents()
			if tt.build != nil {
				tt.build(snap)
			}
			set := addSet(snap, "texas-orders", "Texas", tt.owner, "")
			if got := Better(snap, snap.Counts(), set, tt.a, tt.b, tt.margin); got != tt.want {
				t.Errorf("Better(%s over %s) = %v, want %v", cnOf(tt.a), cnOf(tt.b), got, tt.want)
			}
		})
	}
}

func TestOptionsMargin(t *testing.T) {
	tests := []struct {
		name string
		in   float64
		want float64
	}{
		{name: "zero means the default", in: 0, want: DefaultHysteresisKm},
		{name: "negative means none", in: -3, want: 0},
		{name: "positive is kept", in: 12.5, want: 12.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (Options{HysteresisKm: tt.in}).margin(); got != tt.want {
				t.Errorf("margin(%v) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func BenchmarkDecide(b *testing.B) {
	snap := largeWorld(100, 10000)
	opts := Options{Self: serviceDN("tcs-3"), MoveBudget: 100}
	for b.Loop() {
		Decide(snap, opts)
	}
}

// An agent over its capacity whose shedding stops because the others look
// full in its snapshot asks for their loads to be read (Plan.CheckLoads):
// a snapshot may count sets that have left them. A count read replaces the
// snapshot's, lower or higher.
func TestDecideChecksTheLoadsThatStopShedding(t *testing.T) {
	build := func() *Snapshot {
		snap := patentWorld()
		addService(snap, japan, "Japan", 1)
		addService(snap, texas, "Texas", 1)
		addService(snap, california, "California", 1)
		addSet(snap, "texas-a", "Texas", texas, "")
		addSet(snap, "texas-b", "Texas", texas, "")
		addSet(snap, "texas-c", "Texas", texas, "")
		addSet(snap, "japan-a", "Japan", japan, "")
		addSet(snap, "california-a", "California", california, "")
		return snap
	}
	tests := []struct {
		name   string
		opts   Options
		want   []string // handoffs
		checks []string
	}{
		{"nothing read: both look full, both to read", Options{Self: texas, MoveBudget: 10}, nil, []string{california, japan}},
		{"California read with room: one goes there, Japan to read",
			Options{Self: texas, MoveBudget: 10, Loads: map[string]int{Key(california): 0}},
			[]string{"texas-a->tcs-california-1 over-capacity"}, []string{japan}},
		{"both read: a count read replaces the snapshot's",
			Options{Self: texas, MoveBudget: 10, Loads: map[string]int{Key(california): 0, Key(japan): 0}},
			[]string{"texas-a->tcs-california-1 over-capacity", "texas-b->tcs-japan-1 over-capacity"}, nil},
		{"both read full: nothing to read again", Options{Self: texas, MoveBudget: 10, Loads: map[string]int{Key(california): 1, Key(japan): 3}}, nil, nil},
		{"no budget left: nothing to read", Options{Self: texas, MoveBudget: 0}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Decide(build(), tt.opts)
			if got := summarize(p).Handoffs; !slices.Equal(got, tt.want) {
				t.Errorf("handoffs = %q, want %q", got, tt.want)
			}
			if !slices.Equal(p.CheckLoads, tt.checks) {
				t.Errorf("CheckLoads = %q, want %q", p.CheckLoads, tt.checks)
			}
		})
	}
}
