package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"tcs/client"
	"tcs/config"
)

// get is `tcs-agent get`: the table of one set, read through the swarm
// with the client package (the configured agent first, then every live
// agent the directory lists), as JSON or CSV; with watch, every newer
// table until ctx ends, one after the other.
func get(ctx context.Context, cfg *config.Config, out, errOut io.Writer, set string, watch bool, format string) error {
	c, err := client.New(endpoints(ctx, cfg), client.Options{})
	if err != nil {
		return err
	}
	if !watch {
		t, err := c.Get(ctx, set)
		if err != nil {
			return err
		}
		return writeTable(out, t, format)
	}
	for t, err := range c.Watch(ctx, set) {
		if err != nil {
			return err
		}
		fmt.Fprintf(errOut, "%s  %s: epoch %d, index %d, owner %s, %d rows%s\n", time.Now().Format("15:04:05.000"),
			t.Set, t.Epoch, t.Index, t.Owner, len(t.Rows), staleNote(t))
		if err := writeTable(out, t, format); err != nil {
			return err
		}
		if format == "csv" {
			fmt.Fprintln(out) // a blank line between tables
		}
	}
	return nil
}

// endpoints are the agents to ask: this configuration's own advertised
// endpoint, then the tcsEndpoint of every live agent in the directory
// (when it can be read within a few seconds).
func endpoints(ctx context.Context, cfg *config.Config) []string {
	eps := []string{cfg.Service.Advertise}
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	dir, err := openDir(cfg, quiet)
	if err != nil {
		return eps
	}
	defer dir.Close()
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	svcs, _ := dir.Services(rctx)
	for _, s := range svcs {
		if s.Endpoint != "" && s.Endpoint != cfg.Service.Advertise {
			eps = append(eps, s.Endpoint)
		}
	}
	return eps
}

func staleNote(t client.Table) string {
	switch {
	case t.Fenced:
		return " (stale: from a fenced agent)"
	case t.Stale:
		return " (stale: the source is down)"
	}
	return ""
}

// writeTable writes t as the API does: JSON (one object, on one line) or
// CSV (a header line, then one line per row, multiple values joined with ";").
func writeTable(out io.Writer, t client.Table, format string) error {
	if format == "csv" {
		w := csv.NewWriter(out)
		w.Write(t.Columns)
		rec := make([]string, len(t.Columns))
		for _, row := range t.Rows {
			for j := range rec {
				rec[j] = ""
				if j < len(row) {
					rec[j] = strings.Join(row[j], ";")
				}
			}
			w.Write(rec)
		}
		w.Flush()
		return w.Error()
	}
	rows := make([]json.RawMessage, len(t.Rows))
	for i, row := range t.Rows {
		rows[i] = rowJSON(t.Columns, row)
	}
	b, err := json.Marshal(struct {
		Set     string            `json:"set"`
		Epoch   int64             `json:"epoch"`
		Index   int64             `json:"index"`
		Owner   string            `json:"owner"`
		Agent   string            `json:"agent"`
		Stale   bool              `json:"stale"`
		Fenced  bool              `json:"fenced,omitempty"`
		Columns []string          `json:"columns"`
		Rows    []json.RawMessage `json:"rows"`
	}{t.Set, t.Epoch, t.Index, t.Owner, t.Agent, t.Stale, t.Fenced, t.Columns, rows})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "%s\n", b)
	return err
}

// rowJSON is one row as the API writes it: an object with the columns in
// their order, "dn" a string, every other column an array of its values.
func rowJSON(cols []string, row [][]string) json.RawMessage {
	b := []byte{'{'}
	for j, col := range cols {
		if j > 0 {
			b = append(b, ',')
		}
		k, _ := json.Marshal(col)
		b = append(b, k...)
		b = append(b, ':')
		var vals []string
		if j < len(row) {
			vals = row[j]
		}
		var v []byte
		if j == 0 && col == "dn" && len(vals) > 0 {
			v, _ = json.Marshal(vals[0])
		} else {
			if vals == nil {
				vals = []string{}
			}
			v, _ = json.Marshal(vals)
		}
		b = append(b, v...)
	}
	return append(b, '}')
}
