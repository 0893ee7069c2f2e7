package httpapi

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// do sends one request to h and returns the recorded answer.
func do(h http.Handler, method, target string, header http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	for k, vs := range header {
		req.Header[k] = vs
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestRoutes(t *testing.T) {
	const long = "a123456789b123456789c123456789d123456789e123456789f123456789g123456789h123456789i123456789j123456789k123456789l123456789m1234567" // 128
	if len(long) != 128 {
		t.Fatalf("fixture: long name has %d characters", len(long))
	}
	tests := []struct {
		name    string
		setup   func(*fakeSwarm)
		method  string // GET when empty
		target  string
		header  http.Header
		code    int
		headers map[string]string // exact values; "-" means absent
		body    string            // the body contains this
	}{
		// Health, readiness, metrics, status page.
		{name: "healthz", target: "/healthz", code: 200, body: "ok", headers: map[string]string{"Content-Type": "text/plain; charset=utf-8"}},
		{name: "readyz ready", target: "/readyz", code: 200, body: "ok"},
		{name: "readyz not ready", target: "/readyz", setup: func(f *fakeSwarm) { f.ready, f.why = false, "watch still in refresh phase" },
			code: 503, body: "not ready: watch still in refresh phase", headers: map[string]string{"Retry-After": "1"}},
		{name: "metrics", target: "/metrics", code: 200},
		{name: "status page", target: "/", code: 200, body: `<a href="/v1/smartsets">`, headers: map[string]string{"Content-Type": "text/html; charset=utf-8"}},
		{name: "status page names the agent", target: "/", code: 200, body: "tcs agent tcs-texas-1"},
		{name: "unknown path", target: "/v2/whatever", code: 404, body: `"error":"no such resource: /v2/whatever"`},
		{name: "unknown path with ..", target: "/v1/../healthz", code: 404},
		{name: "POST is 405", method: "POST", target: "/v1/smartsets", code: 405, headers: map[string]string{"Allow": "GET, HEAD"}},
		{name: "DELETE a set is 405", method: "DELETE", target: "/v1/smartsets/dallas", code: 405, headers: map[string]string{"Allow": "GET, HEAD"}, body: "method DELETE not allowed"},
		{name: "PUT healthz is 405", method: "PUT", target: "/healthz", code: 405, headers: map[string]string{"Allow": "GET, HEAD"}},
		{name: "OPTIONS is 405", method: "OPTIONS", target: "/", code: 405, headers: map[string]string{"Allow": "GET, HEAD"}},

		// The list.
		{name: "list", target: "/v1/smartsets", code: 200, body: `{"name":"austin","location":"Texas","owner":"tcs-texas-1","owner_endpoint":"http://10.0.0.1:8082","epoch":1,"state":"optimal"},{"name":"dallas"`,
			headers: map[string]string{"Content-Type": contentJSON, "Vary": "Accept"}},
		{name: "list trailing slash", target: "/v1/smartsets/", code: 200, body: `"agent":"tcs-texas-1"`},
		{name: "list csv by query", target: "/v1/smartsets?format=csv", code: 200, body: "\naustin,Texas,tcs-texas-1,http://10.0.0.1:8082,1,optimal\n",
			headers: map[string]string{"Content-Type": contentCSV}},
		{name: "list csv by Accept", target: "/v1/smartsets", header: hdr("Accept", "text/csv"), code: 200, body: "name,location,owner,owner_endpoint,epoch,state\n"},
		{name: "list directory down", target: "/v1/smartsets", setup: func(f *fakeSwarm) { f.setsErr = errors.New("ldapdir: directory unavailable") },
			code: 503, body: "cannot read the directory: ldapdir: directory unavailable", headers: map[string]string{"Retry-After": "1"}},
		{name: "list unknown format", target: "/v1/smartsets?format=xml", code: 400, body: `unknown format \"xml\"`},
		{name: "list malformed Accept", target: "/v1/smartsets", header: hdr("Accept", "text/"), code: 400, body: "malformed Accept header"},

		// A table this agent serves.
		{name: "table json", target: "/v1/smartsets/dallas", code: 200, body: `{"set":"dallas","epoch":3,"index":12884901890,"owner":"tcs-texas-1","columns":["dn","uid","mail","cn"],"rows":[`,
			headers: map[string]string{"Content-Type": contentJSON, "ETag": `"3-9f86d081884c7d65"`, "TCS-Epoch": "3", "TCS-Owner": selfName,
				"Cache-Control": "no-cache", "Vary": "Accept", "TCS-Stale": "-", "TCS-Age": "-", "Warning": "-"}},
		{name: "table json, percent-encoded letter", target: "/v1/smartsets/%64allas", code: 200, body: `"set":"dallas"`},
		{name: "table csv by query", target: "/v1/smartsets/dallas?format=csv", code: 200, body: "dn,uid,mail,cn\n",
			headers: map[string]string{"Content-Type": contentCSV, "ETag": `"3-9f86d081884c7d65-csv"`, "TCS-Epoch": "3", "TCS-Owner": selfName, "Vary": "Accept"}},
		{name: "table csv by Accept", target: "/v1/smartsets/dallas", header: hdr("Accept", "text/csv"), code: 200, body: "dn,uid,mail,cn\n"},
		{name: "format=json wins over Accept", target: "/v1/smartsets/dallas?format=json", header: hdr("Accept", "text/csv"), code: 200, body: `{"set":"dallas"`},
		{name: "format=csv wins over Accept", target: "/v1/smartsets/dallas?format=csv", header: hdr("Accept", "application/json"), code: 200, body: "dn,uid,mail,cn\n"},
		{name: "format=CSV any case", target: "/v1/smartsets/dallas?format=CSV", code: 200, body: "dn,uid,mail,cn\n"},
		{name: "unknown format", target: "/v1/smartsets/dallas?format=yaml", code: 400, body: `unknown format \"yaml\": use format=json or format=csv`},
		{name: "conflicting formats", target: "/v1/smartsets/dallas?format=csv&format=json", code: 400, body: "format given more than once"},
		{name: "Accept */*", target: "/v1/smartsets/dallas", header: hdr("Accept", "*/*"), code: 200, body: `{"set":"dallas"`},
		{name: "Accept text/*", target: "/v1/smartsets/dallas", header: hdr("Accept", "text/*"), code: 200, body: "dn,uid,mail,cn\n"},
		{name: "Accept application/*", target: "/v1/smartsets/dallas", header: hdr("Accept", "application/*"), code: 200, body: `{"set":"dallas"`},
		{name: "Accept browser", target: "/v1/smartsets/dallas", header: hdr("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"), code: 200, body: `{"set":"dallas"`},
		{name: "Accept csv preferred by q", target: "/v1/smartsets/dallas", header: hdr("Accept", "application/json;q=0.5, text/csv"), code: 200, body: "dn,uid,mail,cn\n"},
		{name: "Accept json refused", target: "/v1/smartsets/dallas", header: hdr("Accept", "application/json;q=0, */*;q=0.1"), code: 200, body: "dn,uid,mail,cn\n"},
		{name: "Accept two header lines", target: "/v1/smartsets/dallas", header: hdr("Accept", "image/png", "Accept", "text/csv;q=0.2"), code: 200, body: "dn,uid,mail,cn\n"},
		{name: "Accept quoted parameter", target: "/v1/smartsets/dallas", header: hdr("Accept", `text/csv;header="present, yes";q=1`), code: 200, body: "dn,uid,mail,cn\n"},
		{name: "Accept nothing we offer", target: "/v1/smartsets/dallas", header: hdr("Accept", "application/xml, text/html"), code: 406, body: "application/json, text/csv"},
		{name: "Accept everything at q=0", target: "/v1/smartsets/dallas", header: hdr("Accept", "*/*;q=0"), code: 406},
		{name: "Accept text/", target: "/v1/smartsets/dallas", header: hdr("Accept", "text/"), code: 400, body: `malformed Accept header: media range \"text/\" has no subtype`},
		{name: "Accept ;;;", target: "/v1/smartsets/dallas", header: hdr("Accept", ";;;"), code: 400, body: "malformed Accept header"},
		{name: "Accept without slash", target: "/v1/smartsets/dallas", header: hdr("Accept", "csv"), code: 400, body: `has no '/'`},
		{name: "Accept q=2", target: "/v1/smartsets/dallas", header: hdr("Accept", "text/csv;q=2"), code: 400, body: "bad q-value"},
		{name: "Accept q=high", target: "/v1/smartsets/dallas", header: hdr("Accept", "text/csv;q=high"), code: 400, body: "bad q-value"},
		{name: "Accept */csv", target: "/v1/smartsets/dallas", header: hdr("Accept", "*/csv"), code: 400, body: "wildcard type"},
		{name: "HEAD table", method: "HEAD", target: "/v1/smartsets/dallas", code: 200, headers: map[string]string{"ETag": `"3-9f86d081884c7d65"`}},
		{name: "stale table", target: "/v1/smartsets/el-paso", code: 200, body: `"stale":true,"age_seconds":90.000,"error":"ldap: connection refused"}`,
			headers: map[string]string{"TCS-Stale": "true", "TCS-Age": "90", "Warning": `110 - "Response is Stale"`, "TCS-Epoch": "2"}},
		{name: "stale table csv", target: "/v1/smartsets/el-paso?format=csv", code: 200, body: "dn,uid,mail,cn\n",
			headers: map[string]string{"TCS-Stale": "true", "TCS-Age": "90", "Warning": `110 - "Response is Stale"`}},

		// Owned here but not servable.
		{name: "table loading", target: "/v1/smartsets/austin", code: 503, body: `"error":"table loading`, headers: map[string]string{"Retry-After": "1"}},
		{name: "table of an earlier epoch", target: "/v1/smartsets/waco", code: 503, body: "table loading", headers: map[string]string{"Retry-After": "1"}},
		{name: "table failed", target: "/v1/smartsets/houston", code: 502, body: `{"error":"size limit exceeded: more than 100000 rows","set":"houston"}`},

		// Owned elsewhere, orphaned, fenced, unknown.
		{name: "redirect", target: "/v1/smartsets/tokyo", code: 307, headers: map[string]string{"Location": japanEndpoint + "/v1/smartsets/tokyo", "TCS-Owner": "tcs-japan-1", "TCS-Epoch": "4"}},
		{name: "redirect keeps the query", target: "/v1/smartsets/tokyo?format=csv&x=a%20b", code: 307, headers: map[string]string{"Location": japanEndpoint + "/v1/smartsets/tokyo?format=csv&x=a%20b"}},
		{name: "redirect under the endpoint's path", target: "/v1/smartsets/kyoto", code: 307, headers: map[string]string{"Location": japanEndpoint + "/tcs/v1/smartsets/kyoto"}},
		{name: "HEAD redirect", method: "HEAD", target: "/v1/smartsets/tokyo", code: 307, headers: map[string]string{"Location": japanEndpoint + "/v1/smartsets/tokyo"}},
		{name: "owner not live", target: "/v1/smartsets/osaka", code: 503, body: `orphaned: the set's owner \"tcs-japan-2\" is not live`, headers: map[string]string{"Retry-After": "1"}},
		{name: "no owner", target: "/v1/smartsets/nowhere", code: 503, body: "orphaned: the set has no owner", headers: map[string]string{"Retry-After": "1"}},
		{name: "owner has no endpoint", target: "/v1/smartsets/nagoya", code: 503, body: "has no tcsEndpoint", headers: map[string]string{"Retry-After": "1"}},
		{name: "owner endpoint unusable", target: "/v1/smartsets/sapporo", code: 503, body: "unusable tcsEndpoint", headers: map[string]string{"Retry-After": "1", "Location": "-"}},
		{name: "owner is this agent but Owns says no", target: "/v1/smartsets/selfish", code: 503, headers: map[string]string{"Retry-After": "1", "Location": "-"}},
		{name: "fenced: own set", target: "/v1/smartsets/dallas", setup: func(f *fakeSwarm) { f.fenced = true }, code: 503, body: "fenced", headers: map[string]string{"Retry-After": "1"}},
		{name: "fenced: set elsewhere", target: "/v1/smartsets/tokyo", setup: func(f *fakeSwarm) { f.fenced = true }, code: 503, body: "fenced", headers: map[string]string{"Retry-After": "1", "Location": "-"}},
		{name: "unknown set", target: "/v1/smartsets/amarillo", code: 404, body: `{"error":"no such SmartSet","set":"amarillo"}`},
		{name: "unknown set, longest name", target: "/v1/smartsets/" + long, code: 404},
		{name: "directory down for one set", target: "/v1/smartsets/tokyo", setup: func(f *fakeSwarm) { f.setsErr = errors.New("ldapdir: directory unavailable") }, code: 503, body: "cannot read the directory"},

		// Names are whatever cn the directory holds: looked up, never used as paths.
		{name: "..", target: "/v1/smartsets/..", code: 404, body: `{"error":"no such SmartSet","set":".."}`},
		{name: "%2e%2e", target: "/v1/smartsets/%2e%2e", code: 404, body: `"set":".."`},
		{name: ".", target: "/v1/smartsets/.", code: 404, body: `"set":"."`},
		{name: "a%2Fb", target: "/v1/smartsets/dallas%2Fextra", code: 404, body: `"set":"dallas/extra"`},
		{name: "..%2fetc%2fpasswd", target: "/v1/smartsets/..%2fetc%2fpasswd", code: 404, body: `"set":"../etc/passwd"`},
		{name: "leading dot", target: "/v1/smartsets/.hidden", code: 404},
		{name: "space, unknown", target: "/v1/smartsets/el%20paso", code: 404, body: `"set":"el paso"`},
		{name: "space, served here", target: "/v1/smartsets/sp%20ace", code: 200, body: `{"set":"sp ace","epoch":2,"index":8589934593,`,
			headers: map[string]string{"TCS-Index": "8589934593"}},
		{name: "unicode, redirect", target: "/v1/smartsets/%C3%BCn%C3%AFcode?index=5&wait=1s&format=csv&stale=1", code: 307,
			headers: map[string]string{"Location": japanEndpoint + "/v1/smartsets/%C3%BCn%C3%AFcode?index=5&wait=1s&format=csv&stale=1"}},
		{name: "paren, redirect", target: "/v1/smartsets/paren%28thesis%29", code: 307, headers: map[string]string{"Location": japanEndpoint + "/v1/smartsets/paren%28thesis%29"}},
		{name: "plus, redirect", target: "/v1/smartsets/plus+sign", code: 307, headers: map[string]string{"Location": japanEndpoint + "/v1/smartsets/plus+sign"}},
		{name: "star, redirect", target: "/v1/smartsets/star*", code: 307, headers: map[string]string{"Location": japanEndpoint + "/v1/smartsets/star%2A"}},
		{name: "semicolon, redirect", target: "/v1/smartsets/semi;colon", code: 307, headers: map[string]string{"Location": japanEndpoint + "/v1/smartsets/semi%3Bcolon"}},
		{name: "slash in a name, redirect", target: "/v1/smartsets/a%2Fb", code: 307, headers: map[string]string{"Location": japanEndpoint + "/tcs/v1/smartsets/a%2Fb"}},

		// Bad names: 400 before anything else, never a redirect.
		{name: "../etc/passwd", target: "/v1/smartsets/../etc/passwd", code: 400, body: `bad SmartSet name: the path has more than one segment`},
		{name: "%2e%2e/etc/passwd", target: "/v1/smartsets/%2e%2e/etc/passwd", code: 400, body: `more than one segment`},
		{name: "a/b", target: "/v1/smartsets/dallas/extra", code: 400, body: `more than one segment`},
		{name: "double slash", target: "/v1/smartsets//dallas", code: 400, body: `more than one segment`},
		{name: "too long", target: "/v1/smartsets/" + long + "x", code: 400, body: "name longer than 128 characters"},
		{name: "control character", target: "/v1/smartsets/a%0Ab", code: 400, body: "control character U+000A"},
		{name: "invalid UTF-8", target: "/v1/smartsets/a%FF", code: 400, body: "not valid UTF-8"},
		{name: "bad name beats bad Accept", target: "/v1/smartsets/a%00", header: hdr("Accept", ";;;"), code: 400, body: "bad SmartSet name"},

		// Blocking and stale parameters.
		{name: "bad index", target: "/v1/smartsets/dallas?index=x", code: 400, body: `index=\"x\": want a TCS-Index`},
		{name: "negative index", target: "/v1/smartsets/dallas?index=-1", code: 400, body: "want a TCS-Index"},
		{name: "bad wait", target: "/v1/smartsets/dallas?index=1&wait=soon", code: 400, body: `wait=\"soon\"`},
		{name: "negative wait", target: "/v1/smartsets/dallas?index=1&wait=-3s", code: 400, body: "cannot be negative"},
		{name: "bad stale", target: "/v1/smartsets/dallas?stale=maybe", code: 400, body: `stale=\"maybe\"`},
		{name: "index passed: at once", target: "/v1/smartsets/dallas?index=1&wait=10m", code: 200, headers: map[string]string{"TCS-Index": "12884901890"}},
		{name: "stale read, not fenced", target: "/v1/smartsets/dallas?stale=1", code: 200, headers: map[string]string{"TCS-Stale": "-", "TCS-Fenced": "-"}},
		{name: "fenced: stale read", target: "/v1/smartsets/dallas?stale=1", setup: func(f *fakeSwarm) { f.fenced = true }, code: 200,
			body:    `"stale":true,"age_seconds":90.000,"fenced":true}`,
			headers: map[string]string{"TCS-Stale": "true", "TCS-Fenced": "true", "TCS-Age": "90", "TCS-Epoch": "3", "TCS-Index": "12884901890"}},
		{name: "fenced: stale read by header", target: "/v1/smartsets/dallas", header: hdr("TCS-Allow-Stale", "1"), setup: func(f *fakeSwarm) { f.fenced = true }, code: 200,
			headers: map[string]string{"TCS-Stale": "true", "TCS-Fenced": "true"}},
		{name: "fenced: stale=0", target: "/v1/smartsets/dallas?stale=0", header: hdr("TCS-Allow-Stale", "1"), setup: func(f *fakeSwarm) { f.fenced = true }, code: 503, body: "fenced"},
		{name: "fenced: stale read of a failed table", target: "/v1/smartsets/houston?stale", setup: func(f *fakeSwarm) { f.fenced = true }, code: 503, body: "fenced"},
		{name: "fenced: stale read of a set elsewhere", target: "/v1/smartsets/tokyo?stale=1", setup: func(f *fakeSwarm) { f.fenced = true }, code: 503, body: "fenced"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sw, _, s := newFixture()
			if tc.setup != nil {
				tc.setup(sw)
			}
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			rec := do(s.Handler(), method, tc.target, tc.header)
			body := rec.Body.String()
			if rec.Code != tc.code {
				t.Fatalf("%s %s: status %d, want %d; body %s", method, tc.target, rec.Code, tc.code, body)
			}
			for k, want := range tc.headers {
				got, ok := rec.Header()[http.CanonicalHeaderKey(k)]
				switch {
				case want == "-" && ok:
					t.Errorf("header %s: %q, want none", k, got)
				case want != "-" && (len(got) != 1 || got[0] != want):
					t.Errorf("header %s: %q, want %q", k, got, want)
				}
			}
			if !strings.Contains(body, tc.body) {
				t.Errorf("body %q does not contain %q", body, tc.body)
			}
			if method == http.MethodHead && body != "" {
				t.Errorf("HEAD answered with a body: %q", body)
			}
			if rec.Code >= 400 && method != http.MethodHead {
				var e struct {
					Error string `json:"error"`
				}
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
					t.Errorf("error answer is not JSON with an error: %q (%v)", body, err)
				}
				if ct := rec.Header().Get("Content-Type"); ct != contentJSON {
					t.Errorf("error answer Content-Type %q", ct)
				}
			}
			if rec.Code == 503 && rec.Header().Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After")
			}
			if cl := rec.Header().Get("Content-Length"); cl != "" && method == http.MethodGet && cl != strconv.Itoa(len(body)) {
				t.Errorf("Content-Length %s, body has %d bytes", cl, len(body))
			}
		})
	}
}

