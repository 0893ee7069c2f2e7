package agent

import (
	"github.com/prometheus/client_golang/prometheus"

	"tcs/ldapdir"
)

// Metrics are the agent's Prometheus metrics.
type Metrics struct {
	SetsOwned        prometheus.Gauge
	OwnershipChanges *prometheus.CounterVec // by reason
	CASConflicts     *prometheus.CounterVec // by operation
	Writes           *prometheus.CounterVec // by operation and result
	LeaseRefresh     prometheus.Histogram
	LeaseFailures    prometheus.Counter
	Fenced           prometheus.Gauge
	WatchReconnects  prometheus.Counter
	ReconcileSeconds prometheus.Histogram
	// BatchTransactions counts RFC 5805 transactions of batched writes by
	// result (committed, aborted: a lost race, nothing applied, retried).
	BatchTransactions *prometheus.CounterVec
	// WriteWindow is how many single ownership writes the agent lets be
	// in flight, after its last batch: 16 at most, fewer while the
	// directory answers writes slower than a tenth of the lease TTL.
	WriteWindow prometheus.Gauge
}

// NewMetrics creates the metrics and registers them with reg (nil: not
// registered anywhere).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		SetsOwned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tcs_sets_owned", Help: "SmartSets this agent owns.",
		}),
		OwnershipChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tcs_ownership_changes_total", Help: "Ownership changes written by this agent, by reason (orphan, better-placed, leave).",
		}, []string{"reason"}),
		CASConflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tcs_cas_conflicts_total", Help: "Compare-and-swap writes that lost their race, by operation.",
		}, []string{"op"}),
		Writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tcs_directory_writes_total", Help: "Directory writes by operation (claim, transfer, release, request, clear) and result (ok, conflict, error).",
		}, []string{"op", "result"}),
		LeaseRefresh: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tcs_lease_refresh_seconds", Help: "Latency of lease refreshes (RFC 2589 Refresh).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		LeaseFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tcs_lease_refresh_failures_total", Help: "Lease refreshes that failed.",
		}),
		Fenced: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tcs_fenced", Help: "1 while the agent is fenced (lease not refreshed within the renew deadline).",
		}),
		WatchReconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tcs_watch_reconnects_total", Help: "Times the directory watch had to reconnect.",
		}),
		ReconcileSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tcs_reconcile_seconds", Help: "Time to decide and apply one reconcile.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}),
		BatchTransactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tcs_batch_transactions_total", Help: "RFC 5805 transactions of batched ownership writes, by result (committed, aborted).",
		}, []string{"result"}),
		WriteWindow: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tcs_write_window", Help: "Single ownership writes this agent lets be in flight (at most 16; fewer while the directory answers writes slower than a tenth of the lease TTL).",
		}),
	}
	m.WriteWindow.Set(ldapdir.MaxWritesInFlight)
	// Every label value a dashboard may query exists from the start, at 0.
	for _, reason := range []string{"orphan", "better-placed", "leave"} {
		m.OwnershipChanges.WithLabelValues(reason)
	}
	for _, op := range []string{"claim", "transfer", "release", "request", "clear"} {
		m.CASConflicts.WithLabelValues(op)
	}
	for _, r := range []string{"committed", "aborted"} {
		m.BatchTransactions.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.SetsOwned, m.OwnershipChanges, m.CASConflicts, m.Writes, m.LeaseRefresh,
			m.LeaseFailures, m.Fenced, m.WatchReconnects, m.ReconcileSeconds, m.BatchTransactions, m.WriteWindow)
	}
	return m
}
