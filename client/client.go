package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Errors a Client returns, wrapped with what the agent said; use errors.Is.
var (
	// ErrNotFound: the directory holds no set of that name (404).
	ErrNotFound = errors.New("client: no such SmartSet")
	// ErrBadRequest: an agent refused the request as malformed (400, 406),
	// e.g. a name with a control character.
	ErrBadRequest = errors.New("client: bad request")
	// ErrQueryFailed: the set's owner cannot compute its table (502): its
	// tcsQuery is bad or returns more than the owner's row_limit.
	ErrQueryFailed = errors.New("client: the set's query failed")
	// ErrNoEndpoints: New was given no endpoint.
	ErrNoEndpoints = errors.New("client: no agent endpoints")
)

// Options configure a Client. The zero value is usable.
type Options struct {
	// HTTPClient makes the requests (nil: a client of its own). Its
	// redirect policy is not used: the Client follows 307s itself.
	HTTPClient *http.Client
	// MaxRedirects bounds the 307s followed for one request (default 5).
	MaxRedirects int
	// Stale asks for stale reads (?stale=1): a fenced agent answers with
	// its last table, marked Stale and Fenced, instead of 503.
	Stale bool
	// Wait is how long one blocking request of Watch waits at the owner
	// before it is asked again (default 1m; the server caps it at 10m).
	Wait time.Duration
	// Timeout bounds a request that does not wait (default 10s); a blocking
	// one gets Wait on top.
	Timeout time.Duration
	// RetryAfter is the pause after a 503 without Retry-After, and the most
	// pause between rounds of unreachable agents (default 1s).
	RetryAfter time.Duration
	// Dropped, when set, is called with every answer dropped because it is
	// older than one returned for its set (a stale owner answered), e.g. to
	// log it. It must not block.
	Dropped func(t Table, newest Table)
}

// Client reads tables from a swarm. Safe for concurrent use.
type Client struct {
	endpoints []*url.URL
	opts      Options
	hc        *http.Client

	mu     sync.Mutex
	next   int                // the endpoint to ask first: the last one that answered
	marks  map[string]version // per set: the highest (epoch, index) returned
	newest map[string]Table   // per set: the table of that mark, for Dropped
	jitter func(time.Duration) time.Duration
}

// version is a table's (epoch, index).
type version struct{ epoch, index int64 }

// New returns a Client over the agents at endpoints (base URLs such as
// "http://127.0.0.1:8081").
func New(endpoints []string, opts Options) (*Client, error) {
	if len(endpoints) == 0 {
		return nil, ErrNoEndpoints
	}
	c := &Client{opts: opts, marks: map[string]version{}, newest: map[string]Table{}, jitter: jitter}
	for _, e := range endpoints {
		u, err := url.Parse(strings.TrimRight(e, "/"))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("client: endpoint %q: not an http or https base URL", e)
		}
		c.endpoints = append(c.endpoints, u)
	}
	if c.opts.MaxRedirects <= 0 {
		c.opts.MaxRedirects = 5
	}
	if c.opts.Wait <= 0 {
		c.opts.Wait = time.Minute
	}
	if c.opts.Timeout <= 0 {
		c.opts.Timeout = 10 * time.Second
	}
	if c.opts.RetryAfter <= 0 {
		c.opts.RetryAfter = time.Second
	}
	hc := http.Client{}
	if opts.HTTPClient != nil {
		hc = *opts.HTTPClient
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	hc.Timeout = 0 // per request, by context
	c.hc = &hc
	return c, nil
}

// Get returns the current table of set, from whichever agent answers
// first with a table not older than any this Client returned for set. It
// retries (other agents, Retry-After, backoff) until ctx ends; ErrNotFound,
// ErrBadRequest and ErrQueryFailed end it at once.
func (c *Client) Get(ctx context.Context, set string) (Table, error) {
	return c.fetch(ctx, set, 0, 0)
}

