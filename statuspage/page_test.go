package statuspage

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"tcs/internal/ldaptest"
	"tcs/ldapdir"
	"tcs/smartset"
)

// swarmFixture is the patent's example in a real slapd with three live
// agents and sets in every state:
//
//	japan-*               owned by tcs-japan-1            optimal
//	texas-routers         owned by tcs-texas-1            optimal
//	texas-linux-servers   owned by tcs-japan-1            non-optimal (Texas is live)
//	texas-unix-servers    owned by tcs-japan-1, asked for
//	                      by tcs-texas-1                  pending-handoff
//	california-*          no owner                        orphaned
//	atlantis-gold         no owner, no location entry     orphaned
//
// tcs-mars-1 lives in a location with no entry either.
type swarmFixture struct {
	srv    *ldaptest.Server
	dir    *ldapdir.Dir
	leases map[string]*ldapdir.Lease
}

func newFixture(t testing.TB) *swarmFixture {
	t.Helper()
	srv := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	d, err := ldapdir.Open(ldapdir.Config{URL: srv.URL, BaseDN: srv.BaseDN, BindDN: srv.BindDN, BindPassword: srv.Password,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leases := map[string]*ldapdir.Lease{}
	for _, svc := range []smartset.Service{
		{Name: "tcs-japan-1", Location: "Japan", Endpoint: "http://127.0.0.1:18081"},
		{Name: "tcs-texas-1", Location: "Texas", Endpoint: "http://127.0.0.1:18082"},
		{Name: "tcs-mars-1", Location: "Mars", Endpoint: "http://127.0.0.1:18089"},
	} {
		l, err := d.Register(ctx, svc, 10*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		leases[svc.Name] = l
	}
	jp, tx := d.ServiceDN("tcs-japan-1"), d.ServiceDN("tcs-texas-1")
	for name, owner := range map[string]string{
		"japan-routers": jp, "japan-aix-servers": jp, "japan-all-systems": jp,
		"texas-routers": tx, "texas-linux-servers": jp, "texas-unix-servers": jp,
	} {
		if _, err := d.Claim(ctx, name, 0, owner); err != nil {
			t.Fatalf("claim %s: %v", name, err)
		}
	}
	if err := d.RequestRelease(ctx, "texas-unix-servers", 1, tx); err != nil {
		t.Fatal(err)
	}
	srv.Apply("dn: cn=atlantis-gold,ou=smartsets,dc=example,dc=org\nobjectClass: smartSet\ncn: atlantis-gold\ngeoLocation: Atlantis\n")
	return &swarmFixture{srv: srv, dir: d, leases: leases}
}

// newPage serves a page for agent tcs-japan-1 over f's directory. The
// server's read and write timeouts are short so a stream must outlive them.
func (f *swarmFixture) newPage(t *testing.T) (*Page, *httptest.Server) {
	t.Helper()
	p := New(Options{Agent: "tcs-japan-1", Directory: f.dir})
	hs := httptest.NewUnstartedServer(p)
	hs.Config.ReadTimeout = 300 * time.Millisecond
	hs.Config.WriteTimeout = 300 * time.Millisecond
	hs.Start()
	t.Cleanup(func() {
		p.Close() // ends the streams, or hs.Close would wait for them
		hs.Close()
	})
	return p, hs
}

// setsOf maps set name to its view, and checks every set is in the card of
// its location.
func setsOf(t *testing.T, st state) map[string]setView {
	t.Helper()
	out := map[string]setView{}
	for _, l := range st.Locations {
		for _, s := range l.Sets {
			if !l.Unlisted && !strings.EqualFold(s.Location, l.Name) {
				t.Errorf("set %s (location %s) in the card of %s", s.Name, s.Location, l.Name)
			}
			out[s.Name] = s
		}
	}
	return out
}

func checkExampleState(t *testing.T, st state) {
	t.Helper()
	if st.Agent != "tcs-japan-1" || !st.Connected || time.Since(st.Generated) > time.Minute {
		t.Errorf("agent %q connected %v generated %v", st.Agent, st.Connected, st.Generated)
	}
	var names []string
	for _, l := range st.Locations {
		names = append(names, fmt.Sprintf("%s|%s|%v", l.Name, l.Coordinates, l.Unlisted))
	}
	want := []string{"California|38.5816,-121.4944|false", "Japan|35.6762,139.6503|false", "Texas|30.2672,-97.7431|false", "||true"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("locations %v, want %v", names, want)
	}
	if len(st.Locations) == 4 {
		jp, un := st.Locations[1], st.Locations[3]
		if len(jp.Agents) != 1 || jp.Agents[0] != (agentView{Name: "tcs-japan-1", Endpoint: "http://127.0.0.1:18081", Location: "Japan", Owned: 5}) {
			t.Errorf("Japan's agents: %+v", jp.Agents)
		}
		if len(un.Agents) != 1 || un.Agents[0].Name != "tcs-mars-1" || len(un.Sets) != 1 || un.Sets[0].Name != "atlantis-gold" {
			t.Errorf("the unlisted group: %+v", un)
		}
	}
	sets := setsOf(t, st)
	for _, tc := range []setView{
		{Name: "japan-routers", Location: "Japan", Owner: "tcs-japan-1", OwnerLocation: "Japan", Epoch: 1, State: smartset.StateOptimal},
		{Name: "japan-aix-servers", Location: "Japan", Owner: "tcs-japan-1", OwnerLocation: "Japan", Epoch: 1, State: smartset.StateOptimal},
		{Name: "japan-all-systems", Location: "Japan", Owner: "tcs-japan-1", OwnerLocation: "Japan", Epoch: 1, State: smartset.StateOptimal},
		{Name: "texas-routers", Location: "Texas", Owner: "tcs-texas-1", OwnerLocation: "Texas", Epoch: 1, State: smartset.StateOptimal},
		{Name: "texas-linux-servers", Location: "Texas", Owner: "tcs-japan-1", OwnerLocation: "Japan", Epoch: 1, State: smartset.StateNonOptimal},
		{Name: "texas-unix-servers", Location: "Texas", Owner: "tcs-japan-1", OwnerLocation: "Japan", Epoch: 1, State: smartset.StatePending, ReleaseRequest: "tcs-texas-1"},
		{Name: "california-routers", Location: "California", State: smartset.StateOrphaned},
		{Name: "california-linux-servers", Location: "California", State: smartset.StateOrphaned},
		{Name: "california-windows-servers", Location: "California", State: smartset.StateOrphaned},
		{Name: "atlantis-gold", Location: "Atlantis", State: smartset.StateOrphaned},
	} {
		if got := sets[tc.Name]; got != tc {
			t.Errorf("set %s:\n got %+v\nwant %+v", tc.Name, got, tc)
		}
	}
	if len(sets) != 10 {
		t.Errorf("%d sets, want 10", len(sets))
	}
	if want := (summary{Sets: 10, Agents: 3, Optimal: 4, NonOptimal: 1, Pending: 1, Orphaned: 4}); st.Summary != want {
		t.Errorf("summary %+v, want %+v", st.Summary, want)
	}
}

func getState(t *testing.T, url string) state {
	t.Helper()
	resp, err := http.Get(url + "/ui/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json; charset=utf-8" {
		t.Fatalf("GET /ui/state: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var st state
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("GET /ui/state: %v\n%s", err, body)
	}
	return st
}

// GET /ui/state reads the example's locations, agents, sets and states
// from the directory, without starting a watch.
func TestStateOfTheExample(t *testing.T) {
	f := newFixture(t)
	p, hs := f.newPage(t)
	checkExampleState(t, getState(t, hs.URL))
	if p.watching() {
		t.Error("GET /ui/state started a watch; only /ui/events viewers should")
	}
}

// sseEvent is one Server-Sent Event, or a comment (name "comment").
type sseEvent struct{ name, data string }

// stream opens /ui/events and returns its events as they arrive; cancel
// disconnects. The channel is closed when the stream ends.
func stream(t *testing.T, url string) (<-chan sseEvent, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/ui/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("GET /ui/events: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	out := make(chan sseEvent, 64)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" {
					out <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
				out <- sseEvent{name: "comment", data: strings.TrimSpace(line[1:])}
			case strings.HasPrefix(line, "event: "):
				ev.name = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				ev.data += line[len("data: "):]
			}
		}
	}()
	t.Cleanup(cancel)
	return out, cancel
}

// nextState waits for the next "state" event; heartbeats counts the
// comments seen on the way.
func nextState(t *testing.T, events <-chan sseEvent, within time.Duration, heartbeats *int) state {
	t.Helper()
	timeout := time.After(within)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("the stream ended")
			}
			if ev.name == "comment" {
				if heartbeats != nil && ev.data == "heartbeat" {
					*heartbeats++
				}
				continue
			}
			if ev.name != "state" {
				t.Fatalf("unexpected event %q", ev.name)
			}
			var st state
			if err := json.Unmarshal([]byte(ev.data), &st); err != nil {
				t.Fatalf("state event: %v\n%s", err, ev.data)
			}
			return st
		case <-timeout:
			t.Fatalf("no state event within %v", within)
		}
	}
}

// nextDelta waits for the "delta" event that follows prev and returns prev
// with the delta applied, as the page's script applies it.
func nextDelta(t *testing.T, events <-chan sseEvent, within time.Duration, prev state) (state, delta) {
	t.Helper()
	timeout := time.After(within)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("the stream ended")
			}
			if ev.name == "comment" {
				continue
			}
			if ev.name != "delta" {
				t.Fatalf("event %q, want a delta after state %d", ev.name, prev.Seq)
			}
			var d delta
			if err := json.Unmarshal([]byte(ev.data), &d); err != nil {
				t.Fatalf("delta event: %v\n%s", err, ev.data)
			}
			if d.Seq != prev.Seq+1 {
				t.Fatalf("delta %d after state %d", d.Seq, prev.Seq)
			}
			return applyDelta(prev, d), d
		case <-timeout:
			t.Fatalf("no delta event within %v", within)
		}
	}
}

