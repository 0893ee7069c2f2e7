package tablecache_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"tcs/internal/ldaptest"
	"tcs/smartset"
	"tcs/tablecache"
)

// closedWithin reports whether ch is closed within d.
func closedWithin(ch <-chan struct{}, d time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}

// The index grows with every change of the rows and with the epoch (its
// high 32 bits), never with a refresh that finds the same rows; Changed is
// closed by the load, by a change of the source, by a new epoch and by
// Drop, and not otherwise.
func TestIndexAndChanged(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	d := open(t, s)
	c := start(t, tablecache.Options{Directory: d, RefreshInterval: 200 * time.Millisecond})
	set, loc := readSet(t, d, "texas-routers")

	loadedCh := c.Changed(set.Name)
	c.Own(set, loc)
	if !closedWithin(loadedCh, 10*time.Second) {
		t.Fatal("Changed not closed by the first load")
	}
	first := waitTable(t, c, set.Name, 10*time.Second, loaded)
	if tablecache.EpochOf(first.Index) != set.Epoch || first.Index <= set.Epoch<<32 {
		t.Fatalf("index %d of a table at epoch %d: want epoch<<32 | a revision > 0", first.Index, set.Epoch)
	}

	// Scheduled refreshes (every 200ms here) that find the same rows change nothing.
	quiet := c.Changed(set.Name)
	if closedWithin(quiet, time.Second) {
		t.Fatal("Changed closed without a change")
	}
	if tab, _ := c.Get(set.Name); tab.Index != first.Index {
		t.Fatalf("index went from %d to %d without a change", first.Index, tab.Index)
	}

	// A change of a row raises the index.
	s.Apply("dn: cn=tx-rtr-01," + texasDN + "\nchangetype: modify\nreplace: description\ndescription: moved\n")
	if !closedWithin(quiet, 10*time.Second) {
		t.Fatal("Changed not closed by a change of the source")
	}
	second := waitTable(t, c, set.Name, 10*time.Second, func(tab tablecache.Table) string {
		if tab.Index == first.Index {
			return "same index"
		}
		return ""
	})
	if second.Index <= first.Index {
		t.Fatalf("index went from %d to %d on a change", first.Index, second.Index)
	}

	// A new epoch (a new owner, or this one again after a takeover) is above any revision.
	moved := c.Changed(set.Name)
	set.Epoch++
	c.Own(set, loc)
	if !closedWithin(moved, time.Second) {
		t.Fatal("Changed not closed by a new epoch")
	}
	third, _ := c.Get(set.Name)
	if tablecache.EpochOf(third.Index) != set.Epoch || third.Index <= second.Index {
		t.Fatalf("index %d at epoch %d after %d", third.Index, set.Epoch, second.Index)
	}

	gone := c.Changed(set.Name)
	c.Drop(set.Name)
	if !closedWithin(gone, time.Second) {
		t.Fatal("Changed not closed by Drop")
	}
}

// Bad tcsQuery values (issue 10): not an LDAP URL, a base that does not
// exist, more rows than row_limit. Each gives a failed table whose error
// names the set and the problem, logged once however often the table is
// refreshed; the good table beside them is not held up.
func TestBadQueryLoggedOnce(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	d := open(t, s)
	logger, logs := logtest.NewNullLogger()
	logger.SetLevel(logrus.DebugLevel)
	c := start(t, tablecache.Options{Directory: d, RefreshInterval: 100 * time.Millisecond, RowLimit: 2, Logger: logger})
	texas := smartset.Location{Name: "Texas"}
	bad := []struct {
		set  smartset.Set
		want string
	}{
		{smartset.Set{Name: "not-a-url", Epoch: 1, Query: "all the Texas routers please"}, "LDAP URL"},
		{smartset.Set{Name: "http-url", Epoch: 1, Query: "http://example.org/cn=Texas"}, "LDAP URL"},
		{smartset.Set{Name: "no-base", Epoch: 1, Query: "ldap:///cn=Atlantis,ou=locations,dc=example,dc=org?cn?one"}, "no such entry"},
		{smartset.Set{Name: "too-many", Epoch: 1, Query: "ldap:///" + texasDN + "?cn?one?(tcsSystemType=server)"}, "more than 2 rows"},
	}
	for _, b := range bad {
		c.Own(b.set, texas)
	}
	good, loc := readSet(t, d, "texas-routers") // 2 rows: within the limit
	c.Own(good, loc)
	waitTable(t, c, good.Name, 10*time.Second, loaded)
	for _, b := range bad {
		tab := waitTable(t, c, b.set.Name, 10*time.Second, func(tab tablecache.Table) string {
			if !tab.Failed {
				return "not failed"
			}
			return ""
		})
		if !strings.Contains(tab.Err, b.want) {
			t.Errorf("%s: error %q, want it to say %q", b.set.Name, tab.Err, b.want)
		}
	}
	time.Sleep(1500 * time.Millisecond) // about 15 refresh intervals
	for _, b := range bad {
		n := 0
		for _, e := range logs.AllEntries() {
			if e.Data["set"] == b.set.Name && e.Level <= logrus.WarnLevel {
				n++
				if !strings.Contains(e.Message+" "+errText(e), b.want) {
					t.Errorf("%s: log line %q %v does not say %q", b.set.Name, e.Message, e.Data, b.want)
				}
			}
		}
		if n != 1 {
			t.Errorf("%s: %d warning lines in 1.5s of refreshes every 100ms, want 1", b.set.Name, n)
		}
	}
	if tab, _ := c.Get(good.Name); tab.Failed || len(tab.Rows) != 2 {
		t.Errorf("the good table beside the bad ones: failed %v, %d rows", tab.Failed, len(tab.Rows))
	}
}

// errText is the error a log entry carries, as text.
func errText(e *logrus.Entry) string {
	if err, ok := e.Data[logrus.ErrorKey].(error); ok {
		return err.Error()
	}
	if s, ok := e.Data["error"].(string); ok {
		return s
	}
	return ""
}
