package client

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Table is one answer for a SmartSet: its rows and where they came from.
type Table struct {
	Set     string   `json:"set"`
	Epoch   int64    `json:"epoch"` // TCS-Epoch: the fencing token of the owner that served it
	Index   int64    `json:"index"` // TCS-Index: only grows for a set, across changes and owners
	Owner   string   `json:"owner"`
	Columns []string `json:"columns"` // "dn" first
	// Rows hold one entry each: Rows[i][j] is every value of Columns[j]
	// (Rows[i][0] the entry's DN).
	Rows [][][]string `json:"rows"`

	Refreshed time.Time     `json:"refreshed"` // when the owner last read the rows (zero: unknown)
	Age       time.Duration `json:"-"`         // how old the rows were when served
	// Stale: the rows are the last good ones, not current (the source is
	// down, or Fenced).
	Stale bool `json:"stale"`
	// Fenced: a stale read (Options.Stale) from an agent that is fenced:
	// it may no longer own the set.
	Fenced bool   `json:"fenced,omitempty"`
	Agent  string `json:"agent"` // the URL that answered (after redirects)
}

// newer reports whether t is above (epoch, index).
func (t *Table) newer(epoch, index int64) bool {
	return t.Epoch > epoch || (t.Epoch == epoch && t.Index > index)
}

// wireTable is the JSON of GET /v1/smartsets/{name}.
type wireTable struct {
	Set        string                       `json:"set"`
	Epoch      int64                        `json:"epoch"`
	Index      int64                        `json:"index"`
	Owner      string                       `json:"owner"`
	Columns    []string                     `json:"columns"`
	Rows       []map[string]json.RawMessage `json:"rows"`
	Refreshed  *time.Time                   `json:"refreshed"`
	Stale      bool                         `json:"stale"`
	Fenced     bool                         `json:"fenced"`
	AgeSeconds float64                      `json:"age_seconds"`
}

// decodeTable reads a 200 answer's body and headers. The headers win over
// the body where both say (they are what proxies and curl users see).
func decodeTable(body []byte, h http.Header, from string) (Table, error) {
	var w wireTable
	if err := json.Unmarshal(body, &w); err != nil {
		return Table{}, fmt.Errorf("client: table from %s is not the API's JSON: %w", from, err)
	}
	t := Table{Set: w.Set, Epoch: w.Epoch, Index: w.Index, Owner: w.Owner, Columns: w.Columns,
		Stale: w.Stale, Fenced: w.Fenced, Agent: from, Age: time.Duration(w.AgeSeconds * float64(time.Second))}
	if w.Refreshed != nil {
		t.Refreshed = *w.Refreshed
	}
	if v, err := strconv.ParseInt(h.Get("Tcs-Epoch"), 10, 64); err == nil {
		t.Epoch = v
	}
	if v, err := strconv.ParseInt(h.Get("Tcs-Index"), 10, 64); err == nil {
		t.Index = v
	}
	t.Stale = t.Stale || h.Get("Tcs-Stale") == "true"
	t.Fenced = t.Fenced || h.Get("Tcs-Fenced") == "true"
	t.Rows = make([][][]string, len(w.Rows))
	for i, r := range w.Rows {
		row := make([][]string, len(t.Columns))
		for j, col := range t.Columns {
			raw, ok := r[col]
			if !ok {
				row[j] = []string{}
				continue
			}
			var one string
			if err := json.Unmarshal(raw, &one); err == nil {
				row[j] = []string{one}
				continue
			}
			var many []string
			if err := json.Unmarshal(raw, &many); err != nil {
				return Table{}, fmt.Errorf("client: table from %s: row %d column %q: %w", from, i, col, err)
			}
			row[j] = many
		}
		t.Rows[i] = row
	}
	return t, nil
}