func applyDelta(prev state, d delta) state {
	sets := setsByName(prev)
	for _, s := range d.Upserts {
		sets[s.Name] = s
	}
	for _, n := range d.Removed {
		delete(sets, n)
	}
	st := state{Seq: d.Seq, Agent: d.Agent, Generated: d.Generated, Connected: d.Connected, Summary: d.Summary}
	idx, unlisted := map[string]int{}, -1
	for i, l := range d.Locations {
		st.Locations = append(st.Locations, locationView{Name: l.Name, Coordinates: l.Coordinates, Unlisted: l.Unlisted,
			Agents: l.Agents, Counts: l.Counts, Sets: []setView{}})
		if l.Unlisted {
			unlisted = i
		} else {
			idx[strings.ToLower(l.Name)] = i
		}
	}
	names := slices.Sorted(maps.Keys(sets))
	for _, n := range names {
		i, ok := idx[strings.ToLower(sets[n].Location)]
		if !ok || sets[n].Location == "" {
			i = unlisted
		}
		st.Locations[i].Sets = append(st.Locations[i].Sets, sets[n])
	}
	return st
}

// /ui/events sends the state at once, keeps the stream open past the
// server's read and write timeouts with heartbeats, and sends a new state
// soon after a directory change.
func TestEventsFollowTheDirectory(t *testing.T) {
	f := newFixture(t)
	p, hs := f.newPage(t)
	p.heartbeat = 100 * time.Millisecond
	events, _ := stream(t, hs.URL)
	start := time.Now()
	first := nextState(t, events, 5*time.Second, nil)
	checkExampleState(t, first)
	t.Logf("first state %v after connecting", time.Since(start).Round(time.Millisecond))

	// Outlive the server's 300 ms timeouts; the heartbeats keep coming.
	// Lease refreshes reach the watch as changes of the service entries
	// but change nothing on the page: no new state.
	beats := 0
	deadline := time.Now().Add(time.Second)
	go func() {
		for range 3 {
			f.leases["tcs-mars-1"].Refresh(context.Background())
			time.Sleep(100 * time.Millisecond)
		}
	}()
	for time.Now().Before(deadline) {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("the stream ended within a second (cut by the server's timeouts?)")
			}
			if ev.name == "comment" && ev.data == "heartbeat" {
				beats++
			} else if ev.name == "state" || ev.name == "delta" {
				t.Errorf("a %s event without a change: %s", ev.name, ev.data)
			}
		case <-time.After(50 * time.Millisecond):
		}
	}
	if beats < 5 {
		t.Errorf("%d heartbeats in a second at a 100 ms interval", beats)
	}

	// Texas takes the orphan california-routers: Texas is the nearest live
	// agent, so the set becomes optimal.
	changed := time.Now()
	f.srv.Apply("dn: cn=california-routers,ou=smartsets,dc=example,dc=org\nchangetype: modify\n" +
		"replace: owner\nowner: cn=tcs-texas-1,ou=services,dc=example,dc=org\n-\nreplace: tcsEpoch\ntcsEpoch: 1\n")
	st, d := nextDelta(t, events, 5*time.Second, first)
	t.Logf("new state %v after the change", time.Since(changed).Round(time.Millisecond))
	// Only what changed travels, and it adds up to the whole state.
	if len(d.Upserts) != 1 || d.Upserts[0].Name != "california-routers" || len(d.Removed) != 0 {
		t.Errorf("the delta of one claim: %d upserts %+v, %d removed", len(d.Upserts), d.Upserts, len(d.Removed))
	}
	if whole := getState(t, hs.URL); !reflect.DeepEqual(whole, st) {
		t.Errorf("the first state plus the delta:\n%+v\nthe whole state:\n%+v", st, whole)
	}
	got := setsOf(t, st)["california-routers"]
	if got.Owner != "tcs-texas-1" || got.OwnerLocation != "Texas" || got.Epoch != 1 || got.State != smartset.StateOptimal {
		t.Errorf("california-routers after the change: %+v", got)
	}
	if st.Summary.Orphaned != 3 || st.Summary.Optimal != 5 {
		t.Errorf("summary after the change: %+v", st.Summary)
	}
	// With a watch running, /ui/state answers from it.
	if s2 := getState(t, hs.URL); setsOf(t, s2)["california-routers"].Owner != "tcs-texas-1" || !s2.Generated.Equal(st.Generated) {
		t.Errorf("/ui/state while watching: generated %v, the stream's %v", s2.Generated, st.Generated)
	}

	// A service dies: its sets turn orphaned.
	f.srv.Apply("dn: cn=tcs-texas-1,ou=services,dc=example,dc=org\nchangetype: delete\n")
	st, _ = nextDelta(t, events, 5*time.Second, st)
	if got := setsOf(t, st)["texas-routers"]; got.State != smartset.StateOrphaned || got.Owner != "tcs-texas-1" || got.OwnerLocation != "" {
		t.Errorf("texas-routers after its owner's entry went: %+v", got)
	}
	if st.Summary.Agents != 2 {
		t.Errorf("summary after a delete: %+v", st.Summary)
	}
}