// The bad requests above are each a 4xx, and the same server keeps
// answering afterwards.
func TestBadRequestsLeaveServerServing(t *testing.T) {
	_, _, s := newFixture()
	h := s.Handler()
	for _, target := range []string{
		"/v1/smartsets/../etc/passwd", "/v1/smartsets/%2e%2e/%2e%2e/etc/passwd", "/v1/smartsets/%2e%2e",
		"/v1/smartsets/" + strings.Repeat("x", 5000), "/v1/smartsets/amarillo",
	} {
		if rec := do(h, "GET", target, nil); rec.Code < 400 || rec.Code >= 500 {
			t.Errorf("GET %s: %d, want 4xx", target, rec.Code)
		}
		if rec := do(h, "GET", "/v1/smartsets/dallas", hdr("Accept", "text/;q=")); rec.Code != 400 {
			t.Errorf("malformed Accept: %d, want 400", rec.Code)
		}
		if rec := do(h, "GET", "/v1/smartsets/dallas", nil); rec.Code != 200 {
			t.Fatalf("after GET %s: dallas is %d, want 200", target, rec.Code)
		}
	}
}

func TestHeadMatchesGet(t *testing.T) {
	_, _, s := newFixture()
	for _, target := range []string{"/v1/smartsets/dallas", "/v1/smartsets/dallas?format=csv", "/v1/smartsets", "/", "/healthz", "/v1/smartsets/amarillo"} {
		get := do(s.Handler(), "GET", target, nil)
		head := do(s.Handler(), "HEAD", target, nil)
		if head.Code != get.Code || head.Body.Len() != 0 {
			t.Errorf("HEAD %s: %d with %d body bytes; GET: %d", target, head.Code, head.Body.Len(), get.Code)
		}
		if cl := head.Header().Get("Content-Length"); cl != strconv.Itoa(get.Body.Len()) {
			t.Errorf("HEAD %s: Content-Length %q, GET body has %d bytes", target, cl, get.Body.Len())
		}
	}
}

