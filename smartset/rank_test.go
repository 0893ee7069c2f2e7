package smartset

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestRank(t *testing.T) {
	tests := []struct {
		name  string
		build func() *Snapshot
		set   string // name of the set to rank, looked up in the snapshot
		want  []string
	}{
		{
			name: "each Texas set: Texas, then California, then Japan",
			build: func() *Snapshot {
				snap := patentAgents()
				addSet(snap, "texas-orders", "Texas", "", "")
				return snap
			},
			set:  "texas-orders",
			want: []string{"tcs-texas-1", "tcs-california-1", "tcs-japan-1"},
		},
		{
			name: "each Japan set: Japan, then California, then Texas",
			build: func() *Snapshot {
				snap := patentAgents()
				addSet(snap, "japan-orders", "Japan", "", "")
				return snap
			},
			set:  "japan-orders",
			want: []string{"tcs-japan-1", "tcs-california-1", "tcs-texas-1"},
		},
		{
			name: "California beats Japan for a Texas set when Texas is dead",
			build: func() *Snapshot {
				snap := patentWorld()
				addService(snap, japan, "Japan", 0)
				addService(snap, california, "California", 0)
				addSet(snap, "texas-orders", "Texas", texas, "")
				return snap
			},
			set:  "texas-orders",
			want: []string{"tcs-california-1", "tcs-japan-1"},
		},
		{
			name: "same location beats an equally near other with more spare capacity",
			build: func() *Snapshot {
				snap := patentWorld()
				addLocation(snap, "Austin", 30.2672, -97.7431) // Texas's coordinates
				addService(snap, texas, "TEXAS", 2)            // location compared case-insensitively
				addService(snap, serviceDN("tcs-austin-1"), "Austin", 0)
				addSet(snap, "other", "Japan", texas, "")
				addSet(snap, "texas-orders", "Texas", "", "")
				return snap
			},
			set:  "texas-orders",
			want: []string{"tcs-texas-1", "tcs-austin-1"},
		},
		{
			name: "a location with no agent goes to the nearest",
			build: func() *Snapshot {
				snap := patentAgents()
				addLocation(snap, "Mexico City", 19.4326, -99.1332)
				addSet(snap, "mexico-orders", "Mexico City", "", "")
				return snap
			},
			set:  "mexico-orders",
			want: []string{"tcs-texas-1", "tcs-california-1", "tcs-japan-1"},
		},
		{
			name: "unknown coordinates rank after known ones, however far",
			build: func() *Snapshot {
				snap := patentWorld()
				addLocationWithoutCoordinates(snap, "Atlantis")
				addService(snap, serviceDN("tcs-atlantis-1"), "Atlantis", 0) // entry without coordinates
				addService(snap, serviceDN("tcs-mars-1"), "Mars", 0)         // no location entry
				addService(snap, serviceDN("tcs-nowhere-1"), "", 0)          // no location at all
				addService(snap, japan, "Japan", 0)
				addSet(snap, "texas-orders", "Texas", "", "")
				return snap
			},
			set: "texas-orders",
			want: append([]string{"tcs-japan-1"},
				byHash("texas-orders", "tcs-atlantis-1", "tcs-mars-1", "tcs-nowhere-1")...),
		},
		{
			name: "at-capacity agent ranks last even at the same location",
			build: func() *Snapshot {
				snap := patentWorld()
				addService(snap, japan, "Japan", 0)
				addService(snap, texas, "Texas", 1)
				addService(snap, california, "California", 0)
				addSet(snap, "texas-billing", "Texas", texas, "")
				addSet(snap, "texas-orders", "Texas", "", "")
				return snap
			},
			set:  "texas-orders",
			want: []string{"tcs-california-1", "tcs-japan-1", "tcs-texas-1"},
		},
		{
			name: "the owner at exactly its capacity is not at capacity for its own set",
			build: func() *Snapshot {
				snap := patentAgents()
				addService(snap, texas, "Texas", 1)
				addSet(snap, "texas-orders", "Texas", texas, "")
				return snap
			},
			set:  "texas-orders",
			want: []string{"tcs-texas-1", "tcs-california-1", "tcs-japan-1"},
		},
		{
			name: "spare capacity breaks distance ties, unlimited first",
			build: func() *Snapshot {
				snap := patentWorld()
				addService(snap, serviceDN("tcs-california-1"), "California", 10)
				addService(snap, serviceDN("tcs-california-2"), "California", 10)
				addService(snap, serviceDN("tcs-california-3"), "California", 0)
				for _, s := range []string{"a", "b", "c", "d", "e"} {
					addSet(snap, "ca-"+s, "California", serviceDN("tcs-california-1"), "")
				}
				addSet(snap, "ca-f", "California", serviceDN("tcs-california-2"), "")
				addSet(snap, "texas-orders", "Texas", "", "")
				return snap
			},
			set:  "texas-orders",
			want: []string{"tcs-california-3", "tcs-california-2", "tcs-california-1"},
		},
		{
			name: "the hash breaks full ties",
			build: func() *Snapshot {
				snap := patentWorld()
				for _, cn := range []string{"tcs-texas-1", "tcs-texas-2", "tcs-texas-3", "tcs-texas-4"} {
					addService(snap, serviceDN(cn), "Texas", 0)
				}
				addSet(snap, "texas-orders", "Texas", "", "")
				return snap
			},
			set:  "texas-orders",
			want: byHash("texas-orders", "tcs-texas-1", "tcs-texas-2", "tcs-texas-3", "tcs-texas-4"),
		},
		{
			name: "set location without an entry: only the name matches",
			build: func() *Snapshot {
				snap := patentAgents()
				addService(snap, serviceDN("tcs-atlantis-1"), "atlantis", 0)
				addSet(snap, "atlantis-orders", "Atlantis", "", "")
				return snap
			},
			set: "atlantis-orders",
			want: append([]string{"tcs-atlantis-1"},
				byHash("atlantis-orders", "tcs-japan-1", "tcs-texas-1", "tcs-california-1")...),
		},
		{
			name: "set without a location: hash order",
			build: func() *Snapshot {
				snap := patentAgents()
				addService(snap, serviceDN("tcs-nowhere-1"), "", 0)
				addSet(snap, "loose", "", "", "")
				return snap
			},
			set:  "loose",
			want: byHash("loose", "tcs-japan-1", "tcs-texas-1", "tcs-california-1", "tcs-nowhere-1"),
		},
		{
			name:  "empty snapshot",
			build: NewSnapshot,
			set:   "texas-orders",
			want:  []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := tt.build()
			set := snap.Sets[Key(tt.set)]
			if set.Name == "" {
				set = Set{Name: tt.set}
			}
			got := Rank(snap, set)
			if !slices.Equal(cns(got), tt.want) {
				t.Errorf("Rank = %v, want %v", cns(got), tt.want)
			}
			if got == nil {
				t.Errorf("Rank = nil, want an empty slice")
			}
		})
	}
}

