package chaos

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Defaults of TestChaos inside `make test`: a fixed seed, so the schedule is
// the same on every run (seed 297's minute holds every fault kind:
// TestDefaultScheduleCoversEveryKind); `make chaos` passes a fresh seed.
// TestChaosMirror's seed 197 gives a MirrorMode pair a minute with a
// provider kill during a replication cut (lost writes), a switch and every
// other kind but slow-directory (TestMirrorScheduleCoversTheSwitches).
const (
	defaultSeed     = 297
	mirrorSeed      = 197
	defaultDuration = 60 * time.Second
	leaseTTL        = 2 * time.Second
	readerClients   = 3
	samplePeriod    = 300 * time.Millisecond
)

// TestChaos is issue 10's run: real slapd, six agents through one
// faultproxy each, a seeded schedule of overlapping faults, recording
// clients, then the checker. CHAOS_SEED, CHAOS_DURATION (a Go duration) and
// CHAOS_TOPOLOGY (single, consumers, mirror: README "Replicated directory")
// change the run; a failing run keeps its directory (agent logs, configs,
// timeline, report, slapd's data) and says where.
func TestChaos(t *testing.T) {
	seed, dur := int64(defaultSeed), defaultDuration
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q: not an integer", s)
		}
		seed = v
	}
	if s := os.Getenv("CHAOS_DURATION"); s != "" {
		v, err := time.ParseDuration(s)
		if err != nil || v < 10*time.Second {
			t.Fatalf("CHAOS_DURATION=%q: want a Go duration of at least 10s (e.g. 60s, 10m)", s)
		}
		dur = v
	}
	topo := Single
	if s := os.Getenv("CHAOS_TOPOLOGY"); s != "" {
		if !slices.Contains(Topologies, s) {
			t.Fatalf("CHAOS_TOPOLOGY=%q: want one of %v", s, Topologies)
		}
		topo = s
	}
	runChaos(t, seed, dur, topo)
}

// TestChaosMirror is the minute of TestChaos on a MirrorMode pair behind a
// frontend (issue 11), seed 197: a provider kill during a replication cut
// and a switch among the single server's faults. It is not part of `make
// test` (README "Replicated directory", "Chaos": a provider that did not
// come back is still open, and it doubles the chaos package's time); set
// CHAOS_MIRROR_TEST=1 to run it with go test, or run the same with
// `make chaos CHAOS_TOPOLOGY=mirror CHAOS_SEED=197 CHAOS_DURATION=60s`.
func TestChaosMirror(t *testing.T) {
	if os.Getenv("CHAOS_MIRROR_TEST") == "" {
		t.Skip("set CHAOS_MIRROR_TEST=1 (or make chaos CHAOS_TOPOLOGY=mirror CHAOS_SEED=197 CHAOS_DURATION=60s)")
	}
	runChaos(t, mirrorSeed, defaultDuration, Mirror)
}

