package httpapi

import (
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

// blockingGet starts GET base+uri (redirects not followed) and delivers
// the answer (status, TCS-Index, Location) and how long it took.
type result struct {
	code          int
	index, loc    string
	fenced, stale string
	took          time.Duration
	err           error
}

func blockingGet(base, uri string) <-chan result {
	out := make(chan result, 1)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	go func() {
		start := time.Now()
		resp, err := client.Get(base + uri)
		if err != nil {
			out <- result{err: err}
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		out <- result{code: resp.StatusCode, index: resp.Header.Get("TCS-Index"), loc: resp.Header.Get("Location"),
			fenced: resp.Header.Get("TCS-Fenced"), stale: resp.Header.Get("TCS-Stale"), took: time.Since(start)}
	}()
	return out
}

// notYet fails when ch delivers within d: the request must still wait.
func notYet(t *testing.T, ch <-chan result, d time.Duration) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("answered while it should wait: %+v", r)
	case <-time.After(d):
	}
}

func within(t *testing.T, ch <-chan result, d time.Duration) result {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r
	case <-time.After(d):
		t.Fatalf("no answer within %v", d)
		return result{}
	}
}

func TestBlockingRead(t *testing.T) {
	cur := strconv.FormatInt(dallasTable().Index, 10)

	t.Run("a change answers", func(t *testing.T) {
		_, tables, s := newFixture()
		base, _, _ := serve(t, s)
		ch := blockingGet(base, "/v1/smartsets/dallas?index="+cur+"&wait=1m")
		notYet(t, ch, 300*time.Millisecond)
		// A change that does not raise the index (a stale flag) does not answer.
		same := dallasTable()
		same.Stale = true
		tables.put(same)
		notYet(t, ch, 200*time.Millisecond)
		next := dallasTable()
		next.Index++
		next.ETag = `"3-aaaa"`
		tables.put(next)
		r := within(t, ch, 5*time.Second)
		if r.code != 200 || r.index != strconv.FormatInt(next.Index, 10) {
			t.Errorf("got %d index %s, want 200 index %d", r.code, r.index, next.Index)
		}
	})

	t.Run("the wait ends with the same index", func(t *testing.T) {
		_, _, s := newFixture()
		base, _, _ := serve(t, s)
		r := within(t, blockingGet(base, "/v1/smartsets/dallas?index="+cur+"&wait=700ms"), 10*time.Second)
		if r.code != 200 || r.index != cur {
			t.Errorf("got %d index %s, want 200 index %s", r.code, r.index, cur)
		}
		// The wait is the asked one plus at most 1/16 of jitter (and a loaded machine).
		if r.took < 700*time.Millisecond {
			t.Errorf("answered after %v, before the wait of 700ms", r.took)
		}
	})

	t.Run("losing the set answers with a redirect", func(t *testing.T) {
		sw, tables, s := newFixture()
		base, _, _ := serve(t, s)
		ch := blockingGet(base, "/v1/smartsets/dallas?index="+cur+"&wait=1m&format=csv")
		notYet(t, ch, 300*time.Millisecond)
		sw.mu.Lock()
		delete(sw.owned, "dallas")
		sw.sets["dallas"] = SetInfo{Name: "dallas", Location: "Texas", Owner: "tcs-japan-1", OwnerLive: true, OwnerEndpoint: japanEndpoint, Epoch: 4}
		sw.mu.Unlock()
		tables.drop("dallas")
		r := within(t, ch, 5*time.Second)
		if want := japanEndpoint + "/v1/smartsets/dallas?index=" + cur + "&wait=1m&format=csv"; r.code != 307 || r.loc != want {
			t.Errorf("got %d Location %q, want 307 to %s", r.code, r.loc, want)
		}
	})

	t.Run("being fenced answers 503, or the last table on a stale read", func(t *testing.T) {
		sw, _, s := newFixture()
		base, _, _ := serve(t, s)
		plain := blockingGet(base, "/v1/smartsets/dallas?index="+cur+"&wait=1m")
		stale := blockingGet(base, "/v1/smartsets/dallas?index="+cur+"&wait=1500ms&stale=1")
		notYet(t, plain, 300*time.Millisecond)
		sw.setFenced(true)
		if r := within(t, plain, 5*time.Second); r.code != 503 {
			t.Errorf("fenced during the wait: %d, want 503", r.code)
		}
		notYet(t, stale, 300*time.Millisecond) // same table, still waiting
		r := within(t, stale, 10*time.Second)
		if r.code != 200 || r.fenced != "true" || r.stale != "true" || r.index != cur {
			t.Errorf("stale read after the wait: %+v, want 200 fenced and stale at index %s", r, cur)
		}
	})

	t.Run("a loading table is waited for", func(t *testing.T) {
		_, tables, s := newFixture()
		base, _, _ := serve(t, s)
		ch := blockingGet(base, "/v1/smartsets/austin?index=1&wait=1m")
		notYet(t, ch, 300*time.Millisecond)
		tb := dallasTable()
		tb.Set, tb.Epoch, tb.Index = "austin", 1, 1<<32|7
		tables.put(tb)
		if r := within(t, ch, 5*time.Second); r.code != 200 || r.index != strconv.FormatInt(tb.Index, 10) {
			t.Errorf("got %+v, want 200 at index %d", r, tb.Index)
		}
	})

	t.Run("shutdown answers the waiting requests", func(t *testing.T) {
		_, _, s := newFixture()
		base, cancel, done := serve(t, s)
		ch := blockingGet(base, "/v1/smartsets/dallas?index="+cur+"&wait=10m")
		notYet(t, ch, 300*time.Millisecond)
		cancel()
		if r := within(t, ch, 5*time.Second); r.code != 200 || r.index != cur {
			t.Errorf("got %+v, want 200 at index %s", r, cur)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})

	t.Run("index 0 and an index below answer at once", func(t *testing.T) {
		_, _, s := newFixture()
		base, _, _ := serve(t, s)
		for _, uri := range []string{"/v1/smartsets/dallas?index=0&wait=1m", "/v1/smartsets/dallas?index=5&wait=1m"} {
			if r := within(t, blockingGet(base, uri), 5*time.Second); r.code != 200 {
				t.Errorf("%s: %d", uri, r.code)
			}
		}
	})
}

func TestParseWait(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{in: "30s", want: 30 * time.Second}, {in: "5m", want: 5 * time.Minute}, {in: "90", want: 90 * time.Second},
		{in: "0", want: 0}, {in: "1h", want: time.Hour}, {in: "99999999999999", want: MaxWait},
		{in: "soon", bad: true}, {in: "-1", bad: true}, {in: "-2s", bad: true}, {in: "", bad: true},
	} {
		got, err := parseWait(tc.in)
		if (err != nil) != tc.bad || (!tc.bad && got != tc.want) {
			t.Errorf("parseWait(%q) = %v, %v; want %v (bad %v)", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

// fakeChanges is a SwarmChanges the test fires.
type fakeChanges struct {
	mu   sync.Mutex
	ch   chan struct{}
	held int
}

func (f *fakeChanges) Changed() (<-chan struct{}, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ch == nil {
		f.ch = make(chan struct{})
	}
	f.held++
	var once sync.Once
	return f.ch, func() {
		once.Do(func() {
			f.mu.Lock()
			f.held--
			f.mu.Unlock()
		})
	}
}

func (f *fakeChanges) fire() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ch != nil {
		close(f.ch)
		f.ch = nil
	}
}

func TestBlockingList(t *testing.T) {
	sw, tables, _ := newFixture()
	fc := &fakeChanges{}
	s := New(sw, tables, Options{SwarmChanges: fc})
	base, _, _ := serve(t, s)
	first := within(t, blockingGet(base, "/v1/smartsets"), 5*time.Second)
	again := within(t, blockingGet(base, "/v1/smartsets?format=csv"), 5*time.Second)
	if first.code != 200 || first.index == "" || again.index != first.index {
		t.Fatalf("list %+v then %+v: want 200 and the same TCS-Index for the same list", first, again)
	}
	ch := blockingGet(base, "/v1/smartsets?index="+first.index+"&wait=1m")
	notYet(t, ch, 300*time.Millisecond)
	fc.fire() // a change the list does not show: still waiting
	notYet(t, ch, 300*time.Millisecond)
	sw.mu.Lock()
	in := sw.sets["tokyo"]
	in.Owner, in.Epoch = "tcs-japan-2", 5
	sw.sets["tokyo"] = in
	sw.mu.Unlock()
	fc.fire()
	r := within(t, ch, 5*time.Second)
	n0, _ := strconv.ParseInt(first.index, 10, 64)
	n1, _ := strconv.ParseInt(r.index, 10, 64)
	if r.code != 200 || n1 <= n0 {
		t.Fatalf("after a change of owner: %+v, want 200 with an index above %d", r, n0)
	}
	// The wait ends with the same list and index.
	r = within(t, blockingGet(base, "/v1/smartsets?index="+r.index+"&wait=500ms"), 5*time.Second)
	if r.code != 200 || r.index != strconv.FormatInt(n1, 10) || r.took < 500*time.Millisecond {
		t.Fatalf("wait over: %+v", r)
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if fc.held != 0 {
		t.Errorf("%d Changed channels not released", fc.held)
	}
}

// A wait longer than the server's read and write timeouts is answered
// (the timeouts count from the request; an expired read deadline would
// cancel the request while it waits).
func TestBlockingOutlivesServerTimeouts(t *testing.T) {
	sw, tables, _ := newFixture()
	s := New(sw, tables, Options{ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond, SwarmChanges: &fakeChanges{}})
	base, _, _ := serve(t, s)
	cur := strconv.FormatInt(dallasTable().Index, 10)
	for _, uri := range []string{"/v1/smartsets/dallas?index=" + cur + "&wait=1500ms", "/v1/smartsets?index=99999999999999&wait=1500ms"} {
		r := within(t, blockingGet(base, uri), 10*time.Second)
		if r.err != nil || r.code != 200 || r.took < 1500*time.Millisecond {
			t.Errorf("%s: %+v (%v), want 200 after the 1.5s wait", uri, r, r.err)
		}
	}
}