func TestTableJSON(t *testing.T) {
	_, _, s := newFixture()
	rec := do(s.Handler(), "GET", "/v1/smartsets/dallas", nil)
	if rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	want := `{"set":"dallas","epoch":3,"index":12884901890,"owner":"tcs-texas-1","columns":["dn","uid","mail","cn"],"rows":[` +
		`{"dn":"uid=alice,ou=people,dc=example,dc=org","uid":["alice"],"mail":["alice@example.org","a@example.org"],"cn":["Alice, \"Al\" Smith"]},` +
		`{"dn":"uid=bob,ou=people,dc=example,dc=org","uid":["bob"],"mail":[],"cn":["Bob"]}],` +
		`"row_count":2,"refreshed":"2026-03-01T12:00:00.0000005Z","stale":false,"age_seconds":90.000}` + "\n"
	if got := rec.Body.String(); got != want {
		t.Errorf("body\n got %s\nwant %s", got, want)
	}
	if !json.Valid(rec.Body.Bytes()) {
		t.Fatal("body is not valid JSON")
	}
	// Key order: the object's members as documented, each row's as Columns.
	top, rows := keyOrder(t, rec.Body.Bytes())
	if got, want := strings.Join(top, ","), "set,epoch,index,owner,columns,rows,row_count,refreshed,stale,age_seconds"; got != want {
		t.Errorf("top-level keys %s, want %s", got, want)
	}
	for i, keys := range rows {
		if got, want := strings.Join(keys, ","), "dn,uid,mail,cn"; got != want {
			t.Errorf("row %d keys %s, want %s", i, got, want)
		}
	}
}