// fetch asks the agents for set's table until one answers with a table
// above the set's mark and, when index > 0, above index (a blocking read
// of wait). A blocking read that ends with the same table returns it too.
//
// It asks in rounds, each agent once per round. An agent that cannot be
// reached is not asked again in that round, directly or by a redirect (a
// paused owner would hold each request until it times out). A 503 does
// not stop the round: another agent may already know the new owner; its
// Retry-After is honoured by the pause before the next round. Between
// rounds without an answer the pause doubles from 50–100 ms up to
// RetryAfter, jitter included, so a new owner is found at most about
// RetryAfter after it took the set.
func (c *Client) fetch(ctx context.Context, set string, index int64, wait time.Duration) (Table, error) {
	backoff := 100 * time.Millisecond
	lastErr := make([]error, len(c.endpoints)) // per endpoint: what it last said
	ended := func() error {
		return fmt.Errorf("%w; last answers: %w", ctx.Err(), errors.Join(lastErr...))
	}
	for {
		start := c.first()
		r := round{unreachable: map[string]error{}}
		for i := range c.endpoints {
			ep := (start + i) % len(c.endpoints)
			t, retryAfter, err := c.ask(ctx, &r, c.endpoints[ep], set, index, wait)
			switch {
			case err == nil:
				if mark := c.mark(set); t.Epoch < mark.epoch || (t.Epoch == mark.epoch && t.Index < mark.index) {
					lastErr[ep] = fmt.Errorf("client: %s answered %s at epoch %d index %d, older than epoch %d index %d already returned: dropped",
						t.Agent, set, t.Epoch, t.Index, mark.epoch, mark.index)
					if c.opts.Dropped != nil {
						c.opts.Dropped(t, c.newestOf(set))
					}
					continue // a stale owner: ask the next agent
				}
				c.answered(ep, set, t)
				return t, nil
			case errors.Is(err, ErrNotFound), errors.Is(err, ErrBadRequest), errors.Is(err, ErrQueryFailed):
				c.setFirst(ep)
				return t, err // t: the failure's epoch and index, for ErrQueryFailed
			case ctx.Err() != nil:
				return Table{}, ended()
			}
			lastErr[ep] = err
			r.retryAfter = max(r.retryAfter, retryAfter)
		}
		pause := backoff/2 + c.jitter(backoff/2)
		if r.retryAfter > 0 {
			// A 503 said when to ask again: the set is changing hands or
			// the agent is fenced.
			pause = r.retryAfter + c.jitter(r.retryAfter/4)
		}
		if !c.sleep(ctx, pause) {
			return Table{}, ended()
		}
		backoff = min(backoff*2, c.opts.RetryAfter)
	}
}

// round is what one round of fetch learnt: the hosts that could not be
// reached, and the longest Retry-After of a 503.
type round struct {
	unreachable map[string]error // host:port → the error
	retryAfter  time.Duration
}

