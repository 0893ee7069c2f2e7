package httpapi

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParseAccept(t *testing.T) {
	tests := []struct {
		accept string
		want   string // the ranges as type/sub;q=..., or "error: <substring>"
	}{
		{"", ""},
		{" , ,", ""},
		{"text/csv", "text/csv;q=1000"},
		{"text/csv;q=0.5, application/json", "text/csv;q=500 application/json;q=1000"},
		{"text/csv ; charset=utf-8 ; q=0.25", "text/csv;q=250"},
		{"*/*;q=0", "*/*;q=0"},
		{"text/*;q=1.000", "text/*;q=1000"},
		{"text/csv;q=0.", "text/csv;q=0"},
		{`text/csv;x="a,b;c\"d";q=0.1`, "text/csv;q=100"},
		{"TEXT/CSV;Q=0.3", "TEXT/CSV;q=300"},
		{"text/", "error: has no subtype"},
		{"text", "error: has no '/'"},
		{"/csv", "error: is not a media range"},
		{";;;", "error: is not a media range"},
		{"text/csv;;", "error: empty parameter"},
		{"text/csv;q", "error: has no value"},
		{"text/csv;q=", "error: has an empty value"},
		{"text/csv;q=1.5", "error: bad q-value"},
		{"text/csv;q=1.0001", "error: bad q-value"},
		{"text/csv;q=-1", "error: bad q-value"},
		{"text/csv;q=0.x", "error: bad q-value"},
		{"text/csv;q=.5", "error: bad q-value"},
		{"text/csv;q = 0.5", "error: has no value"},
		{`text/csv;x="open`, "error: unterminated quoted string"},
		{"*/csv", "error: wildcard type"},
		{"text/csv junk", "error: unexpected"},
		{"text/c@v", "error: unexpected"},
	}
	for _, tc := range tests {
		ranges, err := parseAccept(tc.accept, nil)
		if strings.HasPrefix(tc.want, "error: ") {
			if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(tc.want, "error: ")) {
				t.Errorf("parseAccept(%q): %v, want %s", tc.accept, err, tc.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseAccept(%q): %v", tc.accept, err)
			continue
		}
		var got []string
		for _, r := range ranges {
			got = append(got, r.typ+"/"+r.sub+";q="+itoa(r.q))
		}
		if g := strings.Join(got, " "); g != tc.want {
			t.Errorf("parseAccept(%q) = %s, want %s", tc.accept, g, tc.want)
		}
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func TestNegotiate(t *testing.T) {
	tests := []struct {
		target string
		accept []string
		want   string // json, csv, or the status of the error
	}{
		{"/", nil, "json"},
		{"/", []string{""}, "json"},
		{"/", []string{"text/csv"}, "csv"},
		{"/", []string{"text/csv, application/json"}, "json"}, // a tie: our preference
		{"/", []string{"text/csv;q=0.9, application/json;q=0.8"}, "csv"},
		{"/", []string{"text/csv;q=0, */*"}, "json"},
		{"/", []string{"application/json;q=0, */*"}, "csv"},
		{"/", []string{"text/*;q=0.5, */*;q=0.1"}, "csv"},
		{"/", []string{"text/plain"}, "406"},
		{"/", []string{"text/csv;q=0, application/json;q=0"}, "406"},
		{"/", []string{"text/csv,", ",application/json;q=0.1"}, "csv"},
		{"/", []string{"text/csv", "text/"}, "400"},
		{"/?format=csv", []string{"text/"}, "csv"}, // the query wins, Accept unread
		{"/?format=json", []string{"text/csv"}, "json"},
		{"/?format=", nil, "400"},
		{"/?format=csv&format=CSV", nil, "csv"},
		{"/?format=csv&format=json", nil, "400"},
		{"/?a=%zz", nil, "400"},
		{"/?other=1", []string{"text/csv"}, "csv"},
	}
	for _, tc := range tests {
		r := httptest.NewRequest("GET", tc.target, nil)
		for _, a := range tc.accept {
			r.Header.Add("Accept", a)
		}
		f, err := negotiate(r)
		got := map[format]string{formatJSON: "json", formatCSV: "csv"}[f]
		if err != nil {
			got = itoa(err.code)
		}
		if got != tc.want {
			t.Errorf("%s Accept %q: %s (%v), want %s", tc.target, tc.accept, got, err, tc.want)
		}
	}
}

func TestNoneMatch(t *testing.T) {
	const tag = `"3-abc"`
	tests := []struct {
		inm  []string
		want bool
	}{
		{[]string{`"3-abc"`}, true},
		{[]string{`W/"3-abc"`}, true},
		{[]string{`"x", "3-abc"`}, true},
		{[]string{`"x"`, `"3-abc"`}, true},
		{[]string{`"a,b", "3-abc"`}, true},
		{[]string{`*`}, true},
		{[]string{`"3-abcd"`}, false},
		{[]string{`3-abc`}, false},
		{[]string{`"3-abc`}, false},
		{[]string{``}, false},
	}
	for _, tc := range tests {
		if got := noneMatch(tc.inm, tag); got != tc.want {
			t.Errorf("noneMatch(%q, %s) = %v, want %v", tc.inm, tag, got, tc.want)
		}
	}
	if !noneMatch([]string{`"3-abc"`}, `W/"3-abc"`) {
		t.Errorf("weak comparison of a weak ETag failed")
	}
}

func TestETags(t *testing.T) {
	for in, want := range map[string]string{`"3-abc"`: `"3-abc-csv"`, `W/"3-abc"`: `W/"3-abc-csv"`} {
		if got := csvETag(in); got != want {
			t.Errorf("csvETag(%s) = %s, want %s", in, got, want)
		}
	}
	for in, want := range map[string]string{`"3-abc"`: `"3-abc"`, `W/"x"`: `W/"x"`, `3-abc`: `"3-abc"`, `"a"b"`: `"ab"`, ``: ``} {
		if got := quoteETag(in); got != want {
			t.Errorf("quoteETag(%s) = %s, want %s", in, got, want)
		}
	}
}

// FuzzParseAccept: the Accept parser never panics, and what it accepts is
// well-formed: non-empty tokens and q within 0..1000.
func FuzzParseAccept(f *testing.F) {
	for _, s := range []string{"text/csv", "text/", ";;;", `a/b;x="y\"z";q=0.5, */*;q=0`, "text/csv;q=1.", ",,,", "*/*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, accept string) {
		ranges, err := parseAccept(accept, nil)
		if err != nil {
			return
		}
		for _, r := range ranges {
			if r.typ == "" || r.sub == "" || r.q < 0 || r.q > 1000 || (r.typ == "*" && r.sub != "*") {
				t.Errorf("parseAccept(%q) accepted %+v", accept, r)
			}
		}
		choose(ranges)
	})
}
