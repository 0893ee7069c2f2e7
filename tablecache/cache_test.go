package tablecache_test

import (
	"context"
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"tcs/internal/ldaptest"
	"tcs/ldapdir"
	"tcs/smartset"
	"tcs/tablecache"
)

const texasDN = "cn=Texas,ou=locations,dc=example,dc=org"

func open(t *testing.T, s *ldaptest.Server) *ldapdir.Dir {
	t.Helper()
	d, err := ldapdir.Open(ldapdir.Config{URL: s.URL, BaseDN: s.BaseDN, BindDN: s.BindDN, BindPassword: s.Password,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// readSet reads a SmartSet and its location entry from the directory.
func readSet(t *testing.T, d *ldapdir.Dir, name string) (smartset.Set, smartset.Location) {
	t.Helper()
	ctx := ctxT(t, 10*time.Second)
	set, err := d.Set(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	locs, err := d.Locations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range locs {
		if strings.EqualFold(l.Name, set.Location) {
			return set, l
		}
	}
	return set, smartset.Location{}
}

// start makes a cache and runs it until the test ends, checking that Run
// returns.
func start(t *testing.T, opts tablecache.Options) *tablecache.Cache {
	t.Helper()
	c := tablecache.New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("Run did not return within 20s of its context ending")
		}
	})
	return c
}

// waitTable waits until set name's table satisfies ok, failing after
// within with the last table seen and what ok said.
func waitTable(t *testing.T, c *tablecache.Cache, name string, within time.Duration, ok func(tablecache.Table) string) tablecache.Table {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		tab, found := c.Get(name)
		why := "not loaded"
		if found {
			if why = ok(tab); why == "" {
				return tab
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s after %v: %s\ntable: %+v", name, within, why, tab)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func loaded(tab tablecache.Table) string {
	if tab.Failed || tab.Stale || tab.Refreshed.IsZero() {
		return fmt.Sprintf("failed=%v stale=%v err=%q", tab.Failed, tab.Stale, tab.Err)
	}
	return ""
}

// cell returns the values of column col in the row whose dn starts with
// rdn, and whether there is such a row.
func cell(tab tablecache.Table, rdn, col string) ([]string, bool) {
	j := slices.Index(tab.Columns, col)
	for _, row := range tab.Rows {
		if strings.HasPrefix(row[0][0], rdn+",") {
			if j < 0 {
				return nil, true
			}
			return row[j], true
		}
	}
	return nil, false
}

func dns(tab tablecache.Table) []string {
	var out []string
	for _, row := range tab.Rows {
		out = append(out, row[0][0])
	}
	return out
}

var etagRE = regexp.MustCompile(`^"(\d+)-([0-9a-f]{16})"$`)

// The Texas Linux servers' table: dn first, then the URL's attributes in
// its order and spelling, rows by DN, both descriptions of tx-srv-01 in
// server order; a new epoch changes the ETag, not the rows.
func TestTexasTable(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	d := open(t, s)
	c := start(t, tablecache.Options{Directory: d, RefreshInterval: time.Minute})
	set, loc := readSet(t, d, "texas-linux-servers")
	set.Epoch = 3
	c.Own(set, loc)

	tab := waitTable(t, c, "texas-linux-servers", 10*time.Second, loaded)
	if want := []string{"dn", "cn", "tcsSystemType", "tcsOSType", "description"}; !slices.Equal(tab.Columns, want) {
		t.Fatalf("columns %q, want %q", tab.Columns, want)
	}
	if want := []string{"cn=tx-srv-01," + texasDN, "cn=tx-srv-02," + texasDN}; !slices.Equal(dns(tab), want) {
		t.Fatalf("rows %q, want %q", dns(tab), want)
	}
	if v, _ := cell(tab, "cn=tx-srv-01", "description"); !slices.Equal(v, []string{"inventory database, primary", "nightly backup to tx-srv-03"}) {
		t.Fatalf("tx-srv-01 description %q, want both values in server order", v)
	}
	if v, _ := cell(tab, "cn=tx-srv-02", "tcsOSType"); !slices.Equal(v, []string{"Linux"}) {
		t.Fatalf("tx-srv-02 tcsOSType %q", v)
	}
	m := etagRE.FindStringSubmatch(tab.ETag)
	if m == nil || m[1] != "3" {
		t.Fatalf("ETag %q, want \"3-<16 hex>\"", tab.ETag)
	}
	if tab.Set != "texas-linux-servers" || tab.Epoch != 3 || tab.Query != set.Query || tab.Err != "" {
		t.Fatalf("table head %q epoch %d query %q err %q", tab.Set, tab.Epoch, tab.Query, tab.Err)
	}
	if names := c.Names(); !slices.Equal(names, []string{"texas-linux-servers"}) {
		t.Fatalf("Names %q", names)
	}

	// Same query, new owner epoch: same rows at once, new ETag epoch, same hash.
	set.Epoch = 4
	c.Own(set, loc)
	tab2, ok := c.Get("Texas-Linux-Servers") // names are case-insensitive
	if !ok || tab2.Epoch != 4 || !slices.Equal(dns(tab2), dns(tab)) || tab2.ETag != `"4-`+m[2]+`"` {
		t.Fatalf("after epoch 4: ok=%v epoch %d ETag %q rows %q", ok, tab2.Epoch, tab2.ETag, dns(tab2))
	}

	// Another query: the table reloads with the new columns.
	set.Query = "ldap:///" + texasDN + "?serialNumber?one?(tcsSystemType=router)"
	c.Own(set, loc)
	tab3 := waitTable(t, c, "texas-linux-servers", 10*time.Second, func(tab tablecache.Table) string {
		if why := loaded(tab); why != "" {
			return why
		}
		if !slices.Equal(tab.Columns, []string{"dn", "serialNumber"}) || len(tab.Rows) != 2 {
			return fmt.Sprintf("columns %q rows %q", tab.Columns, dns(tab))
		}
		return ""
	})
	if v, _ := cell(tab3, "cn=tx-rtr-01", "serialNumber"); !slices.Equal(v, []string{"FTX1942A1B7"}) {
		t.Fatalf("tx-rtr-01 serialNumber %q", v)
	}
}

// A change to a selected system shows within 2 s: the change watch did it,
// not the schedule (one minute).
func TestChangeShowsWithinTwoSeconds(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	d := open(t, s)
	c := start(t, tablecache.Options{Directory: d, RefreshInterval: time.Minute})
	for _, name := range []string{"texas-linux-servers", "texas-routers"} { // one source, one watch
		set, loc := readSet(t, d, name)
		c.Own(set, loc)
	}
	waitTable(t, c, "texas-linux-servers", 10*time.Second, loaded)
	waitTable(t, c, "texas-routers", 10*time.Second, loaded)

	for i, change := range []struct {
		ldif string
		ok   func(tablecache.Table) string
	}{
		{"dn: cn=tx-srv-02," + texasDN + "\nchangetype: modify\nreplace: description\ndescription: web front end, moved to rack 9\n",
			func(tab tablecache.Table) string {
				if v, _ := cell(tab, "cn=tx-srv-02", "description"); !slices.Equal(v, []string{"web front end, moved to rack 9"}) {
					return fmt.Sprintf("tx-srv-02 description %q", v)
				}
				return ""
			}},
		{"dn: cn=tx-srv-05," + texasDN + "\nobjectClass: device\nobjectClass: tcsSystem\ncn: tx-srv-05\ntcsSystemType: server\ntcsOSType: Linux\ngeoLocation: Texas\n",
			func(tab tablecache.Table) string {
				if _, ok := cell(tab, "cn=tx-srv-05", "cn"); !ok {
					return fmt.Sprintf("no tx-srv-05 in %q", dns(tab))
				}
				return ""
			}},
		{"dn: cn=tx-srv-01," + texasDN + "\nchangetype: modify\nreplace: tcsOSType\ntcsOSType: AIX\n",
			func(tab tablecache.Table) string {
				if _, ok := cell(tab, "cn=tx-srv-01", "cn"); ok {
					return fmt.Sprintf("tx-srv-01 (now AIX) still in %q", dns(tab))
				}
				return ""
			}},
	} {
		began := time.Now()
		s.Apply(change.ldif)
		waitTable(t, c, "texas-linux-servers", 2*time.Second, change.ok)
		t.Logf("change %d seen after %v", i+1, time.Since(began).Round(time.Millisecond))
	}
	if tab, _ := c.Get("texas-routers"); len(tab.Rows) != 2 || tab.Failed || tab.Stale {
		t.Fatalf("texas-routers %+v", tab)
	}
}

// A location whose tcsDatabaseURL names a second server: host-less queries
// run there. When it stops, the last rows stay, stale, with the error;
// when it is back, the table is fresh again.
func TestLocationDatabaseAndStale(t *testing.T) {
	dir := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	db := ldaptest.Start(t)
	db.Apply("dn: " + texasDN + "\nobjectClass: tcsLocation\ncn: Texas\n")
	for i := 1; i <= 3; i++ {
		db.Apply(fmt.Sprintf("dn: cn=db-srv-%02d,%s\nobjectClass: device\nobjectClass: tcsSystem\ncn: db-srv-%02d\ntcsSystemType: server\ntcsOSType: Linux\ndescription: in the Texas database\ndescription: system %d\n", i, texasDN, i, i))
	}
	dir.Apply("dn: " + texasDN + "\nchangetype: modify\nadd: tcsDatabaseURL\ntcsDatabaseURL: " + db.URL + "\n")

	d := open(t, dir)
	reg := prometheus.NewRegistry()
	c := start(t, tablecache.Options{Directory: d, RefreshInterval: 500 * time.Millisecond, Registerer: reg})
	set, loc := readSet(t, d, "texas-linux-servers")
	if loc.DatabaseURL != db.URL {
		t.Fatalf("location %+v, want tcsDatabaseURL %s", loc, db.URL)
	}
	c.Own(set, loc)
	want := []string{"cn=db-srv-01," + texasDN, "cn=db-srv-02," + texasDN, "cn=db-srv-03," + texasDN}
	tab := waitTable(t, c, set.Name, 10*time.Second, func(tab tablecache.Table) string {
		if why := loaded(tab); why != "" {
			return why
		}
		if !slices.Equal(dns(tab), want) {
			return fmt.Sprintf("rows %q, want the second server's %q", dns(tab), want)
		}
		return ""
	})
	if v, _ := cell(tab, "cn=db-srv-02", "description"); !slices.Equal(v, []string{"in the Texas database", "system 2"}) {
		t.Fatalf("db-srv-02 description %q", v)
	}

	db.Stop()
	stale := waitTable(t, c, set.Name, 10*time.Second, func(tab tablecache.Table) string {
		if !tab.Stale || tab.Err == "" || tab.Failed {
			return fmt.Sprintf("stale=%v err=%q failed=%v", tab.Stale, tab.Err, tab.Failed)
		}
		return ""
	})
	// The rows and ETag stay; Refreshed is the last good refresh, which may
	// be one more (every 500 ms) between the read above and the stop.
	if !slices.Equal(dns(stale), want) || stale.ETag != tab.ETag || stale.Refreshed.Before(tab.Refreshed) {
		t.Fatalf("stale table changed its rows: %q ETag %q (was %q), last refreshed %v (was %v)",
			dns(stale), stale.ETag, tab.ETag, stale.Refreshed, tab.Refreshed)
	}
	t.Logf("stale: %s", stale.Err)
	if got := metric(t, reg, "tcs_tables_stale", ""); got != 1 {
		t.Fatalf("tcs_tables_stale = %v while stale, want 1", got)
	}
	if got := metric(t, reg, "tcs_table_refresh_errors_total", "unavailable"); got < 1 {
		t.Fatalf("tcs_table_refresh_errors_total{reason=unavailable} = %v", got)
	}

	began := time.Now()
	db.Start()
	db.Apply("dn: cn=db-srv-02," + texasDN + "\nchangetype: modify\nreplace: description\ndescription: back\n")
	waitTable(t, c, set.Name, 10*time.Second, func(tab tablecache.Table) string {
		if why := loaded(tab); why != "" {
			return why
		}
		if v, _ := cell(tab, "cn=db-srv-02", "description"); !slices.Equal(v, []string{"back"}) {
			return fmt.Sprintf("db-srv-02 description %q", v)
		}
		if tab.Err != "" {
			return "err " + tab.Err
		}
		return ""
	})
	t.Logf("fresh again %v after the restart", time.Since(began).Round(time.Millisecond))
	if got := metric(t, reg, "tcs_tables_stale", ""); got != 0 {
		t.Fatalf("tcs_tables_stale = %v when fresh, want 0", got)
	}
}

// A source without syncprov: its tables refresh on the schedule.
func TestSourceWithoutSyncprov(t *testing.T) {
	dir := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	db := ldaptest.Start(t, ldaptest.WithOverlays("dds"), ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	d := open(t, dir)
	logger, logs := logtest.NewNullLogger()
	logger.SetLevel(logrus.DebugLevel)
	c := start(t, tablecache.Options{Directory: d, RefreshInterval: 300 * time.Millisecond, Logger: logger})
	set, loc := readSet(t, d, "texas-routers")
	loc.DatabaseURL = db.URL + "/"
	c.Own(set, loc)
	waitTable(t, c, set.Name, 10*time.Second, loaded)
	deadline := time.Now().Add(10 * time.Second)
	for !slices.ContainsFunc(logs.AllEntries(), func(e *logrus.Entry) bool { return strings.Contains(e.Message, "has no syncprov") }) {
		if time.Now().After(deadline) {
			t.Fatal("the cache did not log that the source has no syncprov")
		}
		time.Sleep(10 * time.Millisecond)
	}
	db.Apply("dn: cn=tx-rtr-02," + texasDN + "\nchangetype: modify\nreplace: serialNumber\nserialNumber: NEW-1\n")
	waitTable(t, c, set.Name, 5*time.Second, func(tab tablecache.Table) string {
		if v, _ := cell(tab, "cn=tx-rtr-02", "serialNumber"); !slices.Equal(v, []string{"NEW-1"}) {
			return fmt.Sprintf("serialNumber %q", v)
		}
		return ""
	})
}

// More rows than the row limit: Failed, no rows, the error says the limit
// and the setting; a query that fits in the same cache is fine.
func TestRowLimit(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	d := open(t, s)
	reg := prometheus.NewRegistry()
	c := start(t, tablecache.Options{Directory: d, RowLimit: 2, RefreshInterval: time.Minute, Registerer: reg})
	big, loc := readSet(t, d, "texas-unix-servers") // 3 systems
	c.Own(big, loc)
	small, loc := readSet(t, d, "texas-routers") // 2 systems
	c.Own(small, loc)
	tab := waitTable(t, c, big.Name, 10*time.Second, func(tab tablecache.Table) string {
		if !tab.Failed {
			return "not failed"
		}
		return ""
	})
	if want := "query returned more than 2 rows ([cache] row_limit)"; tab.Err != want || len(tab.Rows) != 0 || tab.Stale || tab.ETag != "" {
		t.Fatalf("err %q rows %d stale %v ETag %q; want %q, no rows", tab.Err, len(tab.Rows), tab.Stale, tab.ETag, want)
	}
	waitTable(t, c, small.Name, 10*time.Second, loaded)
	if got := metric(t, reg, "tcs_table_refresh_errors_total", "row_limit"); got < 1 {
		t.Fatalf("tcs_table_refresh_errors_total{reason=row_limit} = %v", got)
	}
	if got := metric(t, reg, "tcs_tables", ""); got != 2 {
		t.Fatalf("tcs_tables = %v, want 2", got)
	}
	if got := metric(t, reg, "tcs_tables_stale", ""); got != 0 {
		t.Fatalf("tcs_tables_stale = %v, want 0", got)
	}
}

// metric reads one sample from reg: the counter or gauge name, with label
// reason when given.
func metric(t *testing.T, reg *prometheus.Registry, name, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := reason == ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					match = true
				}
			}
			if !match {
				continue
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no metric %s{reason=%q}", name, reason)
	return 0
}

// Queries that cannot be answered give a Failed table with the reason, at
// once for a bad URL, after the search for a missing base; none panics.
func TestBadQueries(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	d := open(t, s)
	c := start(t, tablecache.Options{Directory: d, RefreshInterval: time.Minute})
	texas := smartset.Location{Name: "Texas"}
	for _, tc := range []struct {
		set  smartset.Set
		loc  smartset.Location
		want string
	}{
		{smartset.Set{Name: "bad-scope", Query: "ldap:///" + texasDN + "?cn?bogus"}, texas, `scope "bogus"`},
		{smartset.Set{Name: "bad-filter", Query: "ldap:///" + texasDN + "?cn?one?(cn=x"}, texas, `filter "(cn=x"`},
		{smartset.Set{Name: "critical-ext", Query: "ldap:///" + texasDN + "????!x-y"}, texas, "critical extension"},
		{smartset.Set{Name: "no-query"}, texas, "no tcsQuery"},
		{smartset.Set{Name: "bad-db-url", Query: "ldap:///" + texasDN + "?cn?one"},
			smartset.Location{Name: "Texas", DatabaseURL: "http://db.example.org"}, `location Texas: tcsDatabaseURL "http://db.example.org"`},
		{smartset.Set{Name: "db-url-no-host", Query: "ldap:///" + texasDN + "?cn?one"},
			smartset.Location{Name: "Texas", DatabaseURL: "ldap:///dc=x"}, "names no server"},
		{smartset.Set{Name: "no-base", Query: "ldap:///cn=Nowhere,ou=locations,dc=example,dc=org?cn?one"}, texas, "no such entry"},
	} {
		c.Own(tc.set, tc.loc)
		tab := waitTable(t, c, tc.set.Name, 10*time.Second, func(tab tablecache.Table) string {
			if !tab.Failed {
				return "not failed"
			}
			return ""
		})
		if !strings.Contains(tab.Err, tc.want) || len(tab.Rows) != 0 || tab.Stale {
			t.Errorf("%s: err %q rows %d stale %v; want an error with %q", tc.set.Name, tab.Err, len(tab.Rows), tab.Stale, tc.want)
		}
	}
	// Fixing the query fixes the table.
	fixed := smartset.Set{Name: "bad-scope", Query: "ldap:///" + texasDN + "?cn?one?(tcsSystemType=router)"}
	c.Own(fixed, texas)
	waitTable(t, c, "bad-scope", 10*time.Second, loaded)
}

// Sets without a tcsQuery (a fleet's sets made without tables) give one
// warning, not one each; every such table still answers with the error.
func TestSetsWithoutQueriesWarnOnce(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	d := open(t, s)
	logger, logs := logtest.NewNullLogger()
	logger.SetLevel(logrus.DebugLevel)
	reg := prometheus.NewRegistry()
	c := start(t, tablecache.Options{Directory: d, RefreshInterval: time.Minute, Logger: logger, Registerer: reg})
	texas := smartset.Location{Name: "Texas"}
	for i := range 50 {
		c.Own(smartset.Set{Name: fmt.Sprintf("plain-%d", i), Epoch: 1}, texas)
	}
	c.Own(smartset.Set{Name: "bad-scope", Query: "ldap:///" + texasDN + "?cn?bogus"}, texas)
	for i := range 50 {
		waitTable(t, c, fmt.Sprintf("plain-%d", i), 10*time.Second, func(tab tablecache.Table) string {
			if !tab.Failed || !strings.Contains(tab.Err, "no tcsQuery") {
				return fmt.Sprintf("failed %v, err %q", tab.Failed, tab.Err)
			}
			return ""
		})
	}
	var warned, debug []string
	for _, e := range logs.AllEntries() {
		set, _ := e.Data["set"].(string)
		switch e.Level {
		case logrus.WarnLevel:
			warned = append(warned, set)
		case logrus.DebugLevel:
			if strings.Contains(e.Message, "query cannot run") {
				debug = append(debug, set)
			}
		}
	}
	slices.Sort(warned)
	if len(warned) != 2 || warned[0] != "bad-scope" || !strings.HasPrefix(warned[1], "plain-") {
		t.Errorf("warnings for sets %q, want one for bad-scope and one for the first set without a query", warned)
	}
	if len(debug) != 49 {
		t.Errorf("%d debug lines for sets without a query, want 49", len(debug))
	}
	if got := metric(t, reg, "tcs_table_refresh_errors_total", "query"); got != 51 {
		t.Errorf("query errors counted %v, want 51", got)
	}
}

// Drop forgets the table at once and for good.
func TestDrop(t *testing.T) {
	// No syncprov: the tables refresh on the 50 ms schedule (with a synced
	// watch they would refresh on change only).
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"), ldaptest.WithOverlays("dds"))
	d := open(t, s)
	c := start(t, tablecache.Options{Directory: d, RefreshInterval: 50 * time.Millisecond})
	set, loc := readSet(t, d, "texas-routers")
	other, oloc := readSet(t, d, "japan-routers")
	c.Own(set, loc)
	c.Own(other, oloc)
	waitTable(t, c, set.Name, 10*time.Second, loaded)
	for i := range 20 { // drop and take again while refreshes run every 50 ms
		c.Drop(set.Name)
		if _, ok := c.Get(set.Name); ok {
			t.Fatalf("round %d: Get after Drop found the table", i)
		}
		if slices.Contains(c.Names(), set.Name) {
			t.Fatalf("round %d: Names after Drop: %q", i, c.Names())
		}
		c.Own(set, loc)
		waitTable(t, c, set.Name, 10*time.Second, loaded)
	}
	c.Drop(set.Name)
	// The other table keeps refreshing; two of its refreshes later the
	// dropped one is still gone (any refresh of it in flight has ended).
	first := waitTable(t, c, other.Name, 10*time.Second, loaded).Refreshed
	waitTable(t, c, other.Name, 10*time.Second, func(tab tablecache.Table) string {
		if !tab.Refreshed.After(first.Add(60 * time.Millisecond)) {
			return "not refreshed twice yet"
		}
		return ""
	})
	if _, ok := c.Get(set.Name); ok {
		t.Fatal("the dropped table came back")
	}
}

// Run returns when its context ends and leaves no goroutine behind: not
// the workers, not the watches, not the connections to other servers.
func TestRunLeavesNoGoroutines(t *testing.T) {
	dir := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	db := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	d := open(t, dir)
	if err := d.Ping(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	// The sets are read before counting: the Dir's own connections (one
	// for reads of many entries) are not Run's.
	type owned struct {
		set smartset.Set
		loc smartset.Location
	}
	var sets []owned
	for _, name := range []string{"texas-routers", "japan-routers", "california-routers"} {
		set, loc := readSet(t, d, name)
		if name == "japan-routers" {
			loc.DatabaseURL = db.URL
		}
		sets = append(sets, owned{set, loc})
	}
	before := runtime.NumGoroutine()

	c := tablecache.New(tablecache.Options{Directory: d, RefreshInterval: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	for _, o := range sets {
		c.Own(o.set, o.loc)
	}
	for _, name := range c.Names() {
		waitTable(t, c, name, 10*time.Second, loaded)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Run returned, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The tables stay readable after Run.
	if _, ok := c.Get("japan-routers"); !ok {
		t.Fatal("japan-routers gone after Run returned")
	}
}

// While a synced watch covers the source, an idle table is not searched
// again on the schedule (an idle agent sends no searches); a change still
// refreshes it, and when the watch's connection breaks the table is
// refreshed at once and goes stale while the source is down.
func TestIdleTableIsNotPolled(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	d := open(t, s)
	c := start(t, tablecache.Options{Directory: d, RefreshInterval: 100 * time.Millisecond})
	set, loc := readSet(t, d, "texas-routers")
	c.Own(set, loc)
	first := waitTable(t, c, set.Name, 10*time.Second, loaded)
	time.Sleep(time.Second) // ten refresh intervals; the first sync may reload once
	settled, _ := c.Get(set.Name)
	time.Sleep(time.Second)
	if now, _ := c.Get(set.Name); !now.Refreshed.Equal(settled.Refreshed) {
		t.Fatalf("idle table refreshed on schedule while the watch is synced: %v then %v (first %v)", settled.Refreshed, now.Refreshed, first.Refreshed)
	}
	s.Apply("dn: cn=tx-rtr-01,cn=Texas,ou=locations,dc=example,dc=org\nchangetype: modify\nreplace: tcsOSType\ntcsOSType: ChangedOS\n")
	waitTable(t, c, set.Name, 5*time.Second, func(tab tablecache.Table) string {
		for _, r := range tab.Rows {
			for _, cell := range r {
				if slices.Contains(cell, "ChangedOS") {
					return ""
				}
			}
		}
		return "change not seen"
	})
	s.Stop()
	stopped := time.Now()
	waitTable(t, c, set.Name, 5*time.Second, func(tab tablecache.Table) string {
		if !tab.Stale || len(tab.Rows) == 0 {
			return "not stale"
		}
		return ""
	})
	t.Logf("stale %v after the source stopped", time.Since(stopped).Round(time.Millisecond))
}