// The watch runs only while someone looks: it starts with the first
// stream, survives a viewer coming back within the linger, and stops after
// the last one has gone for the linger.
func TestWatchStopsAfterLastViewer(t *testing.T) {
	f := newFixture(t)
	p, hs := f.newPage(t)
	p.linger = 300 * time.Millisecond
	if p.watching() {
		t.Fatal("a watch before any viewer")
	}
	events, leave := stream(t, hs.URL)
	nextState(t, events, 5*time.Second, nil)
	p.mu.Lock()
	first := p.feed
	p.mu.Unlock()
	if first == nil {
		t.Fatal("no watch with a viewer")
	}

	// Two viewers; one leaves, then the other, then one comes back at once:
	// the same watch all along, and the newcomer's state comes from it.
	events2, leave2 := stream(t, hs.URL)
	nextState(t, events2, 5*time.Second, nil)
	leave()
	leave2()
	time.Sleep(50 * time.Millisecond)
	events3, leave3 := stream(t, hs.URL)
	start := time.Now()
	nextState(t, events3, 5*time.Second, nil)
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("a returning viewer waited %v for the state", d)
	}
	p.mu.Lock()
	same := p.feed == first
	p.mu.Unlock()
	if !same {
		t.Error("the watch was restarted for a viewer who came back within the linger")
	}

	leave3()
	waitStopped(t, p, 250*time.Millisecond, "the last viewer left")
	// Without a viewer, /ui/state reads the directory once and starts nothing.
	checkExampleState(t, getState(t, hs.URL))
	if p.watching() {
		t.Error("GET /ui/state started a watch")
	}
}

