package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tcs/internal/ldaptest"
	"tcs/internal/switchproxy"
	"tcs/ldapdir"
	"tcs/smartset"
)

// BenchmarkReplica measures the replicated directory (README "Replicated
// directory"): the provider's CPU and write latency with 100 watchers on it
// vs. the same watchers spread over two consumers (BenchmarkReplicaLag
// measures a consumer's lag). `make bench-replica` runs both once (and
// `make bench` with the others).
func BenchmarkReplica(b *testing.B) {
	if b.N > 1 {
		b.Skip("runs once: use -benchtime 1x")
	}
	r := &report{}
	defer r.print(os.Stdout)
	watchers := envInt("TCS_BENCH_WATCHERS", 100)
	writes := envInt("TCS_BENCH_REPLICA_WRITES", 2000)

	direct := watcherLoad(b, watchers, writes, 0)
	spread := watcherLoad(b, watchers, writes, 2)
	for _, m := range []struct {
		name string
		l    watchLoad
	}{{"on the provider", direct}, {"over 2 consumers", spread}} {
		r.add(fmt.Sprintf("%d watchers %s: provider CPU per 1,000 writes", watchers, m.name), fmt.Sprintf("%.2f s", m.l.cpuPer1000), "", "")
		r.add(fmt.Sprintf("%d watchers %s: write latency median / p99", watchers, m.name), fmt.Sprintf("%.2f / %.2f ms", m.l.p50, m.l.p99), "", "")
		r.add(fmt.Sprintf("%d watchers %s: last write seen by every watcher after", watchers, m.name), fmt.Sprintf("%.2f s", m.l.fanout), "", "")
	}
}

// BenchmarkReplicaLag measures a consumer's replication lag during a
// takeover of TCS_BENCH_SETS (10,000) sets on the provider.
func BenchmarkReplicaLag(b *testing.B) {
	if b.N > 1 {
		b.Skip("runs once: use -benchtime 1x")
	}
	r := &report{}
	defer r.print(os.Stdout)
	sets := envInt("TCS_BENCH_SETS", 10000)
	lag := takeoverLag(b, sets)
	r.add(fmt.Sprintf("consumer lag during a %d-set takeover (8 writers): median / max", sets), fmt.Sprintf("%.2f / %.2f s", lag.median, lag.max), "", "")
	r.add("... takeover on the provider / consumer caught up after its last write", fmt.Sprintf("%.1f s / %.2f s", lag.takeover, lag.after), "", "")
}

type watchLoad struct {
	cpuPer1000, p50, p99, fanout float64
}

