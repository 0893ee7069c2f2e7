package tablecache

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
)

// Reasons a refresh fails, the label of tcs_table_refresh_errors_total.
const (
	reasonUnavailable = "unavailable" // the source could not be reached
	reasonRowLimit    = "row_limit"   // more rows than RowLimit
	reasonQuery       = "query"       // the query is wrong: bad URL, no such base, refused
)

// metrics are the cache's Prometheus collectors.
type metrics struct {
	refreshSeconds prometheus.Histogram
	errors         *prometheus.CounterVec
}

func newMetrics(c *Cache, reg prometheus.Registerer, log logrus.FieldLogger) *metrics {
	m := &metrics{
		refreshSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tcs_table_refresh_seconds",
			Help:    "Time to run one SmartSet's query and rebuild its table, failures included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9), // 1 ms .. 65 s
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tcs_table_refresh_errors_total",
			Help: "Table refreshes that failed, by reason: unavailable (source down), row_limit, query (bad query or no such base).",
		}, []string{"reason"}),
	}
	for _, r := range []string{reasonUnavailable, reasonRowLimit, reasonQuery} {
		m.errors.WithLabelValues(r)
	}
	if reg == nil {
		return m
	}
	tables := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tcs_tables",
		Help: "SmartSet tables this agent keeps (the sets it owns).",
	}, func() float64 { n, _ := c.counts(); return float64(n) })
	stale := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tcs_tables_stale",
		Help: "Tables served from their last good rows because their source cannot be reached.",
	}, func() float64 { _, n := c.counts(); return float64(n) })
	m.refreshSeconds = register(reg, m.refreshSeconds, log)
	m.errors = register(reg, m.errors, log)
	register(reg, tables, log)
	register(reg, stale, log)
	return m
}

// register registers col with reg; when an equal collector is there
// already it returns that one, so two caches on one registry share counts.
func register[C prometheus.Collector](reg prometheus.Registerer, col C, log logrus.FieldLogger) C {
	err := reg.Register(col)
	if err == nil {
		return col
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	log.WithError(err).Warn("tablecache: cannot register a metric")
	return col
}
