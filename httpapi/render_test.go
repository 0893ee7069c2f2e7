package httpapi

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"tcs/tablecache"
)

// appendString writes what encoding/json reads back as the string
// encoding/json itself would have written.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", `q"uote\back`, "ctl\x00\x01\x1f\n\r\t", "utf-8 é 日本", "bad \xff\xfe utf-8", "\u2028\u2029", "<>&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("appendString(%q) = %s: not a JSON string: %v", s, b, err)
		}
		ref, _ := json.Marshal(s)
		var want string
		json.Unmarshal(ref, &want)
		if got != want {
			t.Errorf("appendString(%q) reads back as %q, encoding/json's as %q", s, got, want)
		}
	})
}

func TestTableJSONEdgeCases(t *testing.T) {
	tb := tablecache.Table{
		Set: "odd", Epoch: 1, ETag: `"1-x"`,
		Columns: []string{"dn", "a", "b"},
		Rows: [][][]string{
			{{"cn=x"}, {"1"}},   // short row: b is missing
			{{}, {}, {"v\n"}},   // no DN
			{{"cn=y"}, nil, {}}, // nil and empty
		},
	}
	b := appendTableTail(appendTableJSON(nil, &tb, "me"), &tb, fixedNow, false)
	want := `{"set":"odd","epoch":1,"index":0,"owner":"me","columns":["dn","a","b"],"rows":[` +
		`{"dn":"cn=x","a":["1"],"b":[]},{"dn":"","a":[],"b":["v\n"]},{"dn":"cn=y","a":[],"b":[]}],` +
		`"row_count":3,"refreshed":null,"stale":false,"age_seconds":0.000}` + "\n"
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	empty := tablecache.Table{Set: "empty", Columns: []string{"dn"}}
	b = appendTableTail(appendTableJSON(nil, &empty, "me"), &empty, fixedNow, false)
	if !json.Valid(b) {
		t.Errorf("empty table: invalid JSON %s", b)
	}
	if got := string(tableCSV(&empty)); got != "dn\n" {
		t.Errorf("empty table CSV %q, want just the header row", got)
	}
}

// The memo renders a table version once, renders again when the ETag
// changes, and does not keep what is no longer served.
func TestMemo(t *testing.T) {
	_, tables, s := newFixture()
	h := s.Handler()
	get := func() string { return do(h, "GET", "/v1/smartsets/dallas", nil).Body.String() }
	first := get()
	rd := s.memo.m["dallas"]
	if rd == nil {
		t.Fatal("nothing memoized after a GET")
	}
	head := &rd.json(nil)[0]
	if get() != first || &s.memo.m["dallas"].json(nil)[0] != head {
		t.Errorf("a second GET of the same version rendered again")
	}
	tb := dallasTable()
	tb.Rows = tb.Rows[:1]
	tb.ETag = `"3-0000000000000001"`
	tables.put(tb)
	if second := get(); second == first || s.memo.m["dallas"].etag != tb.ETag {
		t.Errorf("a new ETag did not render again")
	}
	// No longer owned: the entry goes on the next request.
	sw := s.sw.(*fakeSwarm)
	delete(sw.owned, "dallas")
	sw.sets["dallas"] = SetInfo{Name: "dallas", Owner: "tcs-japan-1", OwnerLive: true, OwnerEndpoint: japanEndpoint}
	if rec := do(h, "GET", "/v1/smartsets/dallas", nil); rec.Code != 307 {
		t.Fatalf("after handing dallas over: %d, want 307", rec.Code)
	}
	if s.memo.len() != 0 {
		t.Errorf("memo holds %d entries after the set left", s.memo.len())
	}
}

// The memo stays bounded when sets come and go without being asked for
// again: the sweep drops entries whose table is gone.
func TestMemoSweep(t *testing.T) {
	tables := &fakeTables{tables: map[string]tablecache.Table{}}
	m := &memo{tables: tables}
	const n = 10 * minSweep
	for i := range n {
		tb := dallasTable()
		tb.Set, tb.ETag = fmt.Sprintf("set-%d", i), fmt.Sprintf(`"%d"`, i)
		tables.put(tb)
		m.get(tb.Set, &tb, "me")
		tables.mu.Lock()
		delete(tables.tables, tb.Set) // the set leaves at once
		tables.mu.Unlock()
	}
	if got := m.len(); got > minSweep {
		t.Errorf("memo holds %d entries for 0 tables, want at most %d", got, minSweep)
	}
	// Tables still served survive the sweep.
	tb := dallasTable()
	tables.put(tb)
	m.get("dallas", &tb, "me")
	for i := range 2 * minSweep {
		other := dallasTable()
		other.Set, other.ETag = fmt.Sprintf("gone-%d", i), `"x"`
		m.get(other.Set, &other, "me")
	}
	m.mu.RLock()
	_, kept := m.m["dallas"]
	m.mu.RUnlock()
	if !kept {
		t.Errorf("the sweep dropped a table that is still served")
	}
}

// Concurrent GETs while the table changes: every answer's body is the
// version its ETag names, in both formats.
func TestMemoConcurrentVersions(t *testing.T) {
	_, tables, s := newFixture()
	h := s.Handler()
	version := func(v int) tablecache.Table {
		tb := dallasTable()
		tb.Rows = nil
		for i := range v {
			tb.Rows = append(tb.Rows, [][]string{{fmt.Sprintf("cn=%d", i)}, {"u"}, {}, {}})
		}
		tb.ETag = fmt.Sprintf(`"3-%d"`, v)
		return tb
	}
	tables.put(version(1)) // replace the fixture's table, whose ETag is not "3-<rows>"
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for v := 1; ; v++ {
			select {
			case <-stop:
				return
			default:
			}
			tables.put(version(v%50 + 1))
		}
	}()
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			for range 300 {
				target := "/v1/smartsets/dallas"
				if g%2 == 1 {
					target += "?format=csv"
				}
				rec := do(h, "GET", target, nil)
				var v int
				if _, err := fmt.Sscanf(rec.Header().Get("ETag"), `"3-%d`, &v); err != nil || v < 1 || v > 50 {
					errs <- fmt.Errorf("ETag %q: %v", rec.Header().Get("ETag"), err)
					return
				}
				body := rec.Body.String()
				var rows int
				if g%2 == 1 {
					rows = strings.Count(body, "\n") - 1 // the header row
				} else {
					var doc struct {
						RowCount int `json:"row_count"`
					}
					if err := json.Unmarshal([]byte(body), &doc); err != nil {
						errs <- err
						return
					}
					rows = doc.RowCount
				}
				if rows != v {
					errs <- fmt.Errorf("ETag names version %d, body has %d rows", v, rows)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	close(stop)
	<-done
	if n := s.memo.len(); n > 1 {
		t.Errorf("memo holds %d entries for one set", n)
	}
}
