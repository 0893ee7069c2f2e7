package httpapi

import (
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
)

// Options configure a Server. The zero value is usable: every zero field
// takes its default.
type Options struct {
	// Server timeouts; defaults 10s, 30s, 60s. ShutdownTimeout (default
	// 10s) bounds how long Serve waits for in-flight requests when its
	// context ends.
	ReadTimeout, WriteTimeout, IdleTimeout, ShutdownTimeout time.Duration
	// ReadHeaderTimeout bounds reading the request headers (default 5s).
	ReadHeaderTimeout time.Duration
	// MaxHeaderBytes bounds the request headers (default 65536; net/http
	// allows 4 KiB of slack over it). Bigger headers get 431.
	MaxHeaderBytes int
	// RetryAfter is what 503s ask clients to wait (default 1s), rounded up
	// to whole seconds in the Retry-After header.
	RetryAfter time.Duration
	Logger     logrus.FieldLogger    // nil: no logging
	Gatherer   prometheus.Gatherer   // what /metrics serves (nil: a fresh registry)
	Registerer prometheus.Registerer // where the HTTP metrics go (nil: not registered)
	StatusPage http.Handler          // served at "/" and under "/ui/" (nil: a small built-in HTML page linking to the other routes)
	// SwarmChanges, when set, makes GET /v1/smartsets?index= wait for a
	// change of the list (nil: such reads answer at once).
	SwarmChanges SwarmChanges
}

// Defaults of Options.
const (
	DefaultReadTimeout       = 10 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultShutdownTimeout   = 10 * time.Second
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultRetryAfter        = time.Second
)

// withDefaults returns o with every zero field set to its default.
func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.ReadTimeout, DefaultReadTimeout)
	def(&o.WriteTimeout, DefaultWriteTimeout)
	def(&o.IdleTimeout, DefaultIdleTimeout)
	def(&o.ShutdownTimeout, DefaultShutdownTimeout)
	def(&o.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&o.RetryAfter, DefaultRetryAfter)
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if o.Logger == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		o.Logger = l
	}
	if o.Gatherer == nil {
		o.Gatherer = prometheus.NewRegistry()
	}
	return o
}