// ask sends one request for set to base, following 307s, except to a host
// r found unreachable: it is marked there when its request fails. It
// returns the table of a 200, or the pause a 503 asked for, or an error.
func (c *Client) ask(ctx context.Context, r *round, base *url.URL, set string, index int64, wait time.Duration) (Table, time.Duration, error) {
	q := url.Values{}
	timeout := c.opts.Timeout
	if index > 0 {
		q.Set("index", strconv.FormatInt(index, 10))
		q.Set("wait", wait.String())
		timeout += wait + wait/16
	}
	if c.opts.Stale {
		q.Set("stale", "1")
	}
	target := *base
	target.Path = base.Path + "/v1/smartsets/" + set
	target.RawPath = base.EscapedPath() + "/v1/smartsets/" + escapeName(set)
	target.RawQuery = q.Encode()
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	u := target.String()
	for hop := 0; ; hop++ {
		req, err := http.NewRequestWithContext(rctx, http.MethodGet, u, nil)
		if err != nil {
			return Table{}, 0, fmt.Errorf("client: %s: %w", u, err)
		}
		if err, ok := r.unreachable[req.URL.Host]; ok {
			return Table{}, 0, fmt.Errorf("client: %s: not asked, unreachable in this round: %w", u, err)
		}
		req.Header.Set("Accept", "application/json")
		resp, err := c.hc.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				r.unreachable[req.URL.Host] = err
			}
			return Table{}, 0, fmt.Errorf("client: %s: %w", u, err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
		resp.Body.Close()
		if err != nil {
			return Table{}, 0, fmt.Errorf("client: %s: reading the answer: %w", u, err)
		}
		switch resp.StatusCode {
		case http.StatusOK:
			t, err := decodeTable(body, resp.Header, u)
			return t, 0, err
		case http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			if hop >= c.opts.MaxRedirects {
				return Table{}, 0, fmt.Errorf("client: %s: more than %d redirects", u, c.opts.MaxRedirects)
			}
			loc, err := url.Parse(resp.Header.Get("Location"))
			if err == nil && !loc.IsAbs() {
				loc = req.URL.ResolveReference(loc)
			}
			if err != nil || resp.Header.Get("Location") == "" {
				return Table{}, 0, fmt.Errorf("client: %s: 307 with a bad Location %q", u, resp.Header.Get("Location"))
			}
			u = loc.String()
			continue
		case http.StatusServiceUnavailable:
			ra := c.opts.RetryAfter
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
				ra = time.Duration(s) * time.Second
			}
			return Table{}, ra, fmt.Errorf("client: %s: 503: %s", u, message(body))
		case http.StatusNotFound:
			return Table{}, 0, fmt.Errorf("%w %q (asked %s)", ErrNotFound, set, u)
		case http.StatusBadRequest, http.StatusNotAcceptable:
			return Table{}, 0, fmt.Errorf("%w: %s: %s", ErrBadRequest, u, message(body))
		case http.StatusBadGateway:
			// The failure has an index too: a Watch waits for the next change.
			t := Table{Set: set, Agent: u}
			t.Epoch, _ = strconv.ParseInt(resp.Header.Get("Tcs-Epoch"), 10, 64)
			t.Index, _ = strconv.ParseInt(resp.Header.Get("Tcs-Index"), 10, 64)
			return t, 0, fmt.Errorf("%w: %s: %s", ErrQueryFailed, u, message(body))
		default:
			return Table{}, 0, fmt.Errorf("client: %s: %s: %s", u, resp.Status, message(body))
		}
	}
}

// escapeName is set name as one path segment, as the API's redirects
// write it: percent-encoded, and "." and ".." with their dots encoded too
// so that no one resolves them as dot segments.
func escapeName(name string) string {
	switch name {
	case ".":
		return "%2E"
	case "..":
		return "%2E%2E"
	}
	return url.PathEscape(name)
}

// message is the "error" of an API error body, else the body itself.
func message(body []byte) string {
	s := strings.TrimSpace(string(body))
	if i := strings.Index(s, `"error":"`); i >= 0 {
		rest := s[i+len(`"error":"`):]
		if j := strings.Index(rest, `"`); j >= 0 {
			return rest[:j]
		}
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// Seen tells the client that a table of set at (epoch, index) was seen
// elsewhere — by another client, or before a restart (TCS-Epoch and
// TCS-Index persisted) — so that it never returns an older one either.
func (c *Client) Seen(set string, epoch, index int64) {
	c.answered(-1, set, Table{Set: set, Epoch: epoch, Index: index})
}

// mark is the highest (epoch, index) returned for set.
func (c *Client) mark(set string) version {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.marks[set]
}

// answered records that t was returned for set, by endpoint ep.
func (c *Client) answered(ep int, set string, t Table) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ep >= 0 {
		c.next = ep
	}
	if m := c.marks[set]; t.newer(m.epoch, m.index) {
		c.marks[set] = version{t.Epoch, t.Index}
		if c.opts.Dropped != nil {
			c.newest[set] = Table{Set: t.Set, Epoch: t.Epoch, Index: t.Index, Owner: t.Owner, Agent: t.Agent}
		}
	}
}

func (c *Client) newestOf(set string) Table {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.newest[set]
}

func (c *Client) first() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.next
}

func (c *Client) setFirst(ep int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.next = ep
}

// sleep waits d or until ctx ends; false when ctx ended.
func (c *Client) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}
