package httpapi

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"tcs/tablecache"
)

// serveSet answers GET /v1/smartsets/{name}; raw is the escaped name from
// the request path. In order: a bad name is 400, a bad format, Accept or
// query 400 or 406; a set this agent owns is its table (503 while it
// loads, 502 when its query failed); with ?stale=1 a fenced agent answers
// with the last table of a set it owned, marked stale and fenced; a set
// owned by another live agent is a 307 to that agent; an unknown set is
// 404; anything else (orphaned, fenced, changing hands, directory
// unreadable) is 503 with Retry-After.
//
// With ?index=N the request waits while this agent serves the set and its
// TCS-Index is not above N (or the table is still loading), until the wait
// ends or the server shuts down; it is answered at once when the agent
// stops serving the set (a 307 to the new owner, or 503).
func (s *Server) serveSet(w http.ResponseWriter, r *http.Request, raw string) {
	name, err := checkName(raw)
	if err != nil {
		s.writeError(w, r, badRequest("bad SmartSet name: %v", err))
		return
	}
	f, aerr := negotiate(r)
	if aerr == nil {
		var q readQuery
		if q, aerr = parseRead(r); aerr == nil {
			s.serveSetAt(w, r, name, f, q)
			return
		}
	}
	aerr.set = name
	s.writeError(w, r, aerr)
}

// serveSetAt answers for set name once the request is understood.
func (s *Server) serveSetAt(w http.ResponseWriter, r *http.Request, name string, f format, q readQuery) {
	var expired <-chan time.Time
	blocking := q.blocking() && s.changes != nil
	if blocking {
		t := time.NewTimer(q.wait)
		defer t.Stop()
		expired = t.C
		extendDeadlines(w, q.wait+s.opts.WriteTimeout)
	}
	for {
		var changed, fence <-chan struct{}
		if blocking {
			changed = s.changes.Changed(name) // before looking: a change in between closes it
			if s.standing != nil {
				fence = s.standing.FenceChanged()
			}
		}
		a := s.lookup(name, q.stale)
		if blocking && a.here && (!a.ready || a.t.Index <= q.index) {
			select {
			case <-changed:
				continue
			case <-fence:
				continue
			case <-expired:
				blocking = false // answer with what there is now
				continue
			case <-s.closing:
				blocking = false
				continue
			case <-r.Context().Done():
				return
			}
		}
		switch {
		case !a.here:
			s.memo.drop(name)
			s.serveElsewhere(w, r, name)
		case a.err != nil:
			s.memo.drop(name)
			if a.ready {
				w.Header().Set("Tcs-Index", strconv.FormatInt(a.t.Index, 10))
			}
			s.writeError(w, r, a.err)
		default:
			s.writeTable(w, r, name, &a.t, f, a.fenced)
		}
		return
	}
}

// answer is what this agent has for a set now.
type answer struct {
	here   bool             // this agent serves the set (or, fenced, its last table on a stale read)
	ready  bool             // t is loaded (its Index is meaningful)
	t      tablecache.Table // the table when ready
	fenced bool             // served from a fenced agent's last view
	err    *apiError        // the error to answer instead of t
}

// lookup finds what to answer for set name: the table when this agent
// owns the set, or (stale reads) owned it in the last view it had before
// it was fenced.
func (s *Server) lookup(name string, stale bool) answer {
	epoch, ok := s.sw.Owns(name)
	fenced := false
	if !ok && stale && s.standing != nil && s.sw.Fenced() {
		epoch, ok = s.standing.LastOwned(name)
		fenced = true
	}
	if !ok {
		return answer{}
	}
	t, ok := s.tables.Get(name)
	a := answer{here: true, ready: ok, t: t, fenced: fenced}
	switch {
	case !ok:
		a.err = unavailable(name, "table loading: this agent owns the set and has not read its table yet")
	case t.Epoch != epoch:
		a.ready = false
		a.err = unavailable(name, "table loading: this agent owns the set at epoch %d and has a table of epoch %d only", epoch, t.Epoch)
	case t.Failed:
		msg := t.Err
		if msg == "" {
			msg = "the set's query failed"
		}
		a.err = &apiError{code: http.StatusBadGateway, msg: msg, set: name}
	}
	if fenced && a.err != nil {
		return answer{} // nothing good to serve stale: as any fenced answer
	}
	return a
}

// serveElsewhere answers for a set this agent does not serve: a redirect
// to its live owner, 404 when there is no such set, else 503 saying why.
func (s *Server) serveElsewhere(w http.ResponseWriter, r *http.Request, name string) {
	if s.sw.Fenced() {
		s.writeError(w, r, unavailable(name, "this agent is fenced: its lease was not renewed in time, so it serves and redirects nothing until it has registered again"))
		return
	}
	info, err := s.sw.Set(r.Context(), name)
	switch {
	case errors.Is(err, ErrUnknownSet):
		s.writeError(w, r, &apiError{code: http.StatusNotFound, msg: "no such SmartSet", set: name})
		return
	case err != nil:
		s.log.WithError(err).WithField("set", name).Warn("cannot read a SmartSet")
		s.writeError(w, r, unavailable(name, "cannot read the directory: %v", err))
		return
	}
	switch {
	case info.Owner == "" && info.OwnerDN == "":
		s.writeError(w, r, unavailable(name, "orphaned: the set has no owner; a live agent will take it over"))
	case !info.OwnerLive:
		s.writeError(w, r, unavailable(name, "orphaned: the set's owner %s is not live; a live agent will take it over", ownerName(info)))
	case strings.EqualFold(info.Owner, s.sw.Name()):
		// Never redirect to ourselves.
		s.writeError(w, r, unavailable(name, "this agent is the set's owner in the directory but is not serving it (taking it over or handing it off)"))
	case info.OwnerEndpoint == "":
		s.writeError(w, r, unavailable(name, "the set's owner %s has no tcsEndpoint", ownerName(info)))
	default:
		target, err := redirectURL(info.OwnerEndpoint, name, r.URL.RawQuery)
		if err != nil {
			s.log.WithFields(logrus.Fields{"set": name, "owner": ownerName(info), "endpoint": info.OwnerEndpoint}).
				Warn("the owner advertises an unusable tcsEndpoint")
			s.writeError(w, r, unavailable(name, "the set's owner %s advertises an unusable tcsEndpoint %q: %v", ownerName(info), info.OwnerEndpoint, err))
			return
		}
		s.writeRedirect(w, r, info, target)
	}
}