// keyOrder returns the keys of the top-level object in body and of each
// object in its "rows" array, in the order they appear.
func keyOrder(t *testing.T, body []byte) (top []string, rows [][]string) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	tok := func() json.Token {
		tk, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	tok() // {
	for dec.More() {
		key := tok().(string)
		top = append(top, key)
		if key != "rows" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				t.Fatal(err)
			}
			continue
		}
		tok() // [
		for dec.More() {
			tok() // {
			var keys []string
			for dec.More() {
				keys = append(keys, tok().(string))
				var skip json.RawMessage
				if err := dec.Decode(&skip); err != nil {
					t.Fatal(err)
				}
			}
			tok() // }
			rows = append(rows, keys)
		}
		tok() // ]
	}
	return top, rows
}

func TestTableCSV(t *testing.T) {
	_, _, s := newFixture()
	rec := do(s.Handler(), "GET", "/v1/smartsets/dallas", hdr("Accept", "text/csv"))
	if rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	want := "dn,uid,mail,cn\n" +
		`"uid=alice,ou=people,dc=example,dc=org",alice,alice@example.org;a@example.org,"Alice, ""Al"" Smith"` + "\n" +
		`"uid=bob,ou=people,dc=example,dc=org",bob,,Bob` + "\n"
	if got := rec.Body.String(); got != want {
		t.Errorf("body\n got %q\nwant %q", got, want)
	}
	recs, err := csv.NewReader(rec.Body).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || strings.Join(recs[0], ",") != "dn,uid,mail,cn" {
		t.Fatalf("records %q: want a header row and one line per row", recs)
	}
	if got := strings.Split(recs[1][2], ";"); len(got) != 2 || got[0] != "alice@example.org" || got[1] != "a@example.org" {
		t.Errorf("multi-valued cell %q, want both values joined with ;", recs[1][2])
	}
	if recs[1][3] != `Alice, "Al" Smith` {
		t.Errorf("quoted cell %q", recs[1][3])
	}
}

