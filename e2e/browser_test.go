package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"tcs/internal/ldaptest"
)

// chromiumPath is Debian's chromium (TCS_CHROMIUM overrides). The test
// fails, not skips, without it: `make test` installs it first.
func chromiumPath(t *testing.T) string {
	t.Helper()
	exe := os.Getenv("TCS_CHROMIUM")
	if exe == "" {
		exe = "/usr/bin/chromium"
	}
	if fi, err := os.Stat(exe); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("the browser test needs headless Chromium at %s (%v): run scripts/install-chromium.sh (make deps does), or set TCS_CHROMIUM", exe, err)
	}
	return exe
}

// browserLog collects Chromium's output for a failure report.
type browserLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *browserLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *browserLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newBrowser starts a headless Chromium with a fresh profile and returns a
// tab's context; the browser is stopped when the test ends. The flags keep
// Chromium off the network: this machine has none, and its background
// connections would be refused in bulk.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	exe := chromiumPath(t)
	profile := t.TempDir()
	out := &browserLog{}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1366, 900), // a laptop screen
		chromedp.CombinedOutput(out),
	)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { // before TempDir removes the profile
		cancel()
		cancelAlloc()
		if t.Failed() {
			t.Logf("---- chromium output ----\n%s", tail(out.String(), 40))
		}
	})
	start := time.Now()
	if err := chromedp.Do(ctx); err != nil { // starts the browser, with no timeout
		t.Fatalf("cannot start %s: %v\n%s", exe, err, tail(out.String(), 40))
	}
	t.Logf("chromium started in %v", time.Since(start).Round(time.Millisecond))
	return ctx
}

// inBrowser runs one browser action with a timeout.
func inBrowser[T any](ctx context.Context, within time.Duration, a chromedp.Action[T]) (T, error) {
	tctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	return chromedp.Run(tctx, a)
}

// domSet is a set as the page shows it, read from its data attributes.
type domSet struct {
	Set      string `json:"set"`
	Owner    string `json:"owner"`
	State    string `json:"state"`
	Epoch    int64  `json:"epoch"`
	Location string `json:"location"` // of the card it is in
	Badge    string `json:"badge"`    // the text badge
}

const jsReadSets = `Array.from(document.querySelectorAll('#locations [data-set]')).map(function (e) {
  var card = e.closest('[data-location]');
  var badge = e.querySelector('.badge');
  return {set: e.dataset.set, owner: e.dataset.owner, state: e.dataset.state, epoch: Number(e.dataset.epoch),
          location: card ? card.dataset.location : '', badge: badge ? badge.textContent : ''};
})`

// domPanel is the table panel as the page shows it.
type domPanel struct {
	Open    bool       `json:"open"`
	Title   string     `json:"title"`
	Meta    string     `json:"meta"`
	Error   string     `json:"error"`
	Columns []string   `json:"columns"`
	Rows    [][]string `json:"rows"`
}

const jsReadPanel = `(function () {
  var p = document.getElementById('panel'), err = document.getElementById('panel-error');
  var cells = function (tr, sel) { return Array.from(tr.querySelectorAll(sel)).map(function (c) { return c.textContent; }); };
  var head = document.querySelector('#panel-table thead tr');
  return {open: !p.hidden, title: document.getElementById('panel-title').textContent,
          meta: document.getElementById('panel-meta').textContent, error: err.hidden ? '' : err.textContent,
          columns: head ? cells(head, 'th') : [],
          rows: Array.from(document.querySelectorAll('#panel-table tbody tr')).map(function (tr) { return cells(tr, 'td'); })};
})()`