// A browser's navigation to the page starts the watch before the page's
// stream arrives, and the stream then gets its state from that watch; a
// fetch of "/" that is not a navigation (a health check) starts nothing,
// and a navigation that no stream follows stops the watch after
// primeLinger.
func TestNavigationStartsTheWatch(t *testing.T) {
	f := newFixture(t)
	p, hs := f.newPage(t)
	p.primeLinger = 300 * time.Millisecond
	get := func(navigate bool) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, hs.URL+"/", nil)
		if navigate {
			req.Header.Set("Sec-Fetch-Mode", "navigate")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /: %s", resp.Status)
		}
	}
	get(false)
	if p.watching() {
		t.Fatal("a GET / that is not a navigation started the watch")
	}

	get(true)
	p.mu.Lock()
	primed := p.feed
	p.mu.Unlock()
	if primed == nil {
		t.Fatal("a navigation did not start the watch")
	}
	events, leave := stream(t, hs.URL)
	checkExampleState(t, nextState(t, events, 5*time.Second, nil))
	time.Sleep(2 * p.primeLinger)
	p.mu.Lock()
	same := p.feed == primed
	p.mu.Unlock()
	if !same {
		t.Error("the stream that followed the navigation did not keep its watch")
	}
	p.mu.Lock()
	p.linger = 100 * time.Millisecond // read when the stream leaves
	p.mu.Unlock()
	leave()

	// Gone after the stream's linger; then a navigation alone.
	for deadline := time.Now().Add(5 * time.Second); p.watching(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the watch still runs 5 s after the viewer left")
		}
	}
	get(true)
	waitStopped(t, p, 250*time.Millisecond, "a navigation that no stream followed")
}

