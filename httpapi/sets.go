package httpapi

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
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
	Sets  []setJSON `json:"sets"`
}

// serveSets answers GET /v1/smartsets: every set, sorted by name, as JSON
// or CSV (columns name, location, owner, owner_endpoint, epoch, state).
func (s *Server) serveSets(w http.ResponseWriter, r *http.Request) {
	f, aerr := negotiate(r)
	if aerr != nil {
		s.writeError(w, r, aerr)
		return
	}
	infos, err := s.sw.Sets(r.Context())
	if err != nil {
		s.log.WithError(err).Warn("cannot list the SmartSets")
		s.writeError(w, r, unavailable("", "cannot read the directory: %v", err))
		return
	}
	infos = slices.Clone(infos)
	slices.SortFunc(infos, func(a, b SetInfo) int { return strings.Compare(a.Name, b.Name) })

	var body []byte
	h := w.Header()
	switch f {
	case formatCSV:
		var buf bytes.Buffer
		cw := csv.NewWriter(&buf)
		cw.Write([]string{"name", "location", "owner", "owner_endpoint", "epoch", "state"})
		for _, in := range infos {
			cw.Write([]string{in.Name, in.Location, in.Owner, in.OwnerEndpoint, strconv.FormatInt(in.Epoch, 10), in.State})
		}
		cw.Flush()
		body = buf.Bytes()
		h.Set("Content-Type", contentCSV)
	default:
		out := setsJSON{Agent: s.sw.Name(), Sets: make([]setJSON, 0, len(infos))}
		for _, in := range infos {
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
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}
