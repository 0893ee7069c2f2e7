package ldaptest

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rids numbers the syncrepl consumers this process starts (a replica id is
// per consumer configuration; distinct ones keep the logs readable).
var rids atomic.Int32

func withInit(args ...string) Option { return func(o *options) { o.init = args } }
func withPort(p int) Option          { return func(o *options) { o.port = p } }
func noLDIF() Option                 { return func(o *options) { o.ldif = nil } }

// ReplicateFrom makes StartConsumer replicate from url (say a fault proxy in
// front of the provider) instead of the provider's own URL.
func ReplicateFrom(url string) Option { return func(o *options) { o.from = url } }

// MirrorVia makes each provider of StartMirror replicate from via(url of
// its peer) instead of the peer's own URL (say a fault proxy in between, to
// make replication lag or stop).
func MirrorVia(via func(url string) string) Option { return func(o *options) { o.peerVia = via } }

// StartConsumer starts a read-only consumer of provider: a slapd of its own
// on a free port, made by `slapd.sh init-consumer` (syncrepl
// refreshAndPersist from provider.URL, olcUpdateRef to it, syncprov for
// watchers, no dds overlay). It returns once the consumer holds everything
// the provider holds. WithLDIF is ignored: a consumer takes no writes.
func StartConsumer(t testing.TB, provider *Server, opts ...Option) *Server {
	t.Helper()
	rid := 100 + int(rids.Add(1))
	var o options
	for _, f := range opts {
		f(&o)
	}
	from := provider.URL
	if o.from != "" {
		from = o.from
	}
	opts = append(opts, withInit("init-consumer", from, strconv.Itoa(rid)), noLDIF())
	c := Start(t, opts...)
	c.WaitCaughtUp(provider, 30*time.Second)
	return c
}

// StartMirror starts a MirrorMode pair (`slapd.sh init-mirror`): two
// providers with server IDs 1 and 2 that replicate to each other, each on a
// free port. active holds the base entries (and the LDIF of WithLDIF) and
// expires leases; standby has lease expiry off until Activate. It returns
// once standby holds everything active holds.
func StartMirror(t testing.TB, opts ...Option) (active, standby *Server) {
	t.Helper()
	pa, err := FreePort()
	if err != nil {
		t.Fatalf("ldaptest: %v", err)
	}
	pb, err := FreePort()
	if err != nil {
		t.Fatalf("ldaptest: %v", err)
	}
	var o options
	for _, f := range opts {
		f(&o)
	}
	url := func(p int) string { return "ldap://127.0.0.1:" + strconv.Itoa(p) }
	peer := func(p int) string {
		if o.peerVia != nil {
			return o.peerVia(url(p))
		}
		return url(p)
	}
	active = Start(t, append(append([]Option{}, opts...), withInit("init-mirror", "1", peer(pb), "base"), withPort(pa))...)
	standby = Start(t, append(append([]Option{}, opts...), withInit("init-mirror", "2", peer(pa)), withPort(pb), noLDIF())...)
	standby.WaitCaughtUp(active, 30*time.Second)
	return active, standby
}

// Activate turns lease expiry (the dds overlay) on or off at a MirrorMode
// provider: on at the one the frontend sends clients to, off at the other.
// slapd starts its expiry task only at start, so the server is stopped,
// changed (`slapd.sh mirror-activate`) and started again on its port.
func (s *Server) Activate(on bool) {
	s.t.Helper()
	state := "FALSE"
	if on {
		state = "TRUE"
	}
	s.Stop()
	cmd := exec.Command(filepath.Join(s.root, "scripts", "slapd.sh"), "mirror-activate", s.Dir, state)
	if out, err := cmd.CombinedOutput(); err != nil {
		s.t.Fatalf("ldaptest: mirror-activate %s %s: %v\n%s", s.Dir, state, err, out)
	}
	s.Start()
}

// ContextCSN returns the contextCSN values of the suffix entry by server ID
// (the third field of a CSN): how far this server's copy has come.
func (s *Server) ContextCSN() (map[string]string, error) {
	out, err := exec.Command("ldapsearch", "-x", "-H", s.URL, "-D", s.BindDN, "-w", s.Password,
		"-LLL", "-o", "ldif_wrap=no", "-s", "base", "-b", s.BaseDN, "(objectClass=*)", "contextCSN").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("ldapsearch %s: %v: %s", s.URL, err, out)
	}
	csns := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		v, ok := strings.CutPrefix(line, "contextCSN: ")
		if !ok {
			continue
		}
		if f := strings.Split(v, "#"); len(f) == 4 {
			csns[f[2]] = v
		}
	}
	return csns, nil
}

// CaughtUp reports whether s holds every change other holds: for every
// server ID in other's contextCSN, s's is at least as new.
func (s *Server) CaughtUp(other *Server) (bool, error) {
	want, err := other.ContextCSN()
	if err != nil {
		return false, err
	}
	have, err := s.ContextCSN()
	if err != nil {
		return false, err
	}
	for sid, csn := range want {
		if have[sid] < csn { // CSNs compare as strings (fixed-width time first)
			return false, nil
		}
	}
	return true, nil
}

// WaitCaughtUp waits until s has caught up with other (see CaughtUp), and
// fails the test after within.
func (s *Server) WaitCaughtUp(other *Server, within time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, err := s.CaughtUp(other)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("ldaptest: %s did not catch up with %s within %v (%v); its log:\n%s", s.URL, other.URL, within, err, s.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Pid returns the process id of the running slapd, 0 when it is stopped.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}