// waitStopped waits for the page's watch to stop, which must take at
// least min (its linger) from now and at most 5 s, and leave no goroutine.
func waitStopped(t *testing.T, p *Page, min time.Duration, after string) {
	t.Helper()
	start := time.Now()
	for p.watching() {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("the watch still runs 5 s after %s", after)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d := time.Since(start); d < min {
		t.Errorf("the watch stopped %v after %s, before its linger", d, after)
	}
	if n := watchGoroutines(); n != 0 {
		t.Errorf("%d watch goroutines left after the watch stopped", n)
	}
}

// watchGoroutines counts goroutines of the page's feed and its watch.
func watchGoroutines() int {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "statuspage.(*Page).run(") || strings.Contains(g, "ldapdir.(*Watch).run(") {
			n++
		}
	}
	return n
}

// Close ends every stream and stops the watch; it is idempotent, and a
// closed page opens no stream.
func TestCloseEndsStreams(t *testing.T) {
	f := newFixture(t)
	p, hs := f.newPage(t)
	events, _ := stream(t, hs.URL)
	nextState(t, events, 5*time.Second, nil)

	done := make(chan struct{})
	go func() { p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	p.Close()
	timeout := time.After(5 * time.Second)
	for ended := false; !ended; {
		select {
		case _, ok := <-events:
			ended = !ok
		case <-timeout:
			t.Fatal("the stream did not end on Close")
		}
	}
	if p.watching() || watchGoroutines() != 0 {
		t.Errorf("after Close: watching %v, %d watch goroutines", p.watching(), watchGoroutines())
	}
	resp, err := http.Get(hs.URL + "/ui/events")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("GET /ui/events after Close: %d, want 503", resp.StatusCode)
	}
}