func TestNotModified(t *testing.T) {
	const jsonTag, csvTag = `"3-9f86d081884c7d65"`, `"3-9f86d081884c7d65-csv"`
	tests := []struct {
		name, target, inm string
		code              int
	}{
		{"json etag", "/v1/smartsets/dallas", jsonTag, 304},
		{"weak json etag", "/v1/smartsets/dallas", "W/" + jsonTag, 304},
		{"in a list", "/v1/smartsets/dallas", `"1-aaa", ` + jsonTag + `,"x"`, 304},
		{"star", "/v1/smartsets/dallas", "*", 304},
		{"other etag", "/v1/smartsets/dallas", `"2-9f86d081884c7d65"`, 200},
		{"csv etag on json", "/v1/smartsets/dallas", csvTag, 200},
		{"json etag on csv", "/v1/smartsets/dallas?format=csv", jsonTag, 200},
		{"csv etag on csv", "/v1/smartsets/dallas?format=csv", csvTag, 304},
		{"unquoted", "/v1/smartsets/dallas", "3-9f86d081884c7d65", 200},
		{"stale table etag", "/v1/smartsets/el-paso", `"2-1111"`, 304},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, s := newFixture()
			rec := do(s.Handler(), "GET", tc.target, hdr("If-None-Match", tc.inm))
			if rec.Code != tc.code {
				t.Fatalf("status %d, want %d", rec.Code, tc.code)
			}
			if tc.code != 304 {
				return
			}
			if rec.Body.Len() != 0 {
				t.Errorf("304 with a body: %q", rec.Body)
			}
			for _, k := range []string{"ETag", "TCS-Epoch", "TCS-Owner", "Cache-Control", "Vary"} {
				if rec.Header().Get(k) == "" {
					t.Errorf("304 without %s", k)
				}
			}
		})
	}
	_, _, s := newFixture()
	if rec := do(s.Handler(), "GET", "/v1/smartsets/el-paso", hdr("If-None-Match", `"2-1111"`)); rec.Header().Get("TCS-Stale") != "true" {
		t.Errorf("304 of a stale table without TCS-Stale")
	}
}