// cpuSeconds is the user+system CPU time of process pid.
func cpuSeconds(tb testing.TB, pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// watcherLoad starts a provider (and consumers), attaches watchers (round
// robin over the consumers, or on the provider when there are none) that
// watch every set, then writes n claims one after the other on the
// provider and measures its CPU and each write's latency.
func watcherLoad(tb testing.TB, watchers, n, consumers int) watchLoad {
	tb.Helper()
	p := ldaptest.Start(tb)
	p.Apply(setsLDIF("w", n, "Texas"))
	targets := []*ldaptest.Server{p}
	if consumers > 0 {
		targets = nil
		for range consumers {
			targets = append(targets, ldaptest.StartConsumer(tb, p))
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var seen atomic.Int64 // claims seen, summed over watchers
	var synced sync.WaitGroup
	for i := range watchers {
		s := targets[i%len(targets)]
		d, err := ldapdir.Open(ldapdir.Config{URL: s.URL, BaseDN: s.BaseDN, BindDN: s.BindDN, BindPassword: s.Password})
		if err != nil {
			tb.Fatal(err)
		}
		defer d.Close()
		w := d.Watch(ctx, ldapdir.WatchSpec{Base: d.SetsDN(), Scope: ldapdir.ScopeOne, Filter: "(objectClass=smartSet)",
			Attrs: []string{"owner", "tcsEpoch", "geoLocation"}})
		defer w.Close()
		synced.Add(1)
		go func() {
			first := true
			for ev := range w.Events() {
				switch {
				case ev.Type == ldapdir.EventSynced && first:
					first = false
					synced.Done()
				case ev.Type == ldapdir.EventUpsert && !first && ev.Entry.Get("owner") != "":
					seen.Add(1)
				}
			}
		}()
	}
	synced.Wait()
	d, err := ldapdir.Open(ldapdir.Config{URL: p.URL, BaseDN: p.BaseDN, BindDN: p.BindDN, BindPassword: p.Password})
	if err != nil {
		tb.Fatal(err)
	}
	defer d.Close()
	if err := d.Ping(ctx); err != nil {
		tb.Fatal(err)
	}
	owner := d.ServiceDN("bench")
	cpu0 := cpuSeconds(tb, p.Pid())
	lat := make([]float64, 0, n)
	for i := range n {
		start := time.Now()
		if _, err := d.Claim(ctx, fmt.Sprintf("w-%06d", i), 0, owner); err != nil {
			tb.Fatal(err)
		}
		lat = append(lat, float64(time.Since(start).Microseconds())/1000)
	}
	end := time.Now()
	cpu := cpuSeconds(tb, p.Pid()) - cpu0
	want := int64(watchers * n)
	for seen.Load() < want && time.Since(end) < 5*time.Minute {
		time.Sleep(10 * time.Millisecond)
	}
	if got := seen.Load(); got < want {
		tb.Fatalf("watchers saw %d of %d changes", got, want)
	}
	fanout := time.Since(end).Seconds()
	slices.Sort(lat)
	return watchLoad{cpuPer1000: cpu * 1000 / float64(n), p50: lat[len(lat)/2], p99: lat[len(lat)*99/100], fanout: fanout}
}

type lagResult struct{ median, max, takeover, after float64 }

// takeoverLag claims n sets on a provider with 8 connections while sampling
// the provider's and a consumer's contextCSN every 20 ms; the lag of a
// sample is how long the consumer took to reach the provider's state of
// that moment.
func takeoverLag(tb testing.TB, n int) lagResult {
	tb.Helper()
	p := ldaptest.Start(tb)
	c := ldaptest.StartConsumer(tb, p)
	p.Apply(setsLDIF("t", n, "Texas"))
	c.WaitCaughtUp(p, 10*time.Minute)
	type sample struct {
		at     time.Time
		pc, cc string
	}
	var samples []sample
	stop := make(chan struct{})
	sampled := make(chan struct{})
	newest := func(s *ldaptest.Server) string {
		m, err := s.ContextCSN()
		if err != nil {
			return ""
		}
		out := ""
		for _, v := range m {
			out = max(out, v)
		}
		return out
	}
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			at := time.Now()
			samples = append(samples, sample{at, newest(p), newest(c)})
		}
	}()
	start := time.Now()
	var wg sync.WaitGroup
	ctx := context.Background()
	for w := range 8 {
		d, err := ldapdir.Open(ldapdir.Config{URL: p.URL, BaseDN: p.BaseDN, BindDN: p.BindDN, BindPassword: p.Password})
		if err != nil {
			tb.Fatal(err)
		}
		defer d.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				if _, err := d.Claim(ctx, fmt.Sprintf("t-%06d", i), 0, d.ServiceDN("bench")); err != nil {
					tb.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	done := time.Now()
	c.WaitCaughtUp(p, 5*time.Minute)
	after := time.Since(done).Seconds()
	close(stop)
	<-sampled
	var lags []float64
	for i, s := range samples {
		for _, later := range samples[i:] {
			if later.cc >= s.pc {
				lags = append(lags, later.at.Sub(s.at).Seconds())
				break
			}
		}
	}
	slices.Sort(lags)
	res := lagResult{takeover: done.Sub(start).Seconds(), after: after}
	if len(lags) > 0 {
		res.median, res.max = lags[len(lags)/2], lags[len(lags)-1]
	}
	return res
}

// BenchmarkReplicaFailover: directory failover in a MirrorMode pair behind
// a switched frontend (README "Replicated directory"). Three agents own
// TCS_BENCH_MIRROR_SETS (1000) sets through the frontend; the active
// provider is killed (-9), the standby activated (lease expiry on: a restart
// of it) and the frontend switched, as the documented procedure does. The
// time is from the kill to every set owned by a live agent at an epoch
// above every epoch of before the switch (the agents rewrite their sets at
// the epoch floor before they serve them again).
func BenchmarkReplicaFailover(b *testing.B) {
	if b.N > 1 {
		b.Skip("runs once: use -benchtime 1x")
	}
	r := &report{}
	defer r.print(os.Stdout)
	n := envInt("TCS_BENCH_MIRROR_SETS", 1000)
	const ttl = 3 * time.Second
	active, standby := ldaptest.StartMirror(b, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	sp, err := switchproxy.New(active.URL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sp.Close() })
	s := newSwarmOn(b, active, ttl)
	s.url = sp.URL()
	s.srv.Apply(setsLDIF("mirror", n, "Texas", "California", "Japan"))
	for _, a := range [][2]string{{"tcs-texas-1", "Texas"}, {"tcs-california-1", "California"}, {"tcs-japan-1", "Japan"}} {
		s.start(a[0], a[1])
	}
	s.eventually(5*time.Minute, "every set owned", noOrphans)
	standby.WaitCaughtUp(active, 2*time.Minute)
	var floor int64
	for _, st := range s.snapshot().Sets {
		floor = max(floor, st.Epoch)
	}

	killed := time.Now()
	active.Kill()
	standby.Activate(true)
	activated := time.Now()
	sp.Switch(standby.URL)
	d, err := ldapdir.Open(ldapdir.Config{URL: standby.URL, BaseDN: standby.BaseDN, BindDN: standby.BindDN, BindPassword: standby.Password, Timeout: 30 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	s.dir = d
	s.eventually(5*time.Minute, "every set owned again above the old epochs", func(snap *smartset.Snapshot) error {
		if err := noOrphans(snap); err != nil {
			return err
		}
		for _, st := range snap.Sets {
			if st.Epoch <= floor {
				return fmt.Errorf("%s still at epoch %d (before the switch: up to %d)", st.Name, st.Epoch, floor)
			}
		}
		return nil
	})
	took := time.Since(killed)
	r.add(fmt.Sprintf("MirrorMode: provider kill -9 -> every set owned and served again (3 agents, %d sets, TTL %v)", len(s.snapshot().Sets), ttl),
		took.Round(10*time.Millisecond).String(), "reported", "")
	r.add("  of which: standby activated (stop, dds on, start)", activated.Sub(killed).Round(10*time.Millisecond).String(), "", "")
}
