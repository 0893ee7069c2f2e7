package httpapi

import (
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// route is what a request asked for, as the metrics label it: a fixed
// set, never the raw path, so the label's cardinality stays bounded.
type route int

const (
	routeSets route = iota
	routeSet
	routeHealthz
	routeReadyz
	routeMetrics
	routeStatus
	routeOther
	numRoutes
)

var routeNames = [numRoutes]string{"sets", "set", "healthz", "readyz", "metrics", "status", "other"}

func (r route) String() string { return routeNames[r] }

// metrics are the HTTP metrics: requests by route and status code, and
// their latency by route.
type metrics struct {
	requests *prometheus.CounterVec
	seconds  [numRoutes]prometheus.Observer
	counters sync.Map // route<<16 | code → prometheus.Counter, to skip the label hashing
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tcs_http_requests_total",
			Help: "HTTP requests served, by route (sets, set, healthz, readyz, metrics, status, other) and status code.",
		}, []string{"route", "code"}),
	}
	seconds := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tcs_http_request_seconds",
		Help:    "Time to serve an HTTP request, by route.",
		Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16), // 50µs .. 1.6s
	}, []string{"route"})
	if reg != nil {
		m.requests = register(reg, m.requests)
		seconds = register(reg, seconds)
	}
	for r := range numRoutes {
		m.seconds[r] = seconds.WithLabelValues(r.String())
	}
	return m
}

// register registers c with reg, or returns the collector already
// registered there under the same name (a second Server on the same
// registry shares the metrics). Any other registration error is a
// programming error and panics, like MustRegister.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}

// observe records one request to r answered with code, started at start.
func (m *metrics) observe(r route, code int, start time.Time) {
	m.seconds[r].Observe(time.Since(start).Seconds())
	key := int(r)<<16 | code
	c, ok := m.counters.Load(key)
	if !ok {
		c, _ = m.counters.LoadOrStore(key, m.requests.WithLabelValues(r.String(), strconv.Itoa(code)))
	}
	c.(prometheus.Counter).Inc()
}
