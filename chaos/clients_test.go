package chaos

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"tcs/ldapdir"
	"tcs/smartset"
)

var netDialer = net.Dialer{Timeout: 2 * time.Second}

// readers runs n clients until ctx ends; each reads a random set through a
// random agent (a duplicate's port too while it runs), half of the time
// following redirects, and records every answer.
func (c *cluster) readers(ctx context.Context, n int, seed int64, wg *sync.WaitGroup) {
	transport := &http.Transport{DialContext: netDialer.DialContext, MaxIdleConnsPerHost: 4, ResponseHeaderTimeout: 3 * time.Second}
	direct := &http.Client{Transport: transport, Timeout: 3 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	follow := &http.Client{Transport: transport, Timeout: 3 * time.Second}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(id int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(seed), uint64(id)+1))
			for ctx.Err() == nil {
				set, port := c.pick(rng)
				f := rng.IntN(2) == 0
				cl := direct
				if f {
					cl = follow
				}
				c.rec.read(readOnce(ctx, cl, id, set, port, f))
				select {
				case <-ctx.Done():
				case <-time.After(time.Duration(10+rng.IntN(20)) * time.Millisecond):
				}
			}
			transport.CloseIdleConnections()
		}(i)
	}
}

// pick chooses a set (any that ever existed) and an agent port.
func (c *cluster) pick(rng *rand.Rand) (string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sets := make([]string, 0, len(c.allSets))
	for s := range c.allSets {
		sets = append(sets, s)
	}
	sort.Strings(sets)
	ports := []int{}
	for _, name := range c.order {
		a := c.agents[name]
		ports = append(ports, a.port)
		if a.dup != nil && a.dup.alive() {
			ports = append(ports, a.dupPort)
		}
	}
	return sets[rng.IntN(len(sets))], ports[rng.IntN(len(ports))]
}

func readOnce(ctx context.Context, cl *http.Client, id int, set string, port int, follow bool) Read {
	rd := Read{Client: id, Set: set, Asked: port, Port: port, Follow: follow, Start: time.Now()}
	u := "http://127.0.0.1:" + strconv.Itoa(port) + "/v1/smartsets/" + url.PathEscape(set)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := cl.Do(req)
	if err != nil {
		rd.End = time.Now()
		rd.Err = shortErr(err)
		return rd
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	rd.End = time.Now()
	rd.Status = resp.StatusCode
	if p, err := strconv.Atoi(resp.Request.URL.Port()); err == nil {
		rd.Port = p
	}
	rd.Epoch, _ = strconv.ParseInt(resp.Header.Get("Tcs-Epoch"), 10, 64)
	rd.Stale = strings.EqualFold(resp.Header.Get("Tcs-Stale"), "true")
	rd.Fenced = strings.EqualFold(resp.Header.Get("Tcs-Fenced"), "true")
	return rd
}

func shortErr(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case strings.Contains(err.Error(), "connection refused"):
		return "connection refused"
	case strings.Contains(err.Error(), "connection reset"):
		return "connection reset"
	}
	return err.Error()
}

// sampler reads the whole directory (not through any proxy) every period
// until ctx ends, recording owners, epochs, live leases and each set's
// placement state.
func (c *cluster) sampler(ctx context.Context, rec *recorder, period time.Duration, wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		d, err := ldapdir.Open(ldapdir.Config{URL: c.srv.URL, BaseDN: c.srv.BaseDN, BindDN: c.srv.BindDN,
			BindPassword: c.srv.Password, Timeout: 3 * time.Second})
		if err != nil {
			rec.note("sampler: " + err.Error())
			return
		}
		defer d.Close()
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			rec.sample(sampleOnce(ctx, d))
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

func sampleOnce(ctx context.Context, d *ldapdir.Dir) Sample {
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	snap, err := d.Snapshot(sctx)
	s := Sample{At: time.Now()}
	if err != nil || snap == nil {
		return s
	}
	s.OK = true
	s.Live = map[string]bool{}
	for _, svc := range snap.Services {
		s.Live[normDN(svc.DN)] = true
	}
	counts := snap.Counts()
	s.Sets = make(map[string]Owning, len(snap.Sets))
	for _, st := range snap.Sets {
		s.Sets[st.Name] = Owning{Owner: normDN(st.Owner), Epoch: st.Epoch, Location: st.Location,
			State: smartset.State(snap, counts, st)}
	}
	return s
}

// allOptimal reports whether the latest sample shows every set optimal.
func (r *recorder) allOptimal(since time.Time) (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.h.Samples)
	if n == 0 {
		return false, -1
	}
	s := &r.h.Samples[n-1]
	if !s.OK || s.At.Before(since) {
		return false, -1
	}
	bad := len(nonOptimal(s))
	return bad == 0, bad
}
