package httpapi

import (
	"bytes"
	"encoding/csv"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"tcs/tablecache"
)

// rendered is one version of one table (one ETag) in both formats. Its
// fields are read-only once made, and the header values are shared by
// every response that sends them.
type rendered struct {
	etag, owner string // the table's ETag and the agent name it was rendered with

	index              int64    // the table's Index
	epoch              []string // TCS-Epoch
	indexHdr           []string // TCS-Index
	ownerHdr           []string // TCS-Owner
	jsonETag, csvETag  []string // ETag of each format; nil when the table has none
	jsonOnce, csvOnce  sync.Once
	jsonHead, csvBytes []byte // JSON up to and with `"row_count":n,`; the whole CSV
}

func newRendered(t tablecache.Table, owner string) *rendered {
	rd := &rendered{
		etag:     t.ETag,
		owner:    owner,
		index:    t.Index,
		epoch:    []string{strconv.FormatInt(t.Epoch, 10)},
		indexHdr: []string{strconv.FormatInt(t.Index, 10)},
		ownerHdr: []string{owner},
	}
	if tag := quoteETag(t.ETag); tag != "" {
		rd.jsonETag = []string{tag}
		rd.csvETag = []string{csvETag(tag)}
	}
	return rd
}

// json is the cached head of the JSON body of t, which rd was made from.
func (rd *rendered) json(t *tablecache.Table) []byte {
	rd.jsonOnce.Do(func() { rd.jsonHead = appendTableJSON(nil, t, rd.owner) })
	return rd.jsonHead
}

// csv is the cached CSV body of t, which rd was made from.
func (rd *rendered) csv(t *tablecache.Table) []byte {
	rd.csvOnce.Do(func() { rd.csvBytes = tableCSV(t) })
	return rd.csvBytes
}

// memo keeps the rendered bytes of the current version of each table,
// keyed by set name. An entry is replaced when its table's ETag changes,
// dropped when its set is asked for and is not served here, and swept when
// as many entries have been added since the last sweep as that sweep kept
// (at least minSweep): every entry whose table is gone or has another ETag
// goes then. So the memo holds at most about twice the tables served plus
// minSweep, and sweeping costs O(1) a render, amortized.
type memo struct {
	tables Tables

	mu      sync.RWMutex
	m       map[string]*rendered
	inserts int // since the last sweep
	kept    int // entries the last sweep kept
}

// minSweep is the least number of inserts between two sweeps.
const minSweep = 64

// get returns the rendered bytes of t, the current table of set name.
func (m *memo) get(name string, t *tablecache.Table, owner string) *rendered {
	if t.ETag == "" { // nothing to key it by
		return newRendered(*t, owner)
	}
	m.mu.RLock()
	rd := m.m[name]
	m.mu.RUnlock()
	if rd != nil && rd.etag == t.ETag && rd.index == t.Index && rd.owner == owner {
		return rd
	}
	rd = newRendered(*t, owner)
	m.mu.Lock()
	if m.m == nil {
		m.m = map[string]*rendered{}
	}
	m.m[name] = rd
	m.inserts++
	sweep := m.inserts >= max(m.kept, minSweep)
	if sweep {
		m.inserts = 0
	}
	m.mu.Unlock()
	if sweep {
		m.sweep()
	}
	return rd
}

// drop forgets the rendered bytes of set name.
func (m *memo) drop(name string) {
	m.mu.RLock()
	_, ok := m.m[name]
	m.mu.RUnlock()
	if ok {
		m.mu.Lock()
		delete(m.m, name)
		m.mu.Unlock()
	}
}

// sweep drops every entry whose table is gone or has another ETag now.
// Tables.Get is called without holding the lock.
func (m *memo) sweep() {
	m.mu.RLock()
	entries := make(map[string]*rendered, len(m.m))
	for name, rd := range m.m {
		entries[name] = rd
	}
	m.mu.RUnlock()
	for name, rd := range entries {
		if t, ok := m.tables.Get(name); ok && !t.Failed && t.ETag == rd.etag && t.Index == rd.index {
			delete(entries, name) // current: keep
		}
	}
	m.mu.Lock()
	for name, rd := range entries {
		if m.m[name] == rd { // not replaced meanwhile
			delete(m.m, name)
		}
	}
	m.kept = len(m.m)
	m.mu.Unlock()
}