// A graceful shutdown of the HTTP server ends the streams, so it does not
// wait for its timeout.
func TestShutdownEndsStreams(t *testing.T) {
	f := newFixture(t)
	_, hs := f.newPage(t)
	events, _ := stream(t, hs.URL)
	nextState(t, events, 5*time.Second, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := hs.Config.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with a stream open: %v after %v", err, time.Since(start))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Shutdown took %v with a stream open", d)
	}
}

// The page and its assets, with their content types and caching; unknown
// paths under /ui/ are 404; only GET and HEAD.
func TestAssets(t *testing.T) {
	p := New(Options{Agent: `tcs-<b>"x"`}) // no directory: the state is 503
	defer p.Close()
	hs := httptest.NewServer(p)
	defer hs.Close()
	for _, tc := range []struct {
		method, path string
		code         int
		ctype        string
		body         string // a substring of the body
	}{
		{"GET", "/", 200, "text/html; charset=utf-8", `<strong id="agent">tcs-&lt;b&gt;&#34;x&#34;</strong>`},
		{"GET", "/ui/app.js", 200, "text/javascript; charset=utf-8", "new EventSource('ui/events')"},
		{"GET", "/ui/style.css", 200, "text/css; charset=utf-8", ".state-orphaned"},
		{"HEAD", "/ui/style.css", 200, "text/css; charset=utf-8", ""},
		{"GET", "/ui/", 404, "application/json; charset=utf-8", `"error":"no such resource: /ui/"`},
		{"GET", "/ui/nope.js", 404, "application/json; charset=utf-8", "no such resource"},
		{"GET", "/ui/app.js/x", 404, "application/json; charset=utf-8", "no such resource"},
		{"GET", "/ui/state", 503, "application/json; charset=utf-8", "no directory"},
		{"POST", "/", 405, "application/json; charset=utf-8", "use GET or HEAD"},
	} {
		req, _ := http.NewRequest(tc.method, hs.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || resp.Header.Get("Content-Type") != tc.ctype || !strings.Contains(string(body), tc.body) {
			t.Errorf("%s %s: %d %q, want %d %q with %q:\n%.300s", tc.method, tc.path, resp.StatusCode,
				resp.Header.Get("Content-Type"), tc.code, tc.ctype, tc.body, body)
		}
		if tc.code == 200 {
			if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
				t.Errorf("%s: Cache-Control %q, want no-cache", tc.path, cc)
			}
			// Unchanged: revalidation is a 304.
			req, _ := http.NewRequest("GET", hs.URL+tc.path, nil)
			req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
			r2, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			r2.Body.Close()
			if r2.StatusCode != http.StatusNotModified {
				t.Errorf("%s with its ETag: %d, want 304", tc.path, r2.StatusCode)
			}
		}
	}
	resp, err := http.Get(hs.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("the page's Content-Security-Policy: %q", csp)
	}
}

// A subscriber that does not keep up gets the newest state, never blocks
// the publisher, and other subscribers get every state.
func TestSlowSubscriberSkipsStates(t *testing.T) {
	p := New(Options{Agent: "a"})
	f := &feed{}
	p.feed = f
	slow, fast := &subscriber{ch: make(chan *item, 1)}, &subscriber{ch: make(chan *item, 1)}
	p.subs[slow], p.subs[fast] = struct{}{}, struct{}{}
	for i := range 3 {
		p.publish(f, &item{seq: uint64(i + 1), full: []byte{byte('0' + i)}})
		if got := string((<-fast.ch).full); got != fmt.Sprint(i) {
			t.Errorf("fast subscriber got %q, want %d", got, i)
		}
	}
	if got := <-slow.ch; string(got.full) != "2" || got.seq != 3 {
		t.Errorf("slow subscriber got %q (seq %d), want the newest state 2 (seq 3)", got.full, got.seq)
	}
	p.publish(&feed{}, &item{seq: 9, full: []byte("stale feed")}) // a stopped feed publishes nothing
	if len(fast.ch) != 0 || string(p.latest) != "2" {
		t.Errorf("a stopped feed's state was published: latest %q", p.latest)
	}
}

