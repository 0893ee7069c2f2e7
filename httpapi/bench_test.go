package httpapi

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"tcs/tablecache"
)

// benchRows is the size of the benchmark table: 100 entries of 4
// attributes, one multi-valued (about 13 KB of JSON).
const benchRows = 100

func benchServer() *Server {
	tb := tablecache.Table{
		Set: "bench", Epoch: 7, ETag: `"7-0123456789abcdef"`, Refreshed: time.Now(),
		Columns: []string{"dn", "uid", "mail", "cn"},
	}
	for i := range benchRows {
		uid := fmt.Sprintf("user%03d", i)
		tb.Rows = append(tb.Rows, [][]string{
			{"uid=" + uid + ",ou=people,dc=example,dc=org"}, {uid},
			{uid + "@example.org", uid + "@mail.example.org"}, {"User " + strconv.Itoa(i)},
		})
	}
	sw := &fakeSwarm{name: selfName, ready: true, owned: map[string]int64{"bench": 7}, sets: map[string]SetInfo{}}
	tables := &fakeTables{tables: map[string]tablecache.Table{"bench": tb}}
	return New(sw, tables, Options{Registerer: prometheus.NewRegistry()})
}

// benchGets measures GETs of url over loopback HTTP/1.1 keep-alive
// connections, one client per parallel goroutine.
func benchGets(b *testing.B, h http.Handler) {
	srv := httptest.NewServer(h)
	defer srv.Close()
	url := srv.URL + "/v1/smartsets/bench"
	tr := &http.Transport{MaxIdleConnsPerHost: 256}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// BenchmarkTableJSON: GET of a cached table through the whole API handler
// (routing, name check, negotiation, Owns, Tables.Get, memo, metrics).
func BenchmarkTableJSON(b *testing.B) {
	benchGets(b, benchServer().Handler())
}

// BenchmarkBareHandler: the same bytes (headers and body, as the API
// answers BenchmarkTableJSON's request) from a bare net/http handler: the
// baseline of the ≥ 0.8 req/s target.
func BenchmarkBareHandler(b *testing.B) {
	rec := do(benchServer().Handler(), "GET", "/v1/smartsets/bench", nil)
	header, body := rec.Header(), rec.Body.Bytes()
	benchGets(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for k, v := range header {
			h[k] = v
		}
		w.Write(body)
	}))
}

// TestThroughputRatio reports req/s of BenchmarkTableJSON over
// BenchmarkBareHandler (target ≥ 0.8). It runs only with -bench, and
// only reports: the ratio is a measurement, not a pass/fail, on a shared
// machine.
//
//	go test -run TestThroughputRatio -bench 'TableJSON|BareHandler' -v ./httpapi/
func TestThroughputRatio(t *testing.T) {
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		t.Skip("measured only with -bench")
	}
	// Alternate and keep each side's best of three, to damp noise.
	var bare, api float64
	for range 3 {
		if r := testing.Benchmark(BenchmarkBareHandler); r.N > 0 {
			bare = max(bare, float64(r.N)/r.T.Seconds())
		}
		if r := testing.Benchmark(BenchmarkTableJSON); r.N > 0 {
			api = max(api, float64(r.N)/r.T.Seconds())
		}
	}
	if bare == 0 {
		t.Fatal("the bare handler benchmark did not run")
	}
	t.Logf("cached table: %.0f req/s, bare handler: %.0f req/s, ratio %.2f (target >= 0.80)", api, bare, api/bare)
}

// discardWriter is a ResponseWriter that keeps nothing but the header map.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

// BenchmarkTableHandler: the API handler's own cost for a cached table,
// without the network.
func BenchmarkTableHandler(b *testing.B) {
	h := benchServer().Handler()
	req := httptest.NewRequest("GET", "/v1/smartsets/bench", nil)
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(&discardWriter{h: http.Header{}}, req)
	}
}
