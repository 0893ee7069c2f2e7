package statuspage

import (
	"net/http"
	"time"
)

// serveEvents answers GET /ui/events with a Server-Sent Events stream: an
// "event: state" with the state JSON at once (or as soon as the watch has
// read the directory), again after every change, and a comment every
// p.heartbeat. The stream ends when the client goes, on Close, and when the
// HTTP server shuts down.
func (p *Page) serveEvents(w http.ResponseWriter, r *http.Request) {
	if p.dir == nil {
		writeError(w, r, http.StatusServiceUnavailable, "the status page has no directory")
		return
	}
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		return
	}
	shutdown := p.shutdownOf(r)
	sub, err := p.subscribe()
	if err != nil {
		writeError(w, r, http.StatusServiceUnavailable, "the status page is shutting down")
		return
	}
	defer p.unsubscribe(sub)

	// The server's write timeout bounds a whole answer, which would cut the
	// stream: bound each write instead. (net/http lifts the read deadline
	// itself once the request is read.)
	rc := http.NewResponseController(w)
	write := func(chunks ...[]byte) bool {
		rc.SetWriteDeadline(time.Now().Add(streamWriteLimit))
		for _, c := range chunks {
			if _, err := w.Write(c); err != nil {
				return false
			}
		}
		return rc.Flush() == nil
	}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	// retry: how long the browser waits before reconnecting (ms).
	if !write([]byte("retry: 2000\n: tcs status stream\n\n")) {
		return
	}
	heartbeat := time.NewTicker(p.heartbeat)
	defer heartbeat.Stop()
	var sent uint64 // seq of the last state this viewer has
	for {
		select {
		case it := <-sub.ch:
			// The next state after the one the viewer has: only what
			// changed. Otherwise (first, or skipped states) the whole.
			ok := false
			if it.delta != nil && sent != 0 && it.seq == sent+1 {
				ok = write(eventDelta, it.delta, eventEnd)
			} else {
				ok = write(eventState, it.full, eventEnd)
			}
			if !ok {
				return
			}
			sent = it.seq
		case <-heartbeat.C:
			if !write(comment) {
				return
			}
		case <-r.Context().Done():
			return
		case <-p.done:
			return
		case <-shutdown:
			return
		}
	}
}

var (
	eventState = []byte("event: state\ndata: ")
	eventDelta = []byte("event: delta\ndata: ")
	eventEnd   = []byte("\n\n")
	comment    = []byte(": heartbeat\n\n")
)

// shutdownOf returns a channel closed when the http.Server serving r starts
// shutting down (nil when r came another way): a graceful Shutdown waits for
// handlers, so streams must end by themselves. The hook is registered once
// per server.
func (p *Page) shutdownOf(r *http.Request) <-chan struct{} {
	srv, ok := r.Context().Value(http.ServerContextKey).(*http.Server)
	if !ok || srv == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ch, ok := p.shutdowns[srv]
	if !ok {
		ch = make(chan struct{})
		p.shutdowns[srv] = ch
		srv.RegisterOnShutdown(func() { close(ch) })
	}
	return ch
}