// ownerName is how messages name the owner of info.
func ownerName(info SetInfo) string {
	if info.Owner != "" {
		return strconv.Quote(info.Owner)
	}
	return strconv.Quote(info.OwnerDN)
}

// redirectURL is the URL of set name at the agent whose tcsEndpoint is
// endpoint, with the query string rawQuery. The endpoint must be an
// absolute http or https URL; a path in it is kept as a prefix.
func redirectURL(endpoint, name, rawQuery string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errors.New("not an absolute http or https URL")
	}
	prefix := strings.TrimRight(u.EscapedPath(), "/")
	u.Path = strings.TrimRight(u.Path, "/") + "/v1/smartsets/" + name
	u.RawPath = prefix + "/v1/smartsets/" + EscapeName(name)
	u.RawQuery = rawQuery
	u.Fragment, u.RawFragment = "", ""
	u.User = nil
	return u.String(), nil
}

// EscapeName is set name as one path segment: percent-encoded, and "." and
// ".." with their dots encoded too, so no client or proxy takes them for
// dot segments and resolves them away (RFC 3986 section 5.2.4).
func EscapeName(name string) string {
	switch name {
	case ".":
		return "%2E"
	case "..":
		return "%2E%2E"
	}
	return url.PathEscape(name)
}

// writeRedirect answers 307 to target, the owner's URL of the set; the
// body names the set, its owner, epoch and the target.
func (s *Server) writeRedirect(w http.ResponseWriter, r *http.Request, info SetInfo, target string) {
	b := appendString([]byte(`{"set":`), info.Name)
	b = append(b, `,"owner":`...)
	b = appendString(b, info.Owner)
	b = append(b, `,"epoch":`...)
	b = strconv.AppendInt(b, info.Epoch, 10)
	b = append(b, `,"location":`...)
	b = appendString(b, target)
	b = append(b, "}\n"...)
	h := w.Header()
	h.Set("Location", target)
	h.Set("Content-Type", contentJSON)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("Cache-Control", "no-store")
	h.Set("Tcs-Owner", info.Owner)
	h.Set("Tcs-Epoch", strconv.FormatInt(info.Epoch, 10))
	w.WriteHeader(http.StatusTemporaryRedirect)
	if r.Method != http.MethodHead {
		w.Write(b)
	}
}

// Header values shared by every table response; read-only.
var (
	hdrJSON      = []string{contentJSON}
	hdrCSV       = []string{contentCSV}
	hdrNoCache   = []string{"no-cache"}
	hdrVary      = []string{"Accept"}
	hdrTrue      = []string{"true"}
	hdrStaleWarn = []string{`110 - "Response is Stale"`}
)

// writeTable answers with table t of set name in format f, or 304 when the
// client's copy is current.
// A fenced agent's stale read also says TCS-Fenced and is stale whatever
// the table says.
func (s *Server) writeTable(w http.ResponseWriter, r *http.Request, name string, t *tablecache.Table, f format, fenced bool) {
	rd := s.memo.get(name, t, s.sw.Name())
	h := w.Header()
	etag := rd.jsonETag
	h["Content-Type"] = hdrJSON
	if f == formatCSV {
		etag = rd.csvETag
		h["Content-Type"] = hdrCSV
	}
	if etag != nil {
		h["Etag"] = etag
	}
	h["Tcs-Epoch"] = rd.epoch
	h["Tcs-Index"] = rd.indexHdr
	h["Tcs-Owner"] = rd.ownerHdr
	h["Cache-Control"] = hdrNoCache
	h["Vary"] = hdrVary
	now := s.now()
	if fenced {
		h["Tcs-Fenced"] = hdrTrue
	}
	if t.Stale || fenced {
		h["Tcs-Stale"] = hdrTrue
		h["Tcs-Age"] = []string{strconv.FormatInt(int64(max(t.Age(now), 0).Seconds()), 10)}
		h["Warning"] = hdrStaleWarn
	}
	if etag != nil {
		if inm, ok := r.Header["If-None-Match"]; ok && noneMatch(inm, etag[0]) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	if f == formatCSV {
		body := rd.csv(t)
		h["Content-Length"] = []string{strconv.Itoa(len(body))}
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			w.Write(body)
		}
		return
	}
	head := rd.json(t)
	tail := appendTableTail(make([]byte, 0, 128), t, now, fenced)
	h["Content-Length"] = []string{strconv.Itoa(len(head) + len(tail))}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(head)
		w.Write(tail)
	}
}