func TestStaleNeverRefreshed(t *testing.T) {
	_, tables, s := newFixture()
	tb := dallasTable()
	tb.Refreshed, tb.Stale, tb.Err = time.Time{}, true, "source down"
	tables.put(tb)
	rec := do(s.Handler(), "GET", "/v1/smartsets/dallas", nil)
	if !strings.HasSuffix(rec.Body.String(), `"refreshed":null,"stale":true,"age_seconds":0.000,"error":"source down"}`+"\n") {
		t.Errorf("body %s", rec.Body)
	}
	if rec.Header().Get("TCS-Age") != "0" {
		t.Errorf("TCS-Age %q", rec.Header().Get("TCS-Age"))
	}
}

func TestRedirectNeverToSelf(t *testing.T) {
	sw, _, s := newFixture()
	sw.sets["selfish"] = SetInfo{Name: "selfish", Owner: "TCS-Texas-1", OwnerLive: true, OwnerEndpoint: "http://10.0.0.1:8082", Epoch: 9}
	rec := do(s.Handler(), "GET", "/v1/smartsets/selfish", nil)
	if rec.Code != 503 || rec.Header().Get("Location") != "" {
		t.Errorf("owner named like this agent (other case): %d Location %q, want 503 and no redirect", rec.Code, rec.Header().Get("Location"))
	}
}

