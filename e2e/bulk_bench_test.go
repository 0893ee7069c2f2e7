package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"tcs/ldapdir"
	"tcs/smartset"
)

// batchRate measures WriteBatch on the test server: n claims of never-owned
// sets in transactions of size writes (one connection, pipelined). It
// returns claims per second.
func batchRate(tb testing.TB, s *swarm, n, size int) float64 {
	tb.Helper()
	prefix := fmt.Sprintf("rawtx%d", size)
	s.srv.Apply(setsLDIF(prefix, n, "Nowhere"))
	d, err := ldapdir.Open(ldapdir.Config{URL: s.srv.URL, BaseDN: s.srv.BaseDN, BindDN: s.srv.BindDN, BindPassword: s.srv.Password,
		BatchSize: size, Timeout: time.Minute, Transactions: ldapdir.TxnAuto})
	if err != nil {
		tb.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	d.Ping(ctx)
	ws := make([]ldapdir.Write, n)
	for i := range ws {
		ws[i] = ldapdir.Write{Set: smartset.Set{Name: fmt.Sprintf("%s-%06d", prefix, i)}, Kind: ldapdir.SetOwner, To: "cn=bench,ou=services,dc=example,dc=org"}
	}
	start := time.Now()
	res, stats := d.WriteBatch(ctx, ws, ldapdir.BatchHooks{})
	took := time.Since(start)
	for _, r := range res {
		if r.Err != nil {
			tb.Fatalf("batch baseline: %v", r.Err)
		}
	}
	if stats.Transactions == 0 {
		tb.Fatalf("batch baseline used no transactions: %+v", stats)
	}
	var del strings.Builder
	for i := range n {
		fmt.Fprintf(&del, "dn: cn=%s-%06d,ou=smartsets,dc=example,dc=org\nchangetype: delete\n\n", prefix, i)
	}
	s.srv.Apply(del.String())
	return float64(n) / took.Seconds()
}

// refreshProbe stands in for other agents during a takeover: n leases, each
// on a connection of its own as an agent's is, refreshed every interval;
// it records every refresh's latency with its start time.
type refreshProbe struct {
	mu      sync.Mutex
	samples []probeSample
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	leases  []*ldapdir.Lease
	dirs    []*ldapdir.Dir
}

type probeSample struct {
	at   time.Time
	took time.Duration
	err  error
}

func startRefreshProbe(tb testing.TB, s *swarm, n int, interval time.Duration) *refreshProbe {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &refreshProbe{cancel: cancel}
	for i := range n {
		d, err := ldapdir.Open(ldapdir.Config{URL: s.srv.URL, BaseDN: s.srv.BaseDN, BindDN: s.srv.BindDN, BindPassword: s.srv.Password})
		if err != nil {
			tb.Fatal(err)
		}
		l, err := d.Register(ctx, smartset.Service{Name: fmt.Sprintf("probe-%d", i), Location: "Nowhere"}, s.ttl)
		if err != nil {
			tb.Fatal(err)
		}
		p.dirs, p.leases = append(p.dirs, d), append(p.leases, l)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				start := time.Now()
				err := l.Refresh(ctx)
				if ctx.Err() != nil {
					return
				}
				p.mu.Lock()
				p.samples = append(p.samples, probeSample{at: start, took: time.Since(start), err: err})
				p.mu.Unlock()
			}
		}()
	}
	return p
}

// between returns the latencies of the refreshes started in [from, to],
// sorted, and how many failed.
func (p *refreshProbe) between(from, to time.Time) (lat []time.Duration, failed int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.samples {
		if s.at.Before(from) || s.at.After(to) {
			continue
		}
		if s.err != nil {
			failed++
		}
		lat = append(lat, s.took)
	}
	slices.Sort(lat)
	return lat, failed
}

func (p *refreshProbe) stop() {
	p.cancel()
	p.wg.Wait()
	for i, l := range p.leases {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		l.Close(ctx)
		cancel()
		p.dirs[i].Close()
	}
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted)-1) + 0.5)
	return sorted[min(i, len(sorted)-1)]
}

// slapdRSS returns the resident memory of the test server's slapd in KiB
// (0 when it cannot be found).
func slapdRSS(s *swarm) int64 {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range procs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		cmd := string(b)
		if strings.Contains(cmd, "slapd") && strings.Contains(cmd, s.srv.Dir+"/slapd.d") {
			var pid int
			fmt.Sscanf(filepath.Base(filepath.Dir(f)), "%d", &pid)
			return rssKiB(pid)
		}
	}
	return 0
}

// BenchmarkTxnMemory asks whether slapd 2.5.13 keeps memory per
// transaction (ITS#9892, fixed in 2.5.14): TCS_BENCH_TXNS one-modify
// transactions on one connection (four at once crashed slapd 2.5.13: README,
// Limitations) against a slapd of its own, last in `make bench`, so a slapd
// that dies under it costs only this row.
func BenchmarkTxnMemory(b *testing.B) {
	if b.N > 1 {
		b.Skip("runs once: use -benchtime 1x")
	}
	r := &report{}
	defer r.print(os.Stdout)
	s := newSwarm(b, 3*time.Second)
	n := envInt("TCS_BENCH_TXNS", 10000)
	m := txnMemory(b, s, n)
	what := fmt.Sprintf("slapd RSS over %d one-modify transactions: before / half / after", n)
	if m.err != nil {
		r.add(what, fmt.Sprintf("%.1f MiB before; slapd failed at transaction %d: %v (alive after: %v)",
			float64(m.before)/1024, m.done+1, m.err, slapdRSS(s) > 0), "no growth per transaction", "FAILED")
		return
	}
	r.add(what, fmt.Sprintf("%.1f / %.1f / %.1f MiB", float64(m.before)/1024, float64(m.half)/1024, float64(m.after)/1024),
		"no growth per transaction", verdict(m.after-m.half < 8*1024))
}

