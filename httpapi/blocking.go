package httpapi

import (
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Blocking reads, as Consul's: ?index=N asks to be answered only once the
// set's TCS-Index is above N, or when ?wait= (default DefaultWait, at most
// MaxWait, plus up to 1/16 of random jitter so waiters woken together do
// not all come back at once) has passed, with the current state. index=0
// or no index answers at once.
const (
	DefaultWait = 5 * time.Minute
	MaxWait     = 10 * time.Minute
)

// readQuery is what a table or list request asks besides the format.
type readQuery struct {
	index int64         // answer once the index is above this; 0 = at once
	wait  time.Duration // how long to wait for that, jitter included
	stale bool          // a fenced agent may answer with its last table
}

func (q readQuery) blocking() bool { return q.index > 0 }

// parseRead reads index, wait and stale from r's query string and the
// TCS-Allow-Stale header. The error is a 400 naming the parameter.
func parseRead(r *http.Request) (readQuery, *apiError) {
	var q readQuery
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return q, badRequest("malformed query string: %v", err)
	}
	one := func(key string) (string, bool, *apiError) {
		vs, ok := vals[key]
		if !ok {
			return "", false, nil
		}
		for _, v := range vs[1:] {
			if v != vs[0] {
				return "", false, badRequest("%s given more than once (%q, %q)", key, vs[0], v)
			}
		}
		return vs[0], true, nil
	}
	if v, ok, aerr := one("index"); aerr != nil {
		return q, aerr
	} else if ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return q, badRequest("index=%q: want a TCS-Index, a non-negative integer", v)
		}
		q.index = n
	}
	q.wait = DefaultWait
	if v, ok, aerr := one("wait"); aerr != nil {
		return q, aerr
	} else if ok {
		d, err := parseWait(v)
		if err != nil {
			return q, badRequest("wait=%q: %v", v, err)
		}
		q.wait = d
	}
	q.wait = min(q.wait, MaxWait)
	if q.wait > 0 {
		q.wait += rand.N(q.wait/16 + 1)
	}
	v, ok, aerr := one("stale")
	if aerr != nil {
		return q, aerr
	}
	if !ok {
		v, ok = r.Header.Get("Tcs-Allow-Stale"), r.Header.Get("Tcs-Allow-Stale") != ""
	}
	if ok {
		b, err := parseFlag(v)
		if err != nil {
			return q, badRequest("stale=%q: %v", v, err)
		}
		q.stale = b
	}
	return q, nil
}

// extendDeadlines makes the connection's deadlines allow a blocking read
// of d: the server's read and write timeouts count from the request, and
// an expired read deadline would cancel the request's context while it
// waits. (An error only means the writer cannot say: a test recorder.)
func extendDeadlines(w http.ResponseWriter, d time.Duration) {
	rc := http.NewResponseController(w)
	until := time.Now().Add(d)
	rc.SetReadDeadline(until)
	rc.SetWriteDeadline(until)
}

// parseWait reads a wait: a Go duration ("30s", "5m") or whole seconds.
func parseWait(v string) (time.Duration, error) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, errNegativeWait
		}
		return time.Duration(min(n, int64(MaxWait/time.Second))) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, errBadWait
	}
	if d < 0 {
		return 0, errNegativeWait
	}
	return d, nil
}

// parseFlag reads a boolean parameter; present and empty ("?stale") is true.
func parseFlag(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "", "1", "true", "yes":
		return true, nil
	case "0", "false", "no":
		return false, nil
	}
	return false, errBadFlag
}

type queryError string

func (e queryError) Error() string { return string(e) }

const (
	errBadWait      = queryError(`want a duration such as "30s" or "5m", or whole seconds`)
	errNegativeWait = queryError("a wait cannot be negative")
	errBadFlag      = queryError("want 1 or 0 (true or false)")
)