func TestPanicIsRecovered(t *testing.T) {
	sw, _, _ := newFixture()
	sw.panicOn = "dallas"
	logger, hook := logtest.NewNullLogger()
	reg := prometheus.NewRegistry()
	s := New(sw, &fakeTables{}, Options{Logger: logger, Registerer: reg})
	rec := do(s.Handler(), "GET", "/v1/smartsets/dallas", nil)
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), `"error":"internal error"`) {
		t.Errorf("panic: %d %s, want 500 JSON", rec.Code, rec.Body)
	}
	var logged bool
	for _, e := range hook.AllEntries() {
		logged = logged || (e.Level == logrus.ErrorLevel && strings.Contains(e.Message, "panics as the test asked"))
	}
	if !logged {
		t.Errorf("panic not logged at error level")
	}
	if rec := do(s.Handler(), "GET", "/healthz", nil); rec.Code != 200 {
		t.Errorf("after a panic: healthz %d", rec.Code)
	}
	if got := counterValue(t, s.metrics.requests.WithLabelValues("set", "500")); got != 1 {
		t.Errorf("tcs_http_requests_total{route=set,code=500} = %v, want 1", got)
	}
}

func TestMetrics(t *testing.T) {
	sw, tables, _ := newFixture()
	reg := prometheus.NewRegistry()
	s := New(sw, tables, Options{Registerer: reg, Gatherer: reg})
	h := s.Handler()
	for _, target := range []string{"/v1/smartsets/dallas", "/v1/smartsets/dallas", "/v1/smartsets/../etc/passwd", "/v1/smartsets/amarillo", "/nope/1", "/nope/2", "/v1/smartsets", "/healthz"} {
		do(h, "GET", target, nil)
	}
	for _, c := range []struct {
		route, code string
		want        float64
	}{{"set", "200", 2}, {"set", "400", 1}, {"set", "404", 1}, {"other", "404", 2}, {"sets", "200", 1}, {"healthz", "200", 1}} {
		if got := counterValue(t, s.metrics.requests.WithLabelValues(c.route, c.code)); got != c.want {
			t.Errorf("tcs_http_requests_total{route=%q,code=%q} = %v, want %v", c.route, c.code, got, c.want)
		}
	}
	rec := do(h, "GET", "/metrics", nil)
	body := rec.Body.String()
	for _, want := range []string{`tcs_http_requests_total{code="200",route="set"} 2`, `tcs_http_request_seconds_bucket{route="set",le=`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, "passwd") || strings.Contains(body, "nope") || strings.Contains(body, "amarillo") {
		t.Errorf("/metrics carries a raw path:\n%s", body)
	}
}

