package statuspage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"html/template"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"tcs/ldapdir"
)

// Options configure a Page.
type Options struct {
	Agent     string             // this agent's name, shown in the header
	Directory *ldapdir.Dir       // read and watched for the page's state
	Logger    logrus.FieldLogger // nil: no logging
}

// Defaults of a Page; tests shorten them.
const (
	defaultLinger    = 30 * time.Second       // the watch outlives the last viewer by this
	defaultDebounce  = 100 * time.Millisecond // changes within this are pushed as one state
	defaultHeartbeat = 15 * time.Second       // a comment on idle streams, so proxies keep them
	defaultSyncWait  = 3 * time.Second        // first state without a synced watch after this
	defaultPrime     = 10 * time.Second       // a watch a page load started waits this long for its stream
	readTimeout      = 5 * time.Second        // /ui/state reading the directory
	streamWriteLimit = 20 * time.Second       // one write to a stream must finish within this
)

// Page is the live status page: an http.Handler for "/" and everything
// under "/ui/". Make it with New; Close it when the server has stopped.
type Page struct {
	agent string
	dir   *ldapdir.Dir
	log   logrus.FieldLogger
	index asset
	done  chan struct{} // closed by Close: every stream ends

	// Timings, set by New; tests change them before the first request.
	linger, debounce, heartbeat, syncWait, primeLinger time.Duration

	mu         sync.Mutex
	closed     bool
	subs       map[*subscriber]struct{}
	feed       *feed       // the running watch, nil when none
	latest     []byte      // the feed's last state JSON, nil until its first
	latestItem *item       // the same with its sequence number and delta
	lingerStop *time.Timer // stops the feed when no viewer came back
	lingerGen  int         // invalidates a linger timer that fired late
	streams    sync.WaitGroup
	shutdowns  map[*http.Server]chan struct{} // closed when that server shuts down
	holders    int                            // unreleased Changed channels: they keep the watch running too
	changed    chan struct{}                  // closed at the next published state (Changed)
	closeOnce  sync.Once
}

// New returns the page of agent opts.Agent over opts.Directory. It starts
// nothing: the directory watch runs only while someone is looking.
func New(opts Options) *Page {
	log := opts.Logger
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}
	return &Page{
		agent:       opts.Agent,
		dir:         opts.Directory,
		log:         log.WithField("component", "statuspage"),
		index:       renderIndex(opts.Agent),
		done:        make(chan struct{}),
		linger:      defaultLinger,
		debounce:    defaultDebounce,
		heartbeat:   defaultHeartbeat,
		syncWait:    defaultSyncWait,
		primeLinger: defaultPrime,
		subs:        map[*subscriber]struct{}{},
		shutdowns:   map[*http.Server]chan struct{}{},
	}
}

// ServeHTTP serves GET "/" (the page), "/ui/app.js", "/ui/style.css",
// "/ui/state" (JSON) and "/ui/events" (Server-Sent Events); any other path
// under "/ui/" is 404.
func (p *Page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, r, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: use GET or HEAD")
		return
	}
	switch path := r.URL.EscapedPath(); path {
	case "/":
		p.prime(r)
		p.index.serve(w, r, true)
	case "/ui/app.js":
		appJS.serve(w, r, false)
	case "/ui/style.css":
		styleCSS.serve(w, r, false)
	case "/ui/state":
		p.serveState(w, r)
	case "/ui/events":
		p.serveEvents(w, r)
	default:
		writeError(w, r, http.StatusNotFound, "no such resource: "+path)
	}
}

// Close stops the directory watch and ends every event stream, and waits
// for the streams to return. Idempotent.
func (p *Page) Close() {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		close(p.done)
		if p.lingerStop != nil {
			p.lingerStop.Stop()
			p.lingerStop = nil
		}
		f := p.feed
		p.feed, p.latest, p.latestItem = nil, nil, nil
		if p.changed != nil {
			close(p.changed) // waiting blocking reads answer
			p.changed = nil
		}
		p.mu.Unlock()
		if f != nil {
			f.stop()
		}
		p.streams.Wait()
	})
}

// serveState answers GET /ui/state: the running watch's last state, or
// one read of the directory when no watch runs.
func (p *Page) serveState(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	b := p.latest
	p.mu.Unlock()
	if b == nil && p.dir == nil {
		writeError(w, r, http.StatusServiceUnavailable, "the status page has no directory")
		return
	}
	if b == nil {
		ctx, cancel := context.WithTimeout(r.Context(), readTimeout)
		snap, err := p.dir.Snapshot(ctx)
		cancel()
		if snap == nil {
			p.log.WithError(err).Warn("status page: cannot read the directory")
			writeError(w, r, http.StatusServiceUnavailable, "cannot read the directory: "+err.Error())
			return
		}
		if err != nil {
			p.log.WithError(err).Debug("status page: entries left out of the state")
		}
		b, _ = json.Marshal(build(p.agent, snap, true, time.Now())) // cannot fail: strings, numbers, a time
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(b)
		w.Write([]byte{'\n'})
	}
}

// writeError answers with {"error": msg}, like the HTTP API.
func writeError(w http.ResponseWriter, r *http.Request, code int, msg string) {
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		w.Write(b)
	}
}

//go:embed assets
var assets embed.FS

// asset is one embedded file ready to serve.
type asset struct {
	name, contentType, etag string
	body                    []byte
}

var (
	appJS    = load("app.js", "text/javascript; charset=utf-8")
	styleCSS = load("style.css", "text/css; charset=utf-8")
	indexTpl = template.Must(template.ParseFS(assets, "assets/index.html"))
)

func load(name, contentType string) asset {
	b, err := assets.ReadFile("assets/" + name)
	if err != nil {
		panic(err) // embedded at build time
	}
	return newAsset(name, contentType, b)
}

func newAsset(name, contentType string, b []byte) asset {
	sum := sha256.Sum256(b)
	return asset{name: name, contentType: contentType, body: b, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
}

// renderIndex fills the agent's name into the page.
func renderIndex(agent string) asset {
	var buf bytes.Buffer
	if err := indexTpl.Execute(&buf, struct{ Agent string }{agent}); err != nil {
		panic(err) // a string into a fixed template
	}
	return newAsset("index.html", "text/html; charset=utf-8", buf.Bytes())
}

// contentSecurityPolicy allows the page its own script and style only;
// fetches may go to other agents (a table redirects to its owner).
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self' http: https:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// serve answers with the asset, revalidated on every use (no-cache with an
// ETag: a new binary's page is picked up at once, an unchanged one costs a
// 304).
func (a asset) serve(w http.ResponseWriter, r *http.Request, page bool) {
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	if page {
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("Referrer-Policy", "no-referrer")
	}
	http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.body))
}
