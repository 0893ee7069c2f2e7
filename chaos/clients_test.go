package chaos

import (
	"context"
	"errors"
	"fmt"
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
				stale := rng.IntN(5) == 0 // a fifth of the reads accept a fenced agent's last table
				c.rec.read(readOnce(ctx, cl, id, set, port, f, stale))
				select {
				case <-ctx.Done():
				case <-time.After(time.Duration(10+rng.IntN(20)) * time.Millisecond):
				}
			}
			transport.CloseIdleConnections()
		}(i)
	}
}

// pick chooses a set and an agent port. Half of the reads go to an agent
// under a fault or healed in the last TTL + 10 s (a duplicate's port among
// them), most of those for a set that agent owned at the last sample: the
// reads that can catch a stale owner. The rest are uniform.
func (c *cluster) pick(rng *rand.Rand) (string, int) {
	c.mu.Lock()
	sets := make([]string, 0, len(c.allSets))
	for s := range c.allSets {
		sets = append(sets, s)
	}
	sort.Strings(sets)
	var ports, hotPorts []int
	var hotAgents []string
	for _, name := range c.order {
		a := c.agents[name]
		ports = append(ports, a.port)
		dupUp := a.dup != nil && a.dup.alive()
		if dupUp {
			ports = append(ports, a.dupPort)
		}
		if time.Since(a.hot) < c.ttl+10*time.Second || a.faulted > 0 {
			hotPorts = append(hotPorts, a.port)
			hotAgents = append(hotAgents, name)
			if dupUp {
				hotPorts = append(hotPorts, a.dupPort)
				hotAgents = append(hotAgents, name)
			}
		}
	}
	c.mu.Unlock()
	if len(hotPorts) == 0 || rng.IntN(2) == 0 {
		return sets[rng.IntN(len(sets))], ports[rng.IntN(len(ports))]
	}
	i := rng.IntN(len(hotPorts))
	if rng.IntN(10) < 7 {
		if owned := c.rec.ownedBy(hotAgents[i]); len(owned) > 0 {
			return owned[rng.IntN(len(owned))], hotPorts[i]
		}
	}
	return sets[rng.IntN(len(sets))], hotPorts[i]
}

// heat marks the agent a step targets as under a fault (on) or just healed.
func (c *cluster) heat(s Step, on bool) {
	a, ok := c.agents[s.Target]
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if on {
		a.faulted++
	} else {
		a.faulted--
	}
	a.hot = time.Now()
}

func readOnce(ctx context.Context, cl *http.Client, id int, set string, port int, follow, stale bool) Read {
	rd := Read{Client: id, Set: set, Asked: port, Port: port, Follow: follow, AllowStale: stale, Start: time.Now()}
	u := "http://127.0.0.1:" + strconv.Itoa(port) + "/v1/smartsets/" + url.PathEscape(set)
	if stale {
		u += "?stale=1"
	}
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

// sampler reads the whole directory (not through any agent's proxy; the
// provider, or a MirrorMode pair through its frontend) every period
// until ctx ends, recording owners, epochs, live leases and each set's
// placement state.
func (c *cluster) sampler(ctx context.Context, rec *recorder, period time.Duration, wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		d, err := ldapdir.Open(ldapdir.Config{URL: c.dirURL, BaseDN: c.srv.BaseDN, BindDN: c.srv.BindDN,
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

// ownedBy lists the sets the last good sample shows owned by agent name.
func (r *recorder) ownedBy(name string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	prefix := "cn=" + strings.ToLower(name) + ","
	for i := len(r.h.Samples) - 1; i >= 0; i-- {
		s := &r.h.Samples[i]
		if !s.OK {
			continue
		}
		var out []string
		for set, o := range s.Sets {
			if strings.HasPrefix(o.Owner, prefix) {
				out = append(out, set)
			}
		}
		sort.Strings(out)
		return out
	}
	return nil
}

// describeNonOptimal lists the sets the latest sample shows not optimal.
func (r *recorder) describeNonOptimal() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.h.Samples)
	if n == 0 || !r.h.Samples[n-1].OK {
		return "no directory sample"
	}
	s := &r.h.Samples[n-1]
	var parts []string
	for _, set := range nonOptimal(s) {
		o := s.Sets[set]
		parts = append(parts, fmt.Sprintf("%s %s owner=%q epoch=%d", set, o.State, o.Owner, o.Epoch))
	}
	return strings.Join(parts, "; ")
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