// The model follows upserts and deletes by DN, including an entry that
// changes its name.
func TestModel(t *testing.T) {
	m := newModel()
	set := func(dn, cn, owner string) ldapdir.Entry {
		return ldapdir.Entry{DN: dn, Attrs: map[string][]string{"objectclass": {"smartSet"}, "cn": {cn}, "geolocation": {"Texas"}, "owner": {owner}, "tcsepoch": {"3"}}}
	}
	svc := ldapdir.Entry{DN: "cn=a,ou=services,dc=x", Attrs: map[string][]string{"objectclass": {"tcsService", "dynamicObject"}, "cn": {"a"}, "geolocation": {"Texas"}}}
	loc := ldapdir.Entry{DN: "cn=Texas,ou=locations,dc=x", Attrs: map[string][]string{"objectclass": {"tcsLocation"}, "cn": {"Texas"}, "tcscoordinates": {"bad"}}}
	m.upsert(set("cn=s1,ou=smartsets,dc=x", "s1", "cn=a,ou=services,dc=x"))
	m.upsert(svc)
	if err := m.upsert(loc); err == nil {
		t.Error("bad coordinates: no error")
	}
	if l, ok := m.snap.Locations["texas"]; !ok || l.HasCoordinates {
		t.Errorf("a location with bad coordinates is kept without them: %+v %v", l, ok)
	}
	if s := m.snap.Sets["s1"]; s.Epoch != 3 || m.snap.Orphaned(s) {
		t.Errorf("s1: %+v orphaned %v", s, m.snap.Orphaned(s))
	}
	bad := set("cn=s2,ou=smartsets,dc=x", "s2", "")
	bad.Attrs["tcsepoch"] = []string{"x"}
	if err := m.upsert(bad); err == nil || len(m.snap.Sets) != 1 {
		t.Errorf("a set with a bad epoch: %v, %d sets", err, len(m.snap.Sets))
	}
	m.upsert(set("CN=s1, ou=smartsets,dc=x", "s1-renamed", "")) // same DN, other spelling, new cn
	if _, ok := m.snap.Sets["s1"]; ok || len(m.snap.Sets) != 1 {
		t.Errorf("after a rename: %v", m.snap.Sets)
	}
	m.delete("cn=A,ou=services,dc=x")
	m.delete("cn=s1,ou=smartsets,dc=x")
	m.delete("cn=unknown,dc=x")
	if len(m.snap.Services) != 0 || len(m.snap.Sets) != 0 || len(m.snap.Locations) != 1 {
		t.Errorf("after the deletes: %+v", m.snap)
	}
}

// Changed: a held channel keeps the directory watch running, is closed by
// a change the page shows (an owner), not by a lease refresh, and the watch
// stops once the last holder released it and the linger passed.
func TestChangedWakesBlockingReads(t *testing.T) {
	f := newFixture(t)
	p, _ := f.newPage(t)
	p.linger = 200 * time.Millisecond
	ch, release := p.Changed()
	if !p.watching() {
		t.Fatal("no directory watch while a Changed channel is held")
	}
	select { // the first state after the watch synced
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("Changed not closed by the first state")
	}
	release()
	ch, release = p.Changed()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.leases["tcs-japan-1"].Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
		t.Fatal("Changed closed by a lease refresh")
	case <-time.After(500 * time.Millisecond):
	}
	if _, err := f.dir.Claim(ctx, "california-routers", 0, f.dir.ServiceDN("tcs-texas-1")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("Changed not closed by a change of owner")
	}
	release()
	release() // idempotent
	deadline := time.Now().Add(5 * time.Second)
	for p.watching() {
		if time.Now().After(deadline) {
			t.Fatal("the watch still runs after the last holder released it")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
