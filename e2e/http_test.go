package e2e

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"tcs/internal/ldaptest"
	"tcs/smartset"
)

type tableJSON struct {
	Set      string           `json:"set"`
	Epoch    int64            `json:"epoch"`
	Owner    string           `json:"owner"`
	Columns  []string         `json:"columns"`
	Rows     []map[string]any `json:"rows"`
	RowCount int              `json:"row_count"`
	Stale    bool             `json:"stale"`
}

// get fetches url following redirects (like curl -L) and returns the final
// response with its body read.
func get(t testing.TB, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// tryGet is get without failing the test on a transport error.
func tryGet(url string) (*http.Response, []byte, error) {
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// rowDNs returns the dn of every row of a JSON table.
func rowDNs(tb tableJSON) []string {
	var out []string
	for _, r := range tb.Rows {
		out = append(out, fmt.Sprint(r["dn"]))
	}
	return out
}

// The HTTP acceptance of the table cache: any agent answers for any set
// (307 to the owner), JSON and CSV, live changes, failover, and bad
// requests.
func TestServeTablesFromAnyAgent(t *testing.T) {
	const ttl = 2 * time.Second
	s := newSwarm(t, ttl, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	jp := s.start("tcs-japan-1", "Japan")
	tx := s.start("tcs-texas-1", "Texas")
	ca := s.start("tcs-california-1", "California")
	s.eventually(20*time.Second, "placement", placedAtHome(jp, tx, ca))

	// curl -L of a Texas set against the Japan agent: the Texas agent
	// serves the rows its query selects.
	url := jp.url() + "/v1/smartsets/texas-linux-servers"
	var tb tableJSON
	var resp *http.Response
	deadline := time.Now().Add(10 * time.Second)
	for {
		var body []byte
		resp, body = get(t, url)
		if resp.StatusCode == 200 {
			if err := json.Unmarshal(body, &tb); err != nil {
				t.Fatalf("JSON: %v\n%s", err, body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if resp.Request.URL.Host != strings.TrimPrefix(tx.url(), "http://") || tb.Owner != tx.name {
		t.Errorf("served by %s (owner %q), want the Texas agent at %s", resp.Request.URL.Host, tb.Owner, tx.url())
	}
	want := s.srv.Search("cn=Texas,ou=locations,dc=example,dc=org", "(&(objectClass=tcsSystem)(tcsSystemType=server)(tcsOSType=Linux))", "dn")
	if tb.RowCount == 0 || tb.RowCount != strings.Count(want, "dn: ") || tb.Columns[0] != "dn" {
		t.Fatalf("table %+v; the directory has:\n%s", tb, want)
	}
	for _, dn := range rowDNs(tb) {
		if !strings.Contains(want, "dn: "+dn) {
			t.Errorf("row %s is not a system the query selects", dn)
		}
	}
	epoch, _ := strconv.ParseInt(resp.Header.Get("TCS-Epoch"), 10, 64)
	if epoch < 1 || resp.Header.Get("ETag") == "" {
		t.Errorf("headers: TCS-Epoch %q ETag %q", resp.Header.Get("TCS-Epoch"), resp.Header.Get("ETag"))
	}

	// The same with the real curl -L, as CSV: a header row and one line per
	// system.
	out, err := exec.Command("curl", "-sfL", "-H", "Accept: text/csv", url).Output()
	if err != nil {
		t.Fatalf("curl -L: %v", err)
	}
	records, err := csv.NewReader(strings.NewReader(string(out))).ReadAll()
	if err != nil || len(records) != tb.RowCount+1 || records[0][0] != "dn" {
		t.Fatalf("CSV (%v):\n%s", err, out)
	}

	// A change to a system selected by the query shows up within 2 s.
	sys := rowDNs(tb)[0]
	changed := time.Now()
	s.srv.Apply("dn: " + sys + "\nchangetype: modify\nreplace: description\ndescription: changed-by-the-test\n")
	for {
		_, body := get(t, tx.url()+"/v1/smartsets/texas-linux-servers")
		if strings.Contains(string(body), "changed-by-the-test") {
			t.Logf("change served %v after the write", time.Since(changed).Round(time.Millisecond))
			break
		}
		if time.Since(changed) > 2*time.Second {
			t.Fatalf("change not served within 2s: %s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// kill -9 of the owner: a survivor serves the table within TTL + 3 s,
	// with a higher epoch.
	tx.signal(syscall.SIGKILL)
	killed := time.Now()
	for {
		// Until the Texas lease expires, Japan still redirects to the dead
		// agent: such a request fails like it would for curl -L.
		resp, body, err := tryGet(jp.url() + "/v1/smartsets/texas-linux-servers")
		if err == nil && resp.StatusCode == 200 {
			var after tableJSON
			json.Unmarshal(body, &after)
			e2, _ := strconv.ParseInt(resp.Header.Get("TCS-Epoch"), 10, 64)
			if after.Owner == tx.name || e2 <= epoch || after.RowCount != tb.RowCount {
				t.Fatalf("after the kill: owner %s epoch %d (was %d) rows %d", after.Owner, e2, epoch, after.RowCount)
			}
			t.Logf("served by %s at epoch %d, %v after kill -9", after.Owner, e2, time.Since(killed).Round(time.Millisecond))
			break
		}
		if time.Since(killed) > ttl+3*time.Second {
			t.Fatalf("no table within TTL+3s after kill -9: %v %s", err, body)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Bad requests get a clear 4xx, and the agent keeps serving.
	for _, tc := range []struct {
		path, accept string
		code         int
	}{
		{"/v1/smartsets/../etc/passwd", "", 400},
		{"/v1/smartsets/%2e%2e%2fetc%2fpasswd", "", 404}, // a name ("../etc/passwd"), looked up: no such set
		{"/v1/smartsets/" + strings.Repeat("a", 300), "", 400},
		{"/v1/smartsets/no-such-set", "", 404},
		{"/v1/smartsets/japan-routers", "text/", 400},
		{"/v1/smartsets/japan-routers", "image/png", 406},
	} {
		out, err := exec.Command("curl", "-s", "--path-as-is", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Accept: "+tc.accept, jp.url()+tc.path).Output()
		if err != nil || string(out) != strconv.Itoa(tc.code) {
			t.Errorf("GET %s (Accept %q): %s %v, want %d", tc.path, tc.accept, out, err, tc.code)
		}
	}
	if resp, body := get(t, jp.url()+"/v1/smartsets/japan-routers"); resp.StatusCode != 200 {
		t.Errorf("after the bad requests: %d %s", resp.StatusCode, body)
	}
	if resp, _ := get(t, jp.url()+"/healthz"); resp.StatusCode != 200 {
		t.Errorf("healthz %d", resp.StatusCode)
	}
	if resp, body := get(t, jp.url()+"/metrics"); resp.StatusCode != 200 || !strings.Contains(string(body), "tcs_sets_owned") ||
		!strings.Contains(string(body), "tcs_http_requests_total") || !strings.Contains(string(body), "tcs_table_refresh_seconds") {
		t.Errorf("metrics %d:\n%.400s", resp.StatusCode, body)
	}
}

// With the location database stopped, the owner keeps serving the last
// table, marked stale; it refreshes when the database returns.
func TestStaleWhileLocationDatabaseDown(t *testing.T) {
	s := newSwarm(t, 2*time.Second)
	db := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	s.srv.Apply(fmt.Sprintf(`dn: cn=Nevada,ou=locations,dc=example,dc=org
objectClass: tcsLocation
cn: Nevada
tcsCoordinates: 39.1638,-119.7674
tcsDatabaseURL: %s

dn: cn=nevada-routers,ou=smartsets,dc=example,dc=org
objectClass: smartSet
cn: nevada-routers
geoLocation: Nevada
tcsQuery: ldap:///cn=Texas,ou=locations,dc=example,dc=org?cn,tcsOSType?one?(tcsSystemType=router)
`, db.URL))
	// The agent binds to the location database with its own credentials.
	db.AddAgentWith("tcs-nevada-1", s.account("tcs-nevada-1").Password)
	nv := s.start("tcs-nevada-1", "Nevada")
	s.eventually(10*time.Second, "placement", ownedBy("Nevada", nv.name))
	url := nv.url() + "/v1/smartsets/nevada-routers"
	var fresh tableJSON
	waitFor(t, 10*time.Second, func() error {
		resp, body := get(t, url)
		if resp.StatusCode != 200 {
			return fmt.Errorf("%d %s", resp.StatusCode, body)
		}
		return json.Unmarshal(body, &fresh)
	})
	if fresh.RowCount < 2 || fresh.Stale {
		t.Fatalf("table from the location database: %+v", fresh)
	}

	db.Stop()
	waitFor(t, 40*time.Second, func() error {
		resp, body := get(t, url)
		var tb tableJSON
		json.Unmarshal(body, &tb)
		if resp.StatusCode != 200 || !tb.Stale || resp.Header.Get("TCS-Stale") != "true" {
			return fmt.Errorf("not stale yet: %d stale=%v", resp.StatusCode, tb.Stale)
		}
		if tb.RowCount != fresh.RowCount {
			return fmt.Errorf("stale table lost its rows: %d, had %d", tb.RowCount, fresh.RowCount)
		}
		return nil
	})
	db.Start()
	waitFor(t, 40*time.Second, func() error {
		resp, body := get(t, url)
		var tb tableJSON
		json.Unmarshal(body, &tb)
		if resp.StatusCode != 200 || tb.Stale || resp.Header.Get("TCS-Stale") != "" {
			return fmt.Errorf("still stale: %d %s", resp.StatusCode, body)
		}
		return nil
	})
	_ = smartset.Key
}

func waitFor(t testing.TB, within time.Duration, cond func() error) {
	t.Helper()
	var err error
	for start := time.Now(); time.Since(start) < within; time.Sleep(100 * time.Millisecond) {
		if err = cond(); err == nil {
			return
		}
	}
	t.Fatalf("not within %v: %v", within, err)
}
