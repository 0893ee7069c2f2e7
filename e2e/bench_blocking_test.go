package e2e

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"tcs/internal/ldaptest"
)

// BenchmarkBlocking measures blocking reads (issue 12) on one agent:
// TCS_BENCH_WAITERS (10,000) clients wait on one set with ?index=; the
// table prints the agent's memory and goroutines per waiting client, the
// CPU it spends while they wait (no polling: about zero), and the delay
// from one change of the set's source to each answer. `make bench` runs it.
func BenchmarkBlocking(b *testing.B) {
	if b.N > 1 {
		b.Skip("runs once: use -benchtime 1x")
	}
	r := &report{}
	defer r.print(os.Stdout)
	n := envInt("TCS_BENCH_WAITERS", 10000)

	s := newSwarm(b, 10*time.Second, ldaptest.WithLDIF("testdata/ldif/example.ldif")) // a long lease: 10,000 connections load the machine
	tx := s.start("tcs-texas-1", "Texas")
	s.eventually(time.Minute, "Texas owns its sets", ownedBy("Texas", tx.name))
	u := tx.url() + "/v1/smartsets/texas-routers"
	var idx int64
	deadline := time.Now().Add(30 * time.Second)
	for idx == 0 && time.Now().Before(deadline) {
		if resp, _, err := tryGet(u); err == nil && resp.StatusCode == 200 {
			idx, _ = strconv.ParseInt(resp.Header.Get("TCS-Index"), 10, 64)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if idx == 0 {
		b.Fatal("no table")
	}
	time.Sleep(time.Second)
	pid := tx.cmd.Process.Pid
	rss0, gor0 := rssKiB(pid), goroutines(b, tx)

	tr := &http.Transport{MaxIdleConnsPerHost: n, DisableCompression: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Minute}
	answers := make(chan blockingAnswer, n)
	wait := fmt.Sprintf("%s?index=%d&wait=5m", u, idx)
	var sent sync.WaitGroup
	var mu sync.Mutex
	var retried int
	var changedAt time.Time // set when the change is made
	start := time.Now()
	for i := range n {
		sent.Add(1)
		go func() {
			sent.Done()
			for {
				a := blockingGet(hc, wait)
				mu.Lock()
				before := changedAt.IsZero()
				if a.err != nil && before {
					retried++ // a connection the loaded listener dropped: connect again
					mu.Unlock()
					time.Sleep(100 * time.Millisecond)
					continue
				}
				mu.Unlock()
				answers <- a
				return
			}
		}()
		if i%200 == 199 {
			time.Sleep(100 * time.Millisecond) // about 2,000 connections a second
		}
	}
	sent.Wait()
	// Every request is waiting once the agent holds n more goroutines (one per connection).
	var gor1 int
	for time.Since(start) < 2*time.Minute {
		if gor1 = goroutines(b, tx); gor1-gor0 >= n || len(answers) > 0 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(answers) > 0 {
		a := <-answers
		b.Fatalf("answered before any change: %+v (%v)", a, a.err)
	}
	settled, cpuSettled := time.Now(), cpuTicks(pid)
	time.Sleep(5 * time.Second) // while they wait: CPU and memory
	rss1, cpu1 := rssKiB(pid), cpuTicks(pid)
	idleCPU := float64(cpu1-cpuSettled) / 100 / time.Since(settled).Seconds() // ticks are 1/100 s

	mu.Lock()
	changedAt = time.Now()
	mu.Unlock()
	s.srv.Apply("dn: cn=tx-rtr-01,cn=Texas,ou=locations,dc=example,dc=org\nchangetype: modify\nreplace: description\ndescription: benchmark change\n")
	changed := time.Now()
	delays := make([]time.Duration, 0, n)
	for range n {
		select {
		case a := <-answers:
			if a.err != nil || a.code != 200 || a.index <= idx {
				b.Fatalf("answer %+v", a)
			}
			delays = append(delays, a.at.Sub(changed))
		case <-time.After(2 * time.Minute):
			b.Fatalf("%d of %d answered", len(delays), n)
		}
	}
	slices.Sort(delays)
	pct := func(p float64) time.Duration {
		return delays[min(len(delays)-1, int(p*float64(len(delays))))].Round(time.Millisecond)
	}

	r.add("blocking reads: clients waiting on one set of one agent", fmt.Sprintf("%d (%d connections re-made while connecting)", n, retried), "10,000", "")
	r.add("agent memory (RSS) per waiting client", fmt.Sprintf("%.1f KiB (%d → %d KiB)", float64(rss1-rss0)/float64(n), rss0, rss1), "reported", "")
	r.add("agent goroutines per waiting client", fmt.Sprintf("%.2f (%d → %d)", float64(gor1-gor0)/float64(n), gor0, gor1), "2 (net/http's: the connection's and its background read)", verdict(gor1-gor0 <= 2*n+50))
	r.add("agent CPU while they wait (no polling)", fmt.Sprintf("%.1f%% of a core over %v", 100*idleCPU, time.Since(settled).Round(time.Second)), "≈ 0", verdict(idleCPU < 0.05))
	r.add("change → answer, p50 / p99 / last", fmt.Sprintf("%v / %v / %v", pct(0.5), pct(0.99), delays[len(delays)-1].Round(time.Millisecond)), "reported (≤ 1 s for 1,000)", "")
}

// goroutines reads go_goroutines from the agent's /metrics.
func goroutines(tb testing.TB, a *agentProc) int {
	tb.Helper()
	_, body, err := tryGet(a.url() + "/metrics")
	if err != nil {
		tb.Fatalf("metrics: %v", err)
	}
	for _, l := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(l, "go_goroutines "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	tb.Fatal("no go_goroutines in /metrics")
	return 0
}

// cpuTicks is the user+system CPU time of process pid, in clock ticks.
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return ut + st
}