// runChaos is one chaos run of topology topo.
func runChaos(t *testing.T, seed int64, dur time.Duration, topo string) {
	fmt.Fprintf(os.Stderr, "chaos: seed %d, duration %v, topology %s (replay: make chaos CHAOS_SEED=%d CHAOS_DURATION=%v CHAOS_TOPOLOGY=%s)\n",
		seed, dur, topo, seed, dur, topo)
	t.Logf("chaos: seed %d, duration %v, topology %s", seed, dur, topo)

	dir, err := os.MkdirTemp("", "tcs-chaos-")
	if err != nil {
		t.Fatal(err)
	}
	timeline, err := os.Create(filepath.Join(dir, "timeline.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer timeline.Close()
	fmt.Fprintf(timeline, "seed %d, duration %v, topology %s\n", seed, dur, topo)
	rec := newRecorder(seed, dur, leaseTTL, topo, timeline, t.Logf)
	c := newCluster(t, dir, leaseTTL, rec, topo)
	for _, name := range c.order {
		c.start(c.agents[name], false)
	}
	c.settle(t, 90*time.Second)

	steps := Plan(seed, dur, topology(leaseTTL, topo))
	for _, s := range steps {
		fmt.Fprintf(timeline, "plan %s\n", s)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	start := time.Now()
	rec.begin(start)
	c.sampler(ctx, rec, samplePeriod, &bg)
	c.readers(ctx, readerClients, seed, &bg)
	var faults sync.WaitGroup
	for _, s := range steps {
		faults.Add(1)
		go func(s Step) {
			defer faults.Done()
			c.inject(start, s)
		}(s)
	}
	faults.Wait()
	healed := time.Now()
	rec.say("every fault healed; waiting for the swarm to settle (bound TTL+10s)")
	c.converge(healed, leaseTTL+12*time.Second)
	cancel()
	bg.Wait()

	h := rec.finish(time.Now())
	if h.Final, err = c.finalSets(); err != nil {
		t.Errorf("chaos: %v", err)
		h.Final = nil
	}
	if h.Commits, err = c.commits(); err != nil {
		t.Errorf("chaos: %v", err)
	}
	results := Check(h)
	var out bytes.Buffer
	Report(&out, h, results)
	os.WriteFile(filepath.Join(dir, "report.txt"), out.Bytes(), 0o600)
	fmt.Fprint(os.Stderr, out.String())
	violations := 0
	for _, r := range results {
		violations += len(r.Violations)
	}
	if violations > 0 || t.Failed() {
		t.Errorf("chaos: seed %d, topology %s: %d violations; kept the run in %s (timeline.log, report.txt, agent logs) and slapd's data in %s",
			seed, topo, violations, dir, c.dataDirs())
		t.Logf("agent log tails:\n%s", c.logTails(15))
		c.saveSlapdLogs()
		return
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
}

// settle waits until the directory shows every set placed optimally, before
// the schedule starts.
func (c *cluster) settle(t *testing.T, within time.Duration) {
	t.Helper()
	sctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	probe := newRecorder(0, 0, c.ttl, c.topology, os.Stderr, func(string, ...any) {})
	c.sampler(sctx, probe, samplePeriod, &wg)
	deadline := time.Now().Add(within)
	for {
		ok, bad := probe.allOptimal(time.Time{})
		if ok {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			wg.Wait()
			t.Fatalf("chaos: the swarm did not place every set optimally within %v before the run (%d not optimal: %s)\n%s",
				within, bad, probe.describeNonOptimal(), c.logTails(20))
		}
		time.Sleep(200 * time.Millisecond)
	}
	cancel()
	wg.Wait()
}

// converge waits until every set has been optimal for 3 s, or bound after
// healed.
func (c *cluster) converge(healed time.Time, bound time.Duration) {
	var goodSince time.Time
	for time.Since(healed) < bound {
		ok, _ := c.rec.allOptimal(healed)
		switch {
		case !ok:
			goodSince = time.Time{}
		case goodSince.IsZero():
			goodSince = time.Now()
		case time.Since(goodSince) > 3*time.Second:
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestDefaultScheduleCoversEveryKind(t *testing.T) {
	seen := map[Kind]int{}
	for _, s := range Plan(defaultSeed, defaultDuration, topology(leaseTTL, Single)) {
		seen[s.Kind]++
	}
	for _, k := range KindsOf(Single) {
		if seen[k] == 0 {
			t.Errorf("the default %v schedule (seed %d) has no %s", defaultDuration, defaultSeed, k)
		}
	}
}

func TestMirrorScheduleCoversTheSwitches(t *testing.T) {
	seen := map[Kind]int{}
	steps := Plan(mirrorSeed, defaultDuration, topology(leaseTTL, Mirror))
	lossy := false // a provider killed while its standby's replication is cut
	for _, s := range steps {
		seen[s.Kind]++
		for _, o := range steps {
			lossy = lossy || s.Kind == ProviderKill && o.Kind == ReplicationCut && o.At < s.At && o.At+o.For > s.At
		}
	}
	if !lossy {
		t.Errorf("seed %d: no provider kill during a replication cut", mirrorSeed)
	}
	for _, k := range KindsOf(Mirror) {
		if seen[k] == 0 && k != SlowDir {
			t.Errorf("the mirror %v schedule (seed %d) has no %s", defaultDuration, mirrorSeed, k)
		}
	}
	if seen[ProviderKill] == 0 || seen[Switch] == 0 {
		t.Errorf("seed %d: %d provider kills, %d switches", mirrorSeed, seen[ProviderKill], seen[Switch])
	}
}
