// Package e2e runs tcs-agent processes against a real slapd and checks the
// swarm's behaviour the way an operator would: through the directory.
package e2e

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"tcs/internal/ldaptest"
	"tcs/ldapdir"
	"tcs/smartset"
)

var agentBin string

func TestMain(m *testing.M) {
	if addr := os.Getenv("TCS_E2E_BARE_ADDR"); addr != "" {
		serveBare(addr, os.Getenv("TCS_E2E_BARE_FILE")) // the baseline server of the HTTP benchmark
		return
	}
	dir, err := os.MkdirTemp("", "tcs-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	agentBin = filepath.Join(dir, "tcs-agent")
	build := exec.Command("go", "build", "-o", agentBin, "tcs/cmd/tcs-agent")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: cannot build tcs-agent:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// swarm is one slapd plus the agents started against it.
type swarm struct {
	t   testing.TB
	srv *ldaptest.Server
	dir *ldapdir.Dir
	tmp string
	ttl time.Duration
	// directory is added to the [directory] table of every agent started
	// after it is set (e.g. `transactions = "off"`).
	directory string
	// url, when set, is the directory URL of the agents started after it
	// (a frontend in front of the server); "" = the server's.
	url string
	// nice, when set, runs the agents started after it at that niceness:
	// the scale bench's hundred agents stand in for a hundred machines and
	// must not take the two cores from slapd.
	nice int

	mu       sync.Mutex
	agents   map[string]*agentProc
	accounts map[string]ldaptest.Account
	ports    int
}

type agentProc struct {
	name, location string
	port           int
	config         string
	logPath        string
	cmd            *exec.Cmd
	done           chan struct{}
	exitErr        error
}

func newSwarm(t testing.TB, ttl time.Duration, opts ...ldaptest.Option) *swarm {
	t.Helper()
	return newSwarmOn(t, ldaptest.Start(t, opts...), ttl)
}

// newSwarmOn is newSwarm on a server the caller started (e.g. the active
// provider of a MirrorMode pair).
func newSwarmOn(t testing.TB, srv *ldaptest.Server, ttl time.Duration) *swarm {
	t.Helper()
	d, err := ldapdir.Open(ldapdir.Config{URL: srv.URL, BaseDN: srv.BaseDN, BindDN: srv.BindDN, BindPassword: srv.Password, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s := &swarm{t: t, srv: srv, dir: d, tmp: t.TempDir(), ttl: ttl, agents: map[string]*agentProc{}, accounts: map[string]ldaptest.Account{}}
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, a := range s.agents {
			if a.cmd.Process != nil {
				syscall.Kill(a.cmd.Process.Pid, syscall.SIGCONT)
				syscall.Kill(a.cmd.Process.Pid, syscall.SIGKILL)
				<-a.done
			}
		}
		if t.Failed() {
			for _, a := range s.agents {
				if b, err := os.ReadFile(a.logPath); err == nil {
					t.Logf("---- log of %s ----\n%s", a.name, tail(string(b), 60))
				}
			}
		}
		if keep := os.Getenv("TCS_KEEP_LOGS"); keep != "" {
			s.keepLogs(keep)
		}
		d.Close()
	})
	return s
}

// keepLogs copies every agent's log into dir/<test name>/ (TCS_KEEP_LOGS:
// a long run's logs outlive its temporary directory).
func (s *swarm) keepLogs(dir string) {
	to := filepath.Join(dir, strings.ReplaceAll(s.t.Name(), "/", "_"))
	if err := os.MkdirAll(to, 0o755); err != nil {
		s.t.Logf("TCS_KEEP_LOGS: %v", err)
		return
	}
	for _, a := range s.agents {
		if b, err := os.ReadFile(a.logPath); err == nil {
			os.WriteFile(filepath.Join(to, filepath.Base(a.logPath)), b, 0o644)
		}
	}
	s.t.Logf("agent logs kept in %s", to)
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// start runs `tcs-agent run` for a new agent; extra is added to the TOML.
func (s *swarm) start(name, location string, extra ...string) *agentProc {
	s.t.Helper()
	return s.startAs(name, name, location, extra...)
}

// startAs is start for a process known to the test as key: a second
// process with an agent's name has a key, a port and a log of its own.
func (s *swarm) startAs(key, name, location string, extra ...string) *agentProc {
	s.t.Helper()
	s.mu.Lock()
	a, ok := s.agents[key]
	s.mu.Unlock()
	if !ok {
		// Every agent binds as its own account under the shipped ACLs:
		// least privilege is the path the tests take.
		acct := s.account(name)
		port, err := ldaptest.FreePort()
		if err != nil {
			s.t.Fatal(err)
		}
		a = &agentProc{name: name, location: location, port: port,
			config:  filepath.Join(s.tmp, key+".toml"),
			logPath: filepath.Join(s.tmp, key+".log")}
		cfg := fmt.Sprintf(`[service]
name = %q
location = %q
listen = "127.0.0.1:%d"
advertise = "http://127.0.0.1:%d"

[directory]
url = %q
base_dn = %q
bind_dn = %q
bind_password_file = %q
lease_ttl = "%ds"
%s

[log]
level = "debug"
%s
`, name, location, port, port, cmp.Or(s.url, s.srv.URL), s.srv.BaseDN, acct.DN, acct.PasswordFile, int(s.ttl/time.Second), s.directory, strings.Join(extra, "\n"))
		if err := os.WriteFile(a.config, []byte(cfg), 0o600); err != nil {
			s.t.Fatal(err)
		}
	}
	logf, err := os.OpenFile(a.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	args := []string{agentBin, "run", "--config", a.config}
	if s.nice != 0 {
		args = append([]string{"nice", "-n", strconv.Itoa(s.nice)}, args...)
	}
	a.cmd = exec.Command(args[0], args[1:]...)
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	a.done = make(chan struct{})
	if err := a.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	go func(cmd *exec.Cmd, done chan struct{}) {
		a.exitErr = cmd.Wait()
		logf.Close()
		close(done)
	}(a.cmd, a.done)
	s.mu.Lock()
	s.agents[key] = a
	s.mu.Unlock()
	return a
}

// account returns the agent account of name, creating it on first use.
func (s *swarm) account(name string) ldaptest.Account {
	s.t.Helper()
	s.mu.Lock()
	acct, ok := s.accounts[name]
	s.mu.Unlock()
	if !ok {
		acct = s.srv.AddAgent(name)
		s.mu.Lock()
		s.accounts[name] = acct
		s.mu.Unlock()
	}
	return acct
}

func (a *agentProc) signal(sig syscall.Signal) { syscall.Kill(a.cmd.Process.Pid, sig) }

// wait waits for the process to exit.
func (a *agentProc) wait(t testing.TB, within time.Duration) error {
	t.Helper()
	select {
	case <-a.done:
		return a.exitErr
	case <-time.After(within):
		t.Fatalf("%s did not exit within %v", a.name, within)
		return nil
	}
}

// url is the agent's HTTP base URL.
func (a *agentProc) url() string { return fmt.Sprintf("http://127.0.0.1:%d", a.port) }

func (a *agentProc) dn() string { return "cn=" + a.name + ",ou=services,dc=example,dc=org" }

// logLines returns the agent's log lines that contain substr.
func (a *agentProc) logLines(t testing.TB, substr string) []string {
	t.Helper()
	f, err := os.Open(a.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), substr) {
			out = append(out, sc.Text())
		}
	}
	return out
}

func (s *swarm) snapshot() *smartset.Snapshot {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	snap, err := s.dir.Snapshot(ctx)
	if snap == nil {
		s.t.Fatalf("snapshot: %v", err)
	}
	return snap
}

// eventually polls cond on fresh snapshots until it holds or within passes;
// it returns how long it took.
func (s *swarm) eventually(within time.Duration, what string, cond func(*smartset.Snapshot) error) time.Duration {
	s.t.Helper()
	start := time.Now()
	var err error
	for time.Since(start) < within {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		snap, serr := s.dir.Snapshot(ctx)
		cancel()
		switch {
		case snap == nil:
			err = serr // a loaded directory may time out: try again
		default:
			if err = cond(snap); err == nil {
				return time.Since(start)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("%s: not within %v: %v", what, within, err)
	return 0
}

// setsIn returns the sets of location loc.
func setsIn(snap *smartset.Snapshot, loc string) []smartset.Set {
	var out []smartset.Set
	for _, st := range snap.Sets {
		if strings.EqualFold(st.Location, loc) {
			out = append(out, st)
		}
	}
	return out
}

// ownedBy checks every set of loc is owned by the agent named owner.
func ownedBy(loc, owner string) func(*smartset.Snapshot) error {
	return func(snap *smartset.Snapshot) error {
		sets := setsIn(snap, loc)
		if len(sets) == 0 {
			return fmt.Errorf("no sets in %s", loc)
		}
		for _, st := range sets {
			if ldapdir.RDNValue(st.Owner) != owner {
				return fmt.Errorf("%s owned by %q, want %s", st.Name, st.Owner, owner)
			}
		}
		return nil
	}
}

// liveOwned checks every set of loc has a live owner.
func liveOwned(loc string) func(*smartset.Snapshot) error {
	return func(snap *smartset.Snapshot) error {
		for _, st := range setsIn(snap, loc) {
			if snap.Orphaned(st) {
				return fmt.Errorf("%s has no live owner (owner %q)", st.Name, st.Owner)
			}
		}
		return nil
	}
}

// history records every state of every set seen by a watch on the
// directory, to check epochs never go down and to find orphan intervals.
type history struct {
	mu     sync.Mutex
	events []setEvent
	epoch  map[string]int64
	errs   []string
	w      *ldapdir.Watch
}

type setEvent struct {
	at    time.Time
	set   string
	owner string
	epoch int64
}

func (s *swarm) record() *history {
	h := &history{epoch: map[string]int64{}}
	ctx, cancel := context.WithCancel(context.Background())
	h.w = s.dir.Watch(ctx, ldapdir.WatchSpec{Base: s.dir.SetsDN(), Scope: ldapdir.ScopeOne, Filter: "(objectClass=smartSet)",
		Attrs: []string{"cn", "owner", "tcsEpoch", "geoLocation", "objectClass"}})
	synced := make(chan struct{})
	go func() {
		once := sync.Once{}
		for ev := range h.w.Events() {
			if ev.Type == ldapdir.EventSynced {
				once.Do(func() { close(synced) })
				continue
			}
			if ev.Type != ldapdir.EventUpsert {
				continue
			}
			st, err := ldapdir.ToSet(ev.Entry)
			if err != nil {
				continue
			}
			h.mu.Lock()
			if prev, ok := h.epoch[st.Name]; ok && st.Epoch < prev {
				h.errs = append(h.errs, fmt.Sprintf("%s: epoch went down from %d to %d", st.Name, prev, st.Epoch))
			}
			h.epoch[st.Name] = st.Epoch
			h.events = append(h.events, setEvent{at: time.Now(), set: st.Name, owner: st.Owner, epoch: st.Epoch})
			h.mu.Unlock()
		}
	}()
	s.t.Cleanup(func() { cancel(); h.w.Close() })
	select {
	case <-synced:
	case <-time.After(10 * time.Second):
		s.t.Fatal("history watch did not sync")
	}
	return h
}

// since returns the events recorded after t.
func (h *history) since(t time.Time) []setEvent {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []setEvent
	for _, e := range h.events {
		if !e.at.Before(t) {
			out = append(out, e)
		}
	}
	return out
}

func (h *history) check(t testing.TB) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.errs {
		t.Error(e)
	}
}