// txnStats is what txnMemory saw: slapd's RSS in KiB before, after half the
// transactions and after all, how many committed, and the first error.
type txnStats struct {
	before, half, after int64
	done                int
	err                 error
}

// txnMemory runs n one-modify transactions (the worst case for per-
// transaction overhead) on one connection and reports slapd's RSS before,
// after n/2 and after n (ITS#9892: transaction ops were not freed after the
// write before 2.5.14; Debian ships 2.5.13). It stops at the first failed
// transaction and reports it.
func txnMemory(tb testing.TB, s *swarm, n int) txnStats {
	tb.Helper()
	const pool = 50
	ctx := context.Background()
	st := txnStats{before: slapdRSS(s)}
	s.srv.Apply(setsLDIF("mem", pool, "Nowhere"))
	d, err := ldapdir.Open(ldapdir.Config{URL: s.srv.URL, BaseDN: s.srv.BaseDN, BindDN: s.srv.BindDN, BindPassword: s.srv.Password,
		BatchSize: 1, Transactions: ldapdir.TxnAuto})
	if err != nil {
		tb.Fatal(err)
	}
	defer d.Close()
	epochs := make([]int64, pool)
	for i := range n {
		k := i % pool
		res, _ := d.WriteBatch(ctx, []ldapdir.Write{{Set: smartset.Set{Name: fmt.Sprintf("mem-%06d", k), Epoch: epochs[k]},
			Kind: ldapdir.SetOwner, To: "cn=bench,ou=services,dc=example,dc=org"}}, ldapdir.BatchHooks{})
		if res[0].Err != nil {
			st.err = res[0].Err
			return st
		}
		epochs[k]++
		st.done++
		if st.done == n/2 {
			st.half = slapdRSS(s)
		}
	}
	st.after = slapdRSS(s)
	return st
}

// BenchmarkBatchSize measures what the batch size trades: the claim rate of
// a 10,000-set takeover in transactions of each size, against the latency
// of lease refreshes (three other "agents", every 50ms) that queue behind
// the commits. `make bench-batch` runs it; the README says which size was
// chosen from it and why. The sets are loaded once and claimed again at
// each size (epoch after epoch).
func BenchmarkBatchSize(b *testing.B) {
	if b.N > 1 {
		b.Skip("runs once: use -benchtime 1x")
	}
	r := &report{}
	defer r.print(os.Stdout)
	n := envInt("TCS_BENCH_SETS", 10000)
	s := newSwarm(b, 3*time.Second)
	rate1 := modifyRate(b, s, 2000, 1)
	r.add("baseline: raw slapd modify rate, 1 connection", fmt.Sprintf("%.0f/s", rate1), "", "")
	s.srv.Apply(setsLDIF("size", n, "Nowhere"))
	ctx := context.Background()
	epoch := int64(0)
	for _, size := range []int{100, 500, 2000, 10000} {
		d, err := ldapdir.Open(ldapdir.Config{URL: s.srv.URL, BaseDN: s.srv.BaseDN, BindDN: s.srv.BindDN, BindPassword: s.srv.Password,
			BatchSize: size, Timeout: time.Minute, Transactions: ldapdir.TxnAuto})
		if err != nil {
			b.Fatal(err)
		}
		ws := make([]ldapdir.Write, n)
		for i := range ws {
			ws[i] = ldapdir.Write{Set: smartset.Set{Name: fmt.Sprintf("size-%06d", i), Epoch: epoch}, Kind: ldapdir.SetOwner,
				To: fmt.Sprintf("cn=bench-%d,ou=services,dc=example,dc=org", size)}
		}
		p := startRefreshProbe(b, s, 3, 50*time.Millisecond)
		time.Sleep(300 * time.Millisecond)
		start := time.Now()
		res, stats := d.WriteBatch(ctx, ws, ldapdir.BatchHooks{})
		took := time.Since(start)
		lat, failed := p.between(start, start.Add(took))
		p.stop()
		d.Close()
		for _, x := range res {
			if x.Err != nil {
				b.Fatalf("batch %d: %v", size, x.Err)
			}
		}
		epoch++
		rate := float64(n) / took.Seconds()
		r.add(fmt.Sprintf("batch %d: %d claims in %d transactions", size, n, stats.Transactions), fmt.Sprintf("%v, %.0f/s (%.1f x raw)", took.Round(time.Millisecond), rate, rate/rate1), "", "")
		r.add(fmt.Sprintf("batch %d: lease refresh p50 / p99 / max (n=%d, failed %d)", size, len(lat), failed),
			fmt.Sprintf("%v / %v / %v", quantile(lat, 0.5).Round(time.Millisecond), quantile(lat, 0.99).Round(time.Millisecond), quantile(lat, 1).Round(time.Millisecond)),
			fmt.Sprintf("< TTL/3 = %v", s.ttl/3), verdict(quantile(lat, 0.99) < s.ttl/3))
	}
}