func TestCustomStatusPage(t *testing.T) {
	sw, tables, _ := newFixture()
	s := New(sw, tables, Options{StatusPage: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "custom")
	})})
	if rec := do(s.Handler(), "GET", "/", nil); rec.Body.String() != "custom" {
		t.Errorf("status page %q", rec.Body)
	}
}

func TestRetryAfterRoundsUp(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "1", time.Millisecond: "1", time.Second: "1", 1500 * time.Millisecond: "2", 30 * time.Second: "30"} {
		if got := retryAfterSeconds(d); got != want {
			t.Errorf("retryAfterSeconds(%v) = %s, want %s", d, got, want)
		}
	}
	sw, tables, _ := newFixture()
	s := New(sw, tables, Options{RetryAfter: 2500 * time.Millisecond})
	if got := do(s.Handler(), "GET", "/v1/smartsets/austin", nil).Header().Get("Retry-After"); got != "3" {
		t.Errorf("Retry-After %q with RetryAfter 2.5s, want 3", got)
	}
}

// counterValue is the value of c.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// Two servers on one registry share the HTTP metrics instead of panicking.
func TestSharedRegisterer(t *testing.T) {
	sw, tables, _ := newFixture()
	reg := prometheus.NewRegistry()
	a := New(sw, tables, Options{Registerer: reg})
	b := New(sw, tables, Options{Registerer: reg})
	do(a.Handler(), "GET", "/healthz", nil)
	do(b.Handler(), "GET", "/healthz", nil)
	if got := counterValue(t, a.metrics.requests.WithLabelValues("healthz", "200")); got != 2 {
		t.Errorf("shared counter %v, want 2", got)
	}
}
