package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// setJSON is one set in GET /v1/smartsets.
type setJSON struct {
	Name          string `json:"name"`
	Location      string `json:"location"`
	Owner         string `json:"owner"`
	OwnerEndpoint string `json:"owner_endpoint"`
	Epoch         int64  `json:"epoch"`
	State         string `json:"state"`
}

// setsJSON is the body of GET /v1/smartsets.
type setsJSON struct {
	Agent string    `json:"agent"`
	Index int64     `json:"index"`
	Sets  []setJSON `json:"sets"`
}

// list is one reading of every set, with the list's index.
type list struct {
	gen   <-chan struct{} // the SwarmChanges channel it was read under; nil: not shared
	infos []SetInfo       // sorted by name
	index int64
}

// listBase is where list indexes count from: milliseconds since then.
var listBase = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// serveSets answers GET /v1/smartsets: every set, sorted by name, as JSON
// or CSV (columns name, location, owner, owner_endpoint, epoch, state),
// with TCS-Index. With ?index=N it waits, as a set's table does, until the
// list's index is above N: a set added or removed, an owner or epoch, an
// endpoint or a placement state changed (SwarmChanges).
//
// The list's index is this agent's: it is raised, to at least the
// milliseconds since 2024 on the wall clock, whenever the list it reads
// differs from the last one it served. So it only grows, and an index from
// another agent is about comparable: at worst a read waits for the next
// change, or answers once with the same list.
func (s *Server) serveSets(w http.ResponseWriter, r *http.Request) {
	f, aerr := negotiate(r)
	if aerr != nil {
		s.writeError(w, r, aerr)
		return
	}
	q, aerr := parseRead(r)
	if aerr != nil {
		s.writeError(w, r, aerr)
		return
	}
	var expired <-chan time.Time
	blocking := q.blocking() && s.opts.SwarmChanges != nil
	if blocking {
		t := time.NewTimer(q.wait)
		defer t.Stop()
		expired = t.C
		extendDeadlines(w, q.wait+s.opts.WriteTimeout)
	}
	for {
		var changed <-chan struct{}
		release := func() {}
		if blocking {
			changed, release = s.opts.SwarmChanges.Changed()
		}
		l, err := s.readList(r.Context(), changed)
		if err != nil {
			release()
			s.log.WithError(err).Warn("cannot list the SmartSets")
			s.writeError(w, r, unavailable("", "cannot read the directory: %v", err))
			return
		}
		if blocking && l.index <= q.index {
			select {
			case <-changed:
			case <-expired:
				blocking = false
			case <-s.closing:
				blocking = false
			case <-r.Context().Done():
				release()
				return
			}
			release()
			continue
		}
		release()
		s.writeList(w, r, l, f)
		return
	}
}

// readList reads every set. Reads under the same SwarmChanges channel
// share one reading: the waiters woken by one change read the directory
// once.
func (s *Server) readList(ctx context.Context, gen <-chan struct{}) (*list, error) {
	if gen != nil {
		s.listMu.Lock()
		defer s.listMu.Unlock()
		if s.lastList != nil && s.lastList.gen == gen {
			return s.lastList, nil
		}
	}
	infos, err := s.sw.Sets(ctx)
	if err != nil {
		return nil, err
	}
	infos = slices.Clone(infos)
	slices.SortFunc(infos, func(a, b SetInfo) int { return strings.Compare(a.Name, b.Name) })
	b, _ := json.Marshal(infos) // cannot fail: strings, integers, booleans
	sum := sha256.Sum256(b)
	if gen == nil {
		s.listMu.Lock()
		defer s.listMu.Unlock()
	}
	if sum != s.listHash || s.listIndex == 0 {
		s.listHash = sum
		s.listIndex = max(s.listIndex+1, int64(time.Since(listBase)/time.Millisecond))
	}
	l := &list{gen: gen, infos: infos, index: s.listIndex}
	if gen != nil {
		s.lastList = l
	}
	return l, nil
}

// writeList answers with l in format f.
func (s *Server) writeList(w http.ResponseWriter, r *http.Request, l *list, f format) {
	var body []byte
	h := w.Header()
	switch f {
	case formatCSV:
		var buf bytes.Buffer
		cw := csv.NewWriter(&buf)
		cw.Write([]string{"name", "location", "owner", "owner_endpoint", "epoch", "state"})
		for _, in := range l.infos {
			cw.Write([]string{in.Name, in.Location, in.Owner, in.OwnerEndpoint, strconv.FormatInt(in.Epoch, 10), in.State})
		}
		cw.Flush()
		body = buf.Bytes()
		h.Set("Content-Type", contentCSV)
	default:
		out := setsJSON{Agent: s.sw.Name(), Index: l.index, Sets: make([]setJSON, 0, len(l.infos))}
		for _, in := range l.infos {
			out.Sets = append(out.Sets, setJSON{Name: in.Name, Location: in.Location, Owner: in.Owner,
				OwnerEndpoint: in.OwnerEndpoint, Epoch: in.Epoch, State: in.State})
		}
		body, _ = json.Marshal(out) // cannot fail: strings and integers
		body = append(body, '\n')
		h.Set("Content-Type", contentJSON)
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-cache")
	h.Set("Vary", "Accept")
	h.Set("Tcs-Index", strconv.FormatInt(l.index, 10))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}