// byHash returns the service cns in the order the hash ranks them for set.
func byHash(set string, cnList ...string) []string {
	out := slices.Clone(cnList)
	slices.SortFunc(out, func(a, b string) int {
		ha, hb := RendezvousHash(serviceDN(a), set), RendezvousHash(serviceDN(b), set)
		switch {
		case ha > hb:
			return -1
		case ha < hb:
			return 1
		}
		return 0
	})
	return out
}

func TestRankCandidateFields(t *testing.T) {
	snap := patentAgents()
	addService(snap, texas, "Texas", 2)
	addSet(snap, "texas-orders", "Texas", texas, "")
	addSet(snap, "texas-billing", "Texas", texas, "")
	set := snap.Sets[Key("texas-orders")]

	got := Rank(snap, set)
	want := []Candidate{
		{Service: snap.Services[Key(texas)], SameLocation: true, DistanceKm: 0, KnownDistance: true, Owned: 1, AtCapacity: false},
		{Service: snap.Services[Key(california)], DistanceKm: 2357.7, KnownDistance: true},
		{Service: snap.Services[Key(japan)], DistanceKm: 10544.1, KnownDistance: true},
	}
	if len(got) != len(want) {
		t.Fatalf("Rank = %v, want %d candidates", cns(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Service != w.Service || g.SameLocation != w.SameLocation || g.KnownDistance != w.KnownDistance ||
			g.Owned != w.Owned || g.AtCapacity != w.AtCapacity || math.Abs(g.DistanceKm-w.DistanceKm) > 0.1 {
			t.Errorf("candidate %d = %+v, want %+v", i, g, w)
		}
		if h := RendezvousHash(g.Service.DN, set.Name); g.Hash != h {
			t.Errorf("candidate %d Hash = %#x, want RendezvousHash = %#x", i, g.Hash, h)
		}
	}
}

func TestRankOwnedCounts(t *testing.T) {
	tests := []struct {
		name         string
		set          Set // the set ranked; the snapshot holds texas-orders owned by Texas
		wantOwned    int
		wantCapacity bool
	}{
		{
			name:      "the snapshot's copy is left out",
			set:       Set{Name: "texas-orders", Location: "Texas", Owner: texas},
			wantOwned: 1,
		},
		{
			name:      "left out even when the caller's copy names another owner",
			set:       Set{Name: "Texas-Orders", Location: "Texas", Owner: japan},
			wantOwned: 1,
		},
		{
			name:         "a set the snapshot does not hold leaves nothing out",
			set:          Set{Name: "texas-new", Location: "Texas", Owner: texas},
			wantOwned:    2,
			wantCapacity: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := patentAgents()
			addService(snap, texas, "Texas", 2)
			addSet(snap, "texas-orders", "Texas", texas, "")
			addSet(snap, "texas-billing", "Texas", texas, "")
			for _, c := range Rank(snap, tt.set) {
				if c.Service.DN != texas {
					continue
				}
				if c.Owned != tt.wantOwned || c.AtCapacity != tt.wantCapacity {
					t.Errorf("Texas Owned = %d AtCapacity = %v, want %d %v", c.Owned, c.AtCapacity, tt.wantOwned, tt.wantCapacity)
				}
			}
		})
	}
}

func TestRankStaleCountsNeverNegative(t *testing.T) {
	snap := patentAgents()
	set := addSet(snap, "texas-orders", "Texas", texas, "")
	for _, c := range RankWith(snap, Counts{}, set) {
		if c.Owned != 0 {
			t.Errorf("%s Owned = %d with empty counts, want 0", cnOf(c.Service.DN), c.Owned)
		}
	}
}

func TestRankDeterministic(t *testing.T) {
	cnList := make([]string, 0, 30)
	locations := []string{"Japan", "Texas", "California"}
	for i := range 30 {
		cnList = append(cnList, "tcs-agent-"+string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	// Build the same snapshot whatever the order services are added in.
	build := func(order []string) *Snapshot {
		snap := patentWorld()
		for _, cn := range order {
			i := slices.Index(cnList, cn)
			addService(snap, serviceDN(cn), locations[i%3], i%4) // some capacities, some unlimited
		}
		for i, cn := range cnList[:10] {
			addSet(snap, "owned-"+cn, locations[i%3], serviceDN(cn), "")
		}
		return snap
	}
	snap := build(cnList)
	set := addSet(snap, "texas-orders", "Texas", "", "")
	want := cns(Rank(snap, set))

	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 100 {
		order := slices.Clone(cnList)
		rng.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		snap := build(order)
		snap.Sets[Key(set.Name)] = set
		if got := cns(Rank(snap, set)); !slices.Equal(got, want) {
			t.Fatalf("run %d: Rank = %v, want %v", i, got, want)
		}
	}
}

func TestCompareCandidates(t *testing.T) {
	svc := func(cn string, capacity int) Service { return Service{DN: serviceDN(cn), Capacity: capacity} }
	base := Candidate{Service: svc("tcs-a", 0), KnownDistance: true, DistanceKm: 100, Hash: 5}
	with := func(f func(*Candidate)) Candidate {
		c := base
		f(&c)
		return c
	}
	tests := []struct {
		name          string
		better, worse Candidate
	}{
		{"not at capacity first", with(func(c *Candidate) { c.KnownDistance = false }), with(func(c *Candidate) { c.AtCapacity = true; c.SameLocation = true })},
		{"same location first", with(func(c *Candidate) { c.SameLocation = true; c.KnownDistance = false }), base},
		{"known distance first", base, with(func(c *Candidate) { c.KnownDistance = false; c.DistanceKm = 0 })},
		{"smaller distance first", with(func(c *Candidate) { c.DistanceKm = 99; c.Hash = 0 }), base},
		{"unknown distances are equal", with(func(c *Candidate) { c.KnownDistance = false; c.DistanceKm = 500; c.Hash = 6 }), with(func(c *Candidate) { c.KnownDistance = false; c.DistanceKm = 1 })},
		{"unlimited before limited", with(func(c *Candidate) { c.Hash = 0 }), with(func(c *Candidate) { c.Service = svc("tcs-a", 1000) })},
		{"more spare first", with(func(c *Candidate) { c.Service = svc("tcs-a", 10); c.Owned = 1; c.Hash = 0 }), with(func(c *Candidate) { c.Service = svc("tcs-a", 10); c.Owned = 2 })},
		{"higher hash first", with(func(c *Candidate) { c.Hash = 6 }), base},
		{"DN key last", base, with(func(c *Candidate) { c.Service = svc("tcs-b", 0) })},
		{"DN compared as a key", with(func(c *Candidate) { c.Service.DN = "CN=tcs-a, ou=services" }), with(func(c *Candidate) { c.Service.DN = "cn=tcs-b,ou=services" })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c := compareCandidates(tt.better, tt.worse); c >= 0 {
				t.Errorf("compareCandidates(better, worse) = %d, want < 0", c)
			}
			if c := compareCandidates(tt.worse, tt.better); c <= 0 {
				t.Errorf("compareCandidates(worse, better) = %d, want > 0", c)
			}
		})
	}
	if c := compareCandidates(base, base); c != 0 {
		t.Errorf("compareCandidates(x, x) = %d, want 0", c)
	}
}

func TestRendezvousHash(t *testing.T) {
	// reference: the spec written out with the standard library.
	reference := func(serviceKey, setKey string) uint64 {
		h := fnv.New64a()
		h.Write([]byte(serviceKey + "\x00" + setKey))
		z := h.Sum64()
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		return z ^ (z >> 31)
	}
	tests := []struct {
		name          string
		dn, set       string
		keyDN, keySet string
	}{
		{name: "plain", dn: texas, set: "texas-orders", keyDN: texas, keySet: "texas-orders"},
		{name: "case and spaces", dn: "CN=tcs-Texas-1, OU=services, dc=example, dc=org", set: "Texas-Orders", keyDN: texas, keySet: "texas-orders"},
		{name: "empty", dn: "", set: "", keyDN: "", keySet: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := RendezvousHash(tt.dn, tt.set), reference(tt.keyDN, tt.keySet); got != want {
				t.Errorf("RendezvousHash(%q, %q) = %#x, want %#x", tt.dn, tt.set, got, want)
			}
		})
	}
	if RendezvousHash("ab", "c") == RendezvousHash("a", "bc") {
		t.Errorf("the separator does not separate: (ab, c) and (a, bc) hash alike")
	}
}

func TestCounts(t *testing.T) {
	snap := patentAgents()
	addSet(snap, "a", "Texas", texas, "")
	addSet(snap, "b", "Texas", "CN=tcs-texas-1, ou=services, dc=example, dc=org", "")
	addSet(snap, "c", "Japan", japan, "")
	addSet(snap, "d", "Japan", serviceDN("tcs-gone"), "")
	addSet(snap, "e", "Japan", "", "")
	got := snap.Counts()
	want := Counts{Key(texas): 2, Key(japan): 1, Key(serviceDN("tcs-gone")): 1}
	if len(got) != len(want) {
		t.Fatalf("Counts = %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("Counts[%q] = %d, want %d", k, got[k], n)
		}
	}
	if n := NewSnapshot().Counts(); len(n) != 0 {
		t.Errorf("empty snapshot Counts = %v, want empty", n)
	}
}

func TestKeyFastPath(t *testing.T) {
	tests := []struct {
		name, in string
	}{
		{"canonical DN", "cn=tcs-texas-1,ou=services,dc=example,dc=org"},
		{"space inside a value", "cn=tcs texas 1,ou=services"},
		{"upper case", "CN=tcs-texas-1,ou=services"},
		{"space after a separator", "cn=a, ou=services"},
		{"space before a separator", "cn=a ,ou=services"},
		{"space around =", "cn = a"},
		{"leading space", " cn=a"},
		{"trailing space", "cn=a "},
		{"escaped comma", `cn=a\, b,ou=services`},
		{"lone space", " "},
		{"empty", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := key(tt.in), Key(tt.in); got != want {
				t.Errorf("key(%q) = %q, want Key = %q", tt.in, got, want)
			}
		})
	}
}

func FuzzKey(f *testing.F) {
	for _, seed := range []string{texas, "CN=A, OU=B", "cn=a ,ou=b", `cn=a\, b`, " x ", "a  b", "=+,", ""} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := key(s), Key(s); got != want {
			t.Fatalf("key(%q) = %q, want Key = %q", s, got, want)
		}
	})
}

func BenchmarkRank(b *testing.B) {
	snap := largeWorld(100, 10000)
	counts := snap.Counts()
	set := snap.Sets[Key("set-5")]
	for b.Loop() {
		RankWith(snap, counts, set)
	}
}