// waitPage reads the page until check passes or within ends.
func waitPage[T any](t *testing.T, ctx context.Context, within time.Duration, what, expr string, check func(T) error) (T, time.Duration) {
	t.Helper()
	start := time.Now()
	var (
		v   T
		err error
	)
	for time.Since(start) < within {
		v, err = inBrowser(ctx, 5*time.Second, chromedp.Evaluate[T](expr))
		if err == nil {
			if err = check(v); err == nil {
				return v, time.Since(start)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v: %v", what, within, err)
	return v, 0
}

func pageSets(sets []domSet) map[string]domSet {
	m := map[string]domSet{}
	for _, s := range sets {
		m[s.Set] = s
	}
	return m
}

// The live status page in a real browser: it shows every set of the
// example in its location with its owner and state, shows a set's table
// on a click (through the redirect to the owner), and after a kill -9 of
// the Texas agent shows California's agent owning the Texas sets, without
// a reload.
func TestStatusPageInBrowser(t *testing.T) {
	ctx := newBrowser(t)
	s := newSwarm(t, 2*time.Second, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	jp := s.start("tcs-japan-1", "Japan")
	tx := s.start("tcs-texas-1", "Texas")
	ca := s.start("tcs-california-1", "California")
	s.eventually(20*time.Second, "placement", placedAtHome(jp, tx, ca))
	home := map[string]string{"Japan": jp.name, "Texas": tx.name, "California": ca.name}

	// California's agent serves the page; it survives the kill.
	if _, err := inBrowser(ctx, 30*time.Second, chromedp.Navigate(ca.url()+"/")); err != nil {
		t.Fatalf("open %s: %v", ca.url(), err)
	}
	sets, took := waitPage(t, ctx, 30*time.Second, "every set shown at home, optimal", jsReadSets, func(sets []domSet) error {
		if len(sets) != 9 {
			return fmt.Errorf("%d sets on the page, want the example's 9: %+v", len(sets), sets)
		}
		for _, st := range sets {
			if want := home[st.Location]; want == "" || !strings.HasPrefix(st.Set, strings.ToLower(st.Location)+"-") ||
				st.Owner != want || st.State != "optimal" || st.Badge != "✓ optimal" {
				return fmt.Errorf("%+v, want owner %q in its location's card, optimal", st, want)
			}
		}
		return nil
	})
	t.Logf("every set shown %v after the page opened", took.Round(time.Millisecond))
	before := pageSets(sets)
	if conn, err := inBrowser(ctx, 5*time.Second, chromedp.Evaluate[string](`document.getElementById('conn').textContent`)); err != nil || conn != "live" {
		t.Errorf("connection shown as %q (%v), want live", conn, err)
	}

	// Click a Japan set: California's agent redirects the fetch to Japan's,
	// which serves the three routers; a multi-valued cell is joined.
	if _, err := inBrowser(ctx, 10*time.Second, chromedp.Click(chromedp.CSS(`[data-set="japan-routers"]`))); err != nil {
		t.Fatalf("click japan-routers: %v", err)
	}
	panel, _ := waitPage(t, ctx, 15*time.Second, "the table of japan-routers", jsReadPanel, func(p domPanel) error {
		if !p.Open || p.Title != "japan-routers" || p.Error != "" || len(p.Rows) != 3 {
			return fmt.Errorf("panel %+v", p)
		}
		return nil
	})
	if strings.Join(panel.Columns, ",") != "dn,cn,tcsOSType,serialNumber,description" ||
		!strings.Contains(panel.Meta, "served by "+strings.TrimPrefix(jp.url(), "http://")) || !strings.Contains(panel.Meta, "owner tcs-japan-1") {
		t.Errorf("table panel: columns %v, meta %q", panel.Columns, panel.Meta)
	}
	found := false
	for _, row := range panel.Rows {
		if row[1] == "jp-rtr-03" {
			found = row[4] == "Osaka branch edge router, uplink to Tokyo core over leased line"
		}
	}
	if !found {
		t.Errorf("jp-rtr-03's two descriptions not shown joined: %v", panel.Rows)
	}

	// kill -9 of the Texas agent: the page shows California's agent owning
	// the Texas sets, at a higher epoch, in the same document.
	if _, err := inBrowser(ctx, 5*time.Second, chromedp.Evaluate[chromedp.Void](`window.tcsNotReloaded = true`)); err != nil {
		t.Fatal(err)
	}
	tx.signal(syscall.SIGKILL)
	killed := time.Now()
	_, took = waitPage(t, ctx, 30*time.Second, "the Texas sets owned by California", jsReadSets, func(sets []domSet) error {
		m := pageSets(sets)
		for _, name := range []string{"texas-routers", "texas-linux-servers", "texas-unix-servers"} {
			st := m[name]
			if st.Owner != ca.name || st.State != "optimal" || st.Location != "Texas" || st.Epoch <= before[name].Epoch {
				return fmt.Errorf("%+v, want owner %s, optimal, epoch above %d", st, ca.name, before[name].Epoch)
			}
		}
		return nil
	})
	t.Logf("the page showed the new owner %v after kill -9 (lease TTL 2s)", took.Round(time.Millisecond))
	if v, err := inBrowser(ctx, 5*time.Second, chromedp.Evaluate[bool](`window.tcsNotReloaded === true`)); err != nil || !v {
		t.Errorf("the page was reloaded (marker %v, %v)", v, err)
	}
	texas, err := inBrowser(ctx, 5*time.Second, chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll('[data-location="Texas"] [data-agent]')).map(function (e) { return e.dataset.agent; })`))
	if err != nil || len(texas) != 0 {
		t.Errorf("agents still shown in Texas after the kill: %v %v", texas, err)
	}

	// The table of a Texas set now comes from California; keep the view in
	// a screenshot.
	if _, err := inBrowser(ctx, 10*time.Second, chromedp.Click(chromedp.CSS(`[data-set="texas-linux-servers"]`))); err != nil {
		t.Fatalf("click texas-linux-servers: %v", err)
	}
	waitPage(t, ctx, 15*time.Second, "the table of texas-linux-servers", jsReadPanel, func(p domPanel) error {
		if p.Title != "texas-linux-servers" || len(p.Rows) != 2 || !strings.Contains(p.Meta, "owner "+ca.name) {
			return fmt.Errorf("panel %+v", p)
		}
		return nil
	})
	t.Logf("kill -9 to the Texas table served by California in the page: %v", time.Since(killed).Round(time.Millisecond))
	if _, err := inBrowser(ctx, 5*time.Second, chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`)); err != nil {
		t.Fatal(err)
	}
	png, err := inBrowser(ctx, 10*time.Second, chromedp.FullScreenshot(100)) // the whole page, as PNG
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if len(png) < 1000 || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("screenshot is not a PNG (%d bytes)", len(png))
	}
	shot := filepath.Join(t.TempDir(), "status-page.png")
	if dir := os.Getenv("TCS_SCREENSHOT_DIR"); dir != "" { // keep it to look at
		shot = filepath.Join(dir, "status-page.png")
	}
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", shot, len(png))

	// The page's own agent leaves and comes back on the same address: the
	// page says it is reconnecting, then follows the new process (which
	// takes its sets back from Japan's agent), still without a reload.
	ca.signal(syscall.SIGTERM)
	if err := ca.wait(t, 30*time.Second); err != nil {
		t.Fatalf("%s left with %v", ca.name, err)
	}
	waitPage(t, ctx, 15*time.Second, "reconnecting shown", `document.getElementById('conn').textContent`, func(conn string) error {
		if conn != "reconnecting…" {
			return fmt.Errorf("connection shown as %q", conn)
		}
		return nil
	})
	ca = s.start(ca.name, "California")
	_, took = waitPage(t, ctx, 30*time.Second, "California's agent back, owning its sets and Texas's", jsReadSets, func(sets []domSet) error {
		// The state shown until the stream is back is the old process's.
		if conn, err := inBrowser(ctx, 5*time.Second, chromedp.Evaluate[string](`document.getElementById('conn').textContent`)); err != nil || conn != "live" {
			return fmt.Errorf("connection shown as %q (%v)", conn, err)
		}
		if len(sets) != 9 {
			return fmt.Errorf("%d sets shown", len(sets))
		}
		for _, st := range sets {
			want := map[string]string{"Japan": jp.name, "Texas": ca.name, "California": ca.name}[st.Location]
			if st.Owner != want || st.State != "optimal" {
				return fmt.Errorf("%+v, want owner %s, optimal", st, want)
			}
		}
		return nil
	})
	t.Logf("the page followed the restarted agent: its sets shown back %v after it started", took.Round(time.Millisecond))
	if v, err := inBrowser(ctx, 5*time.Second, chromedp.Evaluate[bool](`window.tcsNotReloaded === true`)); err != nil || !v {
		t.Errorf("the page was reloaded across the restart (marker %v, %v)", v, err)
	}
}

// The page with 20,000 sets: within seconds of opening, the summary and
// every location's counts are shown (the sets of a big location only on
// demand), the filter finds one set among them, and an ownership change
// shows up without a reload.
func TestStatusPageAtScale(t *testing.T) {
	const n = 20000
	ctx := newBrowser(t)
	s := newSwarm(t, 3*time.Second, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	s.srv.Apply(setsLDIF("big", n, "Texas", "California", "Japan"))
	jp := s.start("tcs-japan-1", "Japan")
	tx := s.start("tcs-texas-1", "Texas")
	ca := s.start("tcs-california-1", "California")
	s.eventually(3*time.Minute, "placement of 20,009 sets", placedAtHome(jp, tx, ca))

	type domSummary struct {
		Sets     string   `json:"sets"`
		Optimal  string   `json:"optimal"`
		Counts   []string `json:"counts"`   // per card: "<location>:<optimal>"
		Expand   int      `json:"expand"`   // "show the sets" buttons
		SetNodes int      `json:"setNodes"` // set buttons in the DOM
	}
	const jsSummary = `(function () {
  var q = function (k) { var e = document.querySelector('#summary [data-count="' + k + '"]'); return e ? e.textContent : ''; };
  return {sets: q('sets'), optimal: q('optimal'),
          counts: Array.from(document.querySelectorAll('#locations [data-location]')).map(function (c) {
            var o = c.querySelector('.card-counts [data-state="optimal"] dd');
            return c.dataset.location + ':' + (o ? o.textContent : '');
          }),
          expand: document.querySelectorAll('#locations [data-expand]').length,
          setNodes: document.querySelectorAll('#locations [data-set]').length};
})()`
	want := fmt.Sprint(n + 9)
	summaryShown := func(d domSummary) error {
		if d.Sets != want || d.Optimal != want || len(d.Counts) != 3 || d.Expand != 3 {
			return fmt.Errorf("%+v, want %s sets, all optimal, three cards with counts and a button for their sets", d, want)
		}
		return nil
	}
	// Cold: the first viewer starts the page's directory watch, which
	// reads every set first.
	opened := time.Now()
	if _, err := inBrowser(ctx, 30*time.Second, chromedp.Navigate(ca.url()+"/")); err != nil {
		t.Fatalf("open %s: %v", ca.url(), err)
	}
	waitPage(t, ctx, 60*time.Second, "the summary of 20,009 sets", jsSummary, summaryShown)
	cold := time.Since(opened)
	// Warm: opened again while the watch runs (it lingers after the last
	// viewer), what a user reloading or a second viewer sees.
	opened = time.Now()
	if _, err := inBrowser(ctx, 30*time.Second, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	sum, _ := waitPage(t, ctx, 60*time.Second, "the summary of 20,009 sets after a reload", jsSummary, summaryShown)
	summaryAt := time.Since(opened)
	if sum.SetNodes > 0 {
		t.Errorf("%d sets in the DOM before any was asked for", sum.SetNodes)
	}
	for _, c := range sum.Counts {
		if !strings.HasSuffix(c, fmt.Sprint(n/3+3)) && !strings.HasSuffix(c, fmt.Sprint(n/3+4)) {
			t.Errorf("card counts %q, want about %d optimal", c, n/3)
		}
	}
	// The filter finds one set among 20,009.
	const name = "big-012345" // 12345 % 3 == 0: Texas
	if _, err := inBrowser(ctx, 10*time.Second, chromedp.SendKeys("#filter", name)); err != nil {
		t.Fatal(err)
	}
	sets, _ := waitPage(t, ctx, 30*time.Second, "the filter shows "+name, jsReadSets, func(sets []domSet) error {
		if len(sets) != 1 || sets[0].Set != name || sets[0].Location != "Texas" || sets[0].Owner != tx.name {
			return fmt.Errorf("%+v, want %s alone, in Texas, owned by %s", sets, name, tx.name)
		}
		return nil
	})
	usable := time.Since(opened)
	t.Logf("20,009 sets: cold (the page's watch reads every set first): summary shown %v after opening; "+
		"warm: summary shown %v, filter answered %v after opening (target 2s)",
		cold.Round(time.Millisecond), summaryAt.Round(time.Millisecond), usable.Round(time.Millisecond))

	// An ownership change arrives live: a marker set in the page survives.
	if _, err := inBrowser(ctx, 5*time.Second, chromedp.Evaluate[int](`window.tcsNoReload = 1`)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.dir.Transfer(context.Background(), name, sets[0].Epoch, jp.dn()); err != nil {
		t.Fatal(err)
	}
	waitPage(t, ctx, 30*time.Second, "the transfer of "+name+" on the page", jsReadSets, func(got []domSet) error {
		if len(got) != 1 || got[0].Epoch <= sets[0].Epoch {
			return fmt.Errorf("%+v, want %s past epoch %d", got, name, sets[0].Epoch)
		}
		return nil
	})
	if v, err := inBrowser(ctx, 5*time.Second, chromedp.Evaluate[int](`window.tcsNoReload || 0`)); err != nil || v != 1 {
		t.Errorf("the page was reloaded (marker %d, %v)", v, err)
	}
}
