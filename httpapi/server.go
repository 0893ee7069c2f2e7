package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"
)

// Server is the HTTP API of one agent. Make it with New; its handler may
// serve any number of listeners at once.
type Server struct {
	sw         Swarm
	tables     Tables
	opts       Options
	log        logrus.FieldLogger
	retryAfter string // Retry-After of 503s
	metrics    *metrics
	memo       memo
	promhttp   http.Handler
	status     http.Handler
	now        func() time.Time // the clock for table ages
	changes    Changes          // tables' change notifications; nil: ?index= answers at once
	standing   Standing         // the agent's fencing; nil: no stale reads
	closing    chan struct{}    // closed when Serve starts shutting down: waiting requests answer
	closeOnce  sync.Once

	listMu    sync.Mutex
	listHash  [32]byte // of the last list read
	listIndex int64    // the list's TCS-Index
	lastList  *list    // shared by the blocking reads woken by one change
}

// New returns the API of the agent sw, serving the tables of the sets it
// owns from tables. The HTTP metrics are registered on opts.Registerer;
// a second Server on the same Registerer shares them.
func New(sw Swarm, tables Tables, opts Options) *Server {
	opts = opts.withDefaults()
	s := &Server{
		sw:         sw,
		tables:     tables,
		opts:       opts,
		log:        opts.Logger.WithField("component", "httpapi"),
		retryAfter: retryAfterSeconds(opts.RetryAfter),
		metrics:    newMetrics(opts.Registerer),
		memo:       memo{tables: tables},
		now:        time.Now,
		closing:    make(chan struct{}),
	}
	s.changes, _ = tables.(Changes)
	s.standing, _ = sw.(Standing)
	s.promhttp = promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{ErrorLog: s.log})
	s.status = opts.StatusPage
	if s.status == nil {
		s.status = http.HandlerFunc(s.serveStatusPage)
	}
	return s
}

// Handler returns the handler of every route. It routes on the raw
// request path itself (no path cleaning, no redirects), recovers panics
// into 500s and records the HTTP metrics.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(s.serveHTTP)
}

// Serve serves the API on ln until ctx ends, then shuts down gracefully:
// it stops accepting, lets in-flight requests finish within
// Options.ShutdownTimeout, then closes what is left. It closes ln. It
// returns nil after a clean shutdown, and an error when serving fails or
// the shutdown timed out.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadTimeout:       s.opts.ReadTimeout,
		ReadHeaderTimeout: s.opts.ReadHeaderTimeout,
		WriteTimeout:      s.opts.WriteTimeout,
		IdleTimeout:       s.opts.IdleTimeout,
		MaxHeaderBytes:    s.opts.MaxHeaderBytes,
		ErrorLog:          log.New(logWriter{s.log}, "", 0),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	srv.RegisterOnShutdown(func() { s.closeOnce.Do(func() { close(s.closing) }) })
	addr := ln.Addr().String()
	s.log.WithField("addr", addr).Info("serving HTTP")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("httpapi: serving on %s: %w", addr, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		<-errc
		return fmt.Errorf("httpapi: shutting down on %s (in-flight requests cut after %v): %w", addr, s.opts.ShutdownTimeout, err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("httpapi: serving on %s: %w", addr, err)
	}
	s.log.WithField("addr", addr).Info("HTTP server shut down")
	return nil
}

// routeOf maps the raw (escaped) path onto a route, and for routeSet
// returns the rest of the path after "/v1/smartsets/".
func routeOf(path string) (route, string) {
	switch path {
	case "/v1/smartsets", "/v1/smartsets/":
		return routeSets, ""
	case "/healthz":
		return routeHealthz, ""
	case "/readyz":
		return routeReadyz, ""
	case "/metrics":
		return routeMetrics, ""
	case "/":
		return routeStatus, ""
	}
	if rest, ok := strings.CutPrefix(path, "/v1/smartsets/"); ok {
		return routeSet, rest
	}
	if strings.HasPrefix(path, "/ui/") { // the status page's assets and event stream
		return routeStatus, ""
	}
	return routeOther, ""
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rt, rest := routeOf(r.URL.EscapedPath())
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		p := recover()
		if p == nil {
			s.metrics.observe(rt, sw.status(), start)
			return
		}
		if p != http.ErrAbortHandler {
			s.log.WithFields(logrus.Fields{"method": r.Method, "path": r.URL.EscapedPath(), "route": rt.String()}).
				Errorf("panic serving HTTP: %v\n%s", p, debug.Stack())
		}
		if sw.code != 0 || p == http.ErrAbortHandler {
			// Too late for an error answer: cut the connection so the
			// client sees the answer is incomplete.
			s.metrics.observe(rt, http.StatusInternalServerError, start)
			panic(http.ErrAbortHandler)
		}
		clear(sw.Header()) // what the handler had set is not about this answer
		s.writeError(sw, r, &apiError{code: http.StatusInternalServerError, msg: "internal error"})
		s.metrics.observe(rt, sw.status(), start)
	}()
	sw.Header().Set("X-Content-Type-Options", "nosniff")
	// The API is read-only and public within the swarm: a status page
	// served by one agent may follow a 307 to another agent's table.
	sw.Header().Set("Access-Control-Allow-Origin", "*")
	if rt == routeOther {
		s.writeError(sw, r, &apiError{code: http.StatusNotFound, msg: "no such resource: " + r.URL.EscapedPath()})
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		s.writeError(sw, r, &apiError{code: http.StatusMethodNotAllowed, allow: true,
			msg: fmt.Sprintf("method %s not allowed: use GET or HEAD", r.Method)})
		return
	}
	switch rt {
	case routeSets:
		s.serveSets(sw, r)
	case routeSet:
		s.serveSet(sw, r, rest)
	case routeHealthz:
		writeText(sw, r, http.StatusOK, "ok")
	case routeReadyz:
		s.serveReadyz(sw, r)
	case routeMetrics:
		s.promhttp.ServeHTTP(sw, r)
	case routeStatus:
		s.status.ServeHTTP(sw, r)
	}
}

// serveReadyz answers 200 when the agent is registered and its watch is
// in the persist phase, else 503 with the reason.
func (s *Server) serveReadyz(w http.ResponseWriter, r *http.Request) {
	if ok, why := s.sw.Ready(); !ok {
		if why == "" {
			why = "not ready"
		}
		s.writeError(w, r, &apiError{code: http.StatusServiceUnavailable, retryAfter: true, msg: "not ready: " + why})
		return
	}
	writeText(w, r, http.StatusOK, "ok")
}

// statusWriter remembers the status code written, for the metrics and the
// panic handler.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 && code >= 200 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

// logWriter carries net/http's own error log (TLS handshakes, bad
// requests on the wire) into the logger, one entry a line.
type logWriter struct{ log logrus.FieldLogger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.Warn(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
