package httpapi

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serve runs s.Serve on a fresh loopback listener until the test ends
// (or cancel is called) and returns the base URL and a channel that
// delivers Serve's result.
func serve(t *testing.T, s *Server) (base string, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	returned := make(chan struct{})
	go func() {
		errc <- s.Serve(ctx, ln)
		close(returned)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-returned:
		case <-time.After(15 * time.Second):
			t.Error("Serve did not return")
		}
	})
	return "http://" + ln.Addr().String(), cancel, errc
}

// rawGet sends request line and headers as given on a fresh connection
// and returns the status line.
func rawGet(t *testing.T, base, requestURI string, extra string) string {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n", requestURI, extra)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", requestURI, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, body)
}

// On the wire: path tricks are 400s, not cleaned into redirects, and the
// server keeps serving.
func TestServeRawPaths(t *testing.T) {
	_, _, s := newFixture()
	base, _, _ := serve(t, s)
	for _, uri := range []string{
		"/v1/smartsets/../etc/passwd",
		"/v1/smartsets/%2e%2e/etc/passwd",
		"/v1/smartsets/./dallas",
		"/v1/smartsets/a%00",
		"/v1/smartsets//dallas",
		"/v1/smartsets/" + strings.Repeat("a", 129),
	} {
		got := rawGet(t, base, uri, "")
		if !strings.HasPrefix(got, "400 {\"error\":\"bad SmartSet name: ") {
			t.Errorf("GET %s: %s, want 400 with a JSON error", uri, got)
		}
		if got := rawGet(t, base, "/v1/smartsets/dallas", ""); !strings.HasPrefix(got, "200 ") {
			t.Fatalf("after GET %s: dallas is %s", uri, got)
		}
	}
	if got := rawGet(t, base, "/v1/smartsets/dallas", "Accept: ;;;\r\n"); !strings.HasPrefix(got, "400 ") {
		t.Errorf("malformed Accept on the wire: %s", got)
	}
	for _, uri := range []string{"/v1/smartsets/amarillo", "/v1/smartsets/%2e%2e%2fetc%2fpasswd", "/v1/smartsets/..", "/v1/smartsets/%2E"} {
		if got := rawGet(t, base, uri, ""); !strings.HasPrefix(got, "404 ") {
			t.Errorf("GET %s on the wire: %s, want 404", uri, got)
		}
	}
	if got := rawGet(t, base, "/healthz", ""); got != "200 ok" {
		t.Errorf("healthz after the bad requests: %s", got)
	}
}

func TestServeRedirectAndHead(t *testing.T) {
	_, _, s := newFixture()
	base, _, _ := serve(t, s)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(base + "/v1/smartsets/tokyo?format=csv&since=2026-01-01")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != 307 || loc != japanEndpoint+"/v1/smartsets/tokyo?format=csv&since=2026-01-01" {
		t.Errorf("redirect: %d Location %q", resp.StatusCode, loc)
	}
	resp, err = client.Head(base + "/v1/smartsets/dallas")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength <= 0 || resp.Header.Get("TCS-Epoch") != "3" {
		t.Errorf("HEAD: %d, %d body bytes, Content-Length %d, TCS-Epoch %q", resp.StatusCode, len(body), resp.ContentLength, resp.Header.Get("TCS-Epoch"))
	}
}

// Serve's graceful shutdown: a request in flight when ctx ends finishes
// with its full answer, new connections are refused, and Serve returns nil.
func TestServeGracefulShutdown(t *testing.T) {
	sw, tables, _ := newFixture()
	tables.block = make(chan struct{})
	tables.entered = make(chan string, 1)
	s := New(sw, tables, Options{ShutdownTimeout: 10 * time.Second})
	base, cancel, done := serve(t, s)

	type result struct {
		code int
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get(base + "/v1/smartsets/dallas")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{resp.StatusCode, string(b), err}
	}()
	select {
	case <-tables.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the request never reached Tables.Get")
	}
	cancel()
	select {
	case err := <-done:
		t.Fatalf("Serve returned %v with a request in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), time.Second); err == nil {
		c.Close()
		t.Errorf("a new connection was accepted during shutdown")
	}
	close(tables.block)
	r := <-got
	if r.err != nil || r.code != 200 || !strings.HasPrefix(r.body, `{"set":"dallas"`) || !strings.HasSuffix(r.body, "}\n") {
		t.Errorf("in-flight request: %d %q %v, want 200 and the whole table", r.code, r.body, r.err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v, want nil after a clean shutdown", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the in-flight request finished")
	}
}

// A request still running after ShutdownTimeout is cut, and Serve says so.
func TestServeShutdownTimeout(t *testing.T) {
	sw, tables, _ := newFixture()
	tables.block = make(chan struct{})
	tables.entered = make(chan string, 1)
	defer close(tables.block)
	s := New(sw, tables, Options{ShutdownTimeout: 100 * time.Millisecond})
	base, cancel, done := serve(t, s)
	go func() {
		if resp, err := http.Get(base + "/v1/smartsets/dallas"); err == nil {
			resp.Body.Close()
		}
	}()
	<-tables.entered
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "shutting down") {
			t.Errorf("Serve: %v, want a shutdown timeout error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after ShutdownTimeout")
	}
}

// Request headers bigger than MaxHeaderBytes get Go's 431, and the server
// goes on serving.
func TestServeMaxHeaderBytes(t *testing.T) {
	sw, tables, _ := newFixture()
	s := New(sw, tables, Options{MaxHeaderBytes: 1024})
	base, _, _ := serve(t, s)
	// net/http allows 4096 bytes of slack over MaxHeaderBytes.
	big := "X-Big: " + strings.Repeat("a", 16<<10) + "\r\n"
	if got := rawGet(t, base, "/v1/smartsets/dallas", big); !strings.HasPrefix(got, "431 ") {
		t.Errorf("oversize headers: %.60s, want 431", got)
	}
	if got := rawGet(t, base, "/healthz", "X-Small: "+strings.Repeat("a", 500)+"\r\n"); got != "200 ok" {
		t.Errorf("after the 431: %s", got)
	}
}

// Serve fails when the listener does.
func TestServeListenerError(t *testing.T) {
	sw, tables, _ := newFixture()
	s := New(sw, tables, Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if err := s.Serve(context.Background(), ln); err == nil {
		t.Error("Serve on a closed listener returned nil")
	}
}