// len is the number of entries, for tests.
func (m *memo) len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.m)
}

// appendTableJSON appends the head of t's JSON object: every member whose
// value depends only on the table version, in this order:
//
//	{"set":…,"epoch":…,"index":…,"owner":…,"columns":[…],"rows":[{"dn":"…","<col>":["v",…],…},…],"row_count":n,
//
// Row members follow the column order; "dn" (the first column) is a
// string, every other column an array of all its values.
func appendTableJSON(b []byte, t *tablecache.Table, owner string) []byte {
	b = append(b, `{"set":`...)
	b = appendString(b, t.Set)
	b = append(b, `,"epoch":`...)
	b = strconv.AppendInt(b, t.Epoch, 10)
	b = append(b, `,"index":`...)
	b = strconv.AppendInt(b, t.Index, 10)
	b = append(b, `,"owner":`...)
	b = appendString(b, owner)
	b = append(b, `,"columns":[`...)
	for j, col := range t.Columns {
		if j > 0 {
			b = append(b, ',')
		}
		b = appendString(b, col)
	}
	b = append(b, `],"rows":[`...)
	for i, row := range t.Rows {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		for j, col := range t.Columns {
			if j > 0 {
				b = append(b, ',')
			}
			b = appendString(b, col)
			b = append(b, ':')
			var vals []string
			if j < len(row) {
				vals = row[j]
			}
			if j == 0 && col == "dn" {
				dn := ""
				if len(vals) > 0 {
					dn = vals[0]
				}
				b = appendString(b, dn)
				continue
			}
			b = append(b, '[')
			for k, v := range vals {
				if k > 0 {
					b = append(b, ',')
				}
				b = appendString(b, v)
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	b = append(b, `],"row_count":`...)
	b = strconv.AppendInt(b, int64(len(t.Rows)), 10)
	return append(b, ',')
}

// appendTableTail appends the members of t's JSON object that change
// without the table changing, and closes the object:
//
//	"refreshed":"<RFC 3339>"|null,"stale":bool,"age_seconds":s[,"fenced":true][,"error":"…"]}
//
// "error" is there only when the table is stale, "fenced" only on a stale
// read from a fenced agent (which is stale by definition).
func appendTableTail(b []byte, t *tablecache.Table, now time.Time, fenced bool) []byte {
	b = append(b, `"refreshed":`...)
	if t.Refreshed.IsZero() {
		b = append(b, "null"...)
	} else {
		b = append(b, '"')
		b = t.Refreshed.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	b = append(b, `,"stale":`...)
	b = strconv.AppendBool(b, t.Stale || fenced)
	b = append(b, `,"age_seconds":`...)
	b = strconv.AppendFloat(b, max(t.Age(now).Seconds(), 0), 'f', 3, 64)
	if fenced {
		b = append(b, `,"fenced":true`...)
	}
	if t.Stale {
		b = append(b, `,"error":`...)
		b = appendString(b, t.Err)
	}
	return append(b, "}\n"...)
}

// tableCSV is t as CSV: a header row with the column names, then one line
// per row; the values of a multi-valued cell are joined with ";".
func tableCSV(t *tablecache.Table) []byte {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Write(t.Columns) // cannot fail: writes to a bytes.Buffer
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
	return buf.Bytes()
}

// quoteETag returns etag as a valid entity tag: as is when it is one
// (quoted, optionally weak), else quoted, with any '"' in it dropped.
func quoteETag(etag string) string {
	if etag == "" {
		return ""
	}
	op := strings.TrimPrefix(etag, "W/")
	if len(op) >= 2 && op[0] == '"' && op[len(op)-1] == '"' && !strings.Contains(op[1:len(op)-1], `"`) {
		return etag
	}
	return `"` + strings.ReplaceAll(etag, `"`, "") + `"`
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// as encoding/json does; U+2028 and U+2029 are escaped so the JSON is
// also valid JavaScript.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
