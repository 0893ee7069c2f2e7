// Command tcs-demo plays the patent's story (Figures 4–7) with real parts:
// a throwaway slapd, the example directory, and three tcs-agent processes
// (Japan, Texas, California). It prints a timeline of every ownership change
// as the directory reports it, checks each step, removes everything it
// started when it ends or is interrupted, and exits non-zero when a step did
// not happen. `make demo` runs it.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"tcs/ldapdir"
	"tcs/smartset"
)

func main() {
	var (
		root  = flag.String("root", ".", "repository root (scripts/, testdata/)")
		agent = flag.String("agent", "bin/tcs-agent", "tcs-agent binary")
		work  = flag.String("dir", ".demo", "working folder (removed at the end)")
		ttl   = flag.Duration("ttl", 2*time.Second, "lease TTL of the agents")
		keep  = flag.Bool("keep", false, "keep the working folder (logs) at the end")
		pause = flag.Duration("pause", 2*time.Second, "pause between steps, to watch the status page")
	)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	d := &demo{root: *root, agentBin: *agent, work: *work, ttl: *ttl, pause: *pause, out: os.Stdout, agents: map[string]*proc{}}
	err := d.run(ctx)
	d.cleanup(*keep)
	if err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo FAILED: %v\n", err)
		if *keep {
			fmt.Fprintf(os.Stderr, "logs are in %s\n", *work)
		}
		os.Exit(1)
	}
	fmt.Fprintln(d.out, "\ndemo finished: every step happened.")
}

type demo struct {
	root, agentBin, work string
	ttl, pause           time.Duration
	out                  io.Writer

	slapd  *exec.Cmd
	url    string
	dir    *ldapdir.Dir
	start  time.Time
	mu     sync.Mutex
	agents map[string]*proc
	ports  map[string]int
}

type proc struct {
	name, location string
	port           int
	cmd            *exec.Cmd
	done           chan struct{}
}

var story = []struct{ name, location string }{
	{"tcs-japan-1", "Japan"}, {"tcs-texas-1", "Texas"}, {"tcs-california-1", "California"},
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "%8s  %s\n", fmt.Sprintf("+%.1fs", time.Since(d.start).Seconds()), fmt.Sprintf(format, args...))
}

func (d *demo) step(n int, title string) {
	if n > 1 {
		time.Sleep(d.pause)
	}
	fmt.Fprintf(d.out, "\n== %d. %s\n", n, title)
}

func (d *demo) run(ctx context.Context) error {
	d.start = time.Now()
	if err := d.startDirectory(ctx); err != nil {
		return err
	}
	watchCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go d.timeline(watchCtx)

	d.step(1, "Japan, Texas and California agents start: each should own its own location's sets")
	d.ports = map[string]int{}
	for _, a := range story {
		port, err := freePort()
		if err != nil {
			return err
		}
		d.ports[a.name] = port
		if _, err := d.account(a.name); err != nil { // before any agent starts, so none gets a head start
			return err
		}
	}
	fmt.Fprintf(d.out, "\n   status page: http://127.0.0.1:%d/   (every agent serves one; this is Japan's)\n\n", d.ports["tcs-japan-1"])
	for _, a := range story {
		if err := d.startAgent(a.name, a.location); err != nil {
			return err
		}
	}
	t0 := time.Now()
	if err := d.wait(ctx, 30*time.Second, "every set placed in its own location", func(snap *smartset.Snapshot) error {
		return ownedAll(snap, map[string]string{"Japan": "tcs-japan-1", "Texas": "tcs-texas-1", "California": "tcs-california-1"})
	}); err != nil {
		return err
	}
	d.say("all placed optimally in %v", since(t0))
	d.table(ctx)
	before, err := d.readThroughJapan(ctx, "before the kill -9") // read.go
	if err != nil {
		return err
	}

	d.step(2, "kill -9 the Texas agent: its lease expires and Japan or California takes over")
	t0 = time.Now()
	d.signal("tcs-texas-1", syscall.SIGKILL)
	if err := d.wait(ctx, d.ttl+5*time.Second, "Texas sets owned again", func(snap *smartset.Snapshot) error {
		if _, ok := snap.Services[smartset.Key("cn=tcs-texas-1,ou=services,dc=example,dc=org")]; ok {
			return errors.New("the Texas lease has not expired yet")
		}
		return liveOwned(snap, "Texas")
	}); err != nil {
		return err
	}
	d.say("every Texas set owned again %v after kill -9 (lease TTL %v)", since(t0), d.ttl)

	d.step(3, "California is nearer to Texas than Japan: it ends up owning the Texas sets")
	if err := d.wait(ctx, 20*time.Second, "California owns the Texas sets", func(snap *smartset.Snapshot) error {
		return ownedAll(snap, map[string]string{"Texas": "tcs-california-1"})
	}); err != nil {
		return err
	}
	d.say("California owns every Texas set, %v after the kill", since(t0))
	d.table(ctx)
	if err := d.readAfterTakeover(ctx, before); err != nil { // read.go
		return err
	}

	d.step(4, "the Texas agent returns and asks for its sets back (release-request handshake)")
	t0 = time.Now()
	if err := d.startAgent("tcs-texas-1", "Texas"); err != nil {
		return err
	}
	if err := d.wait(ctx, 20*time.Second, "Texas reclaims its sets", func(snap *smartset.Snapshot) error {
		return ownedAll(snap, map[string]string{"Texas": "tcs-texas-1"})
	}); err != nil {
		return err
	}
	d.say("Texas owns its sets again %v after it started, none ever without an owner", since(t0))

	d.step(5, "SIGTERM the California agent: it hands its sets to the next-best agent (Texas) before it exits")
	t0 = time.Now()
	d.signal("tcs-california-1", syscall.SIGTERM)
	if err := d.waitExit("tcs-california-1", 20*time.Second); err != nil {
		return err
	}
	snap, err := d.dir.Snapshot(ctx)
	if snap == nil {
		return err
	}
	if err := ownedAll(snap, map[string]string{"California": "tcs-texas-1"}); err != nil {
		return fmt.Errorf("after California left: %w", err)
	}
	d.say("California exited %v after SIGTERM; its sets were already owned by Texas", since(t0))
	d.table(ctx)
	return nil
}

func since(t time.Time) time.Duration { return time.Since(t).Round(10 * time.Millisecond) }

// startDirectory makes and starts a throwaway slapd with the example data.
func (d *demo) startDirectory(ctx context.Context) error {
	os.RemoveAll(d.work)
	if err := os.MkdirAll(d.work, 0o700); err != nil {
		return err
	}
	script := filepath.Join(d.root, "scripts", "slapd.sh")
	ldapDir := filepath.Join(d.work, "ldap")
	if out, err := exec.Command(script, "init", ldapDir).CombinedOutput(); err != nil {
		return fmt.Errorf("slapd.sh init: %v\n%s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	d.url = "ldap://127.0.0.1:" + strconv.Itoa(port)
	d.slapd = exec.Command(script, "run", ldapDir, d.url+"/")
	d.slapd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL} // never outlive the demo
	logf, err := os.Create(filepath.Join(d.work, "slapd.log"))
	if err != nil {
		return err
	}
	d.slapd.Stdout, d.slapd.Stderr = logf, logf
	if err := d.slapd.Start(); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "directory: slapd at %s (base dc=example,dc=org, admin cn=admin,dc=example,dc=org / secret; each agent binds as its own account cn=<name>,ou=agents)\n", d.url)
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", d.url[len("ldap://"):], 100*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if i > 100 {
			return fmt.Errorf("slapd did not start (see %s)", logf.Name())
		}
		time.Sleep(100 * time.Millisecond)
	}
	example := filepath.Join(d.root, "testdata", "ldif", "example.ldif")
	if out, err := exec.Command("ldapadd", "-x", "-H", d.url, "-D", "cn=admin,dc=example,dc=org", "-w", "secret", "-f", example).CombinedOutput(); err != nil {
		return fmt.Errorf("loading %s: %v\n%s", example, err, out)
	}
	if err := os.WriteFile(filepath.Join(d.work, "password"), []byte("secret\n"), 0o600); err != nil {
		return err
	}
	d.dir, err = ldapdir.Open(ldapdir.Config{URL: d.url, BaseDN: "dc=example,dc=org", BindDN: "cn=admin,dc=example,dc=org", BindPassword: "secret"})
	if err != nil {
		return err
	}
	snap, err := d.dir.Snapshot(ctx)
	if snap == nil {
		return err
	}
	fmt.Fprintf(d.out, "example loaded: %d locations, %d SmartSets, none owned yet\n", len(snap.Locations), len(snap.Sets))
	return nil
}

// account makes the agent's own directory account the way the README says
// (scripts/slapd.sh add-agent with a password file), once: every agent of
// the demo binds as itself, with only what the shipped ACLs allow an agent.
func (d *demo) account(name string) (pwFile string, err error) {
	pwFile = filepath.Join(d.work, name+".pw")
	if _, err := os.Stat(pwFile); err == nil {
		return pwFile, nil
	}
	raw := make([]byte, 18)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	if err := os.WriteFile(pwFile, []byte(base64.RawURLEncoding.EncodeToString(raw)+"\n"), 0o600); err != nil {
		return "", err
	}
	cmd := exec.Command(filepath.Join(d.root, "scripts", "slapd.sh"), "add-agent", name, pwFile)
	cmd.Env = append(os.Environ(), "TCS_LDAP_URL="+d.url, "TCS_ROOTPW_FILE="+filepath.Join(d.work, "password"))
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(pwFile)
		return "", fmt.Errorf("account for %s: %v\n%s", name, err, out)
	}
	return pwFile, nil
}

func (d *demo) startAgent(name, location string) error {
	port := d.ports[name]
	pwFile, err := d.account(name)
	if err != nil {
		return err
	}
	cfg := filepath.Join(d.work, name+".toml")
	text := fmt.Sprintf(`[service]
name = %q
location = %q
listen = "127.0.0.1:%d"
advertise = "http://127.0.0.1:%d"

[directory]
url = %q
base_dn = "dc=example,dc=org"
bind_dn = "cn=%s,ou=agents,dc=example,dc=org"
bind_password_file = %q
lease_ttl = "%ds"
`, name, location, port, port, d.url, name, filepath.Base(pwFile), int(d.ttl/time.Second))
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(d.work, name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(d.agentBin, "run", "--config", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, location: location, port: port, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); logf.Close(); close(p.done) }()
	d.mu.Lock()
	d.agents[name] = p
	d.mu.Unlock()
	d.say("started %s (%s), HTTP on http://127.0.0.1:%d", name, location, port)
	return nil
}

func (d *demo) signal(name string, sig syscall.Signal) {
	d.mu.Lock()
	p := d.agents[name]
	d.mu.Unlock()
	if p != nil {
		p.cmd.Process.Signal(sig)
		d.say("sent %s to %s (pid %d)", strings.ToUpper(unix(sig)), name, p.cmd.Process.Pid)
	}
}

func unix(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGKILL:
		return "sigkill"
	case syscall.SIGTERM:
		return "sigterm"
	}
	return sig.String()
}

func (d *demo) waitExit(name string, within time.Duration) error {
	d.mu.Lock()
	p := d.agents[name]
	d.mu.Unlock()
	select {
	case <-p.done:
		return nil
	case <-time.After(within):
		return fmt.Errorf("%s did not exit within %v", name, within)
	}
}

// wait polls the directory until cond holds.
func (d *demo) wait(ctx context.Context, within time.Duration, what string, cond func(*smartset.Snapshot) error) error {
	deadline := time.Now().Add(within)
	var last error
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return errors.New("interrupted")
		}
		snap, err := d.dir.Snapshot(ctx)
		if snap != nil {
			if last = cond(snap); last == nil {
				return nil
			}
		} else {
			last = err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("step %q did not happen within %v: %v", what, within, last)
}

// timeline prints every ownership change and lease change as the directory
// reports them.
func (d *demo) timeline(ctx context.Context) {
	w := d.dir.Watch(ctx, ldapdir.WatchSpec{Base: d.dir.BaseDN(), Scope: ldapdir.ScopeSub,
		Filter: "(|(objectClass=smartSet)(objectClass=tcsService))",
		Attrs:  []string{"objectClass", "cn", "owner", "tcsEpoch", "tcsReleaseRequest", "geoLocation"}})
	defer w.Close()
	owners := map[string]smartset.Set{}
	services := map[string]bool{}
	synced := false
	for ev := range w.Events() {
		switch ev.Type {
		case ldapdir.EventSynced:
			synced = true
		case ldapdir.EventDelete:
			if strings.Contains(strings.ToLower(ev.Entry.DN), "ou=services") {
				name := ldapdir.RDNValue(ev.Entry.DN)
				delete(services, name)
				d.say("lease of %s is gone (entry deleted)", name)
			}
		case ldapdir.EventUpsert:
			e := ev.Entry
			if e.HasClass("tcsService") {
				name := e.Get("cn")
				if !services[name] {
					services[name] = true
					if synced {
						d.say("%s registered its lease (%s)", name, e.Get("geoLocation"))
					}
				}
				continue
			}
			s, err := ldapdir.ToSet(e)
			if err != nil {
				continue
			}
			prev, seen := owners[s.Name]
			owners[s.Name] = s
			if !synced || !seen {
				continue
			}
			switch {
			case s.Owner != prev.Owner:
				d.say("%-26s %s -> %s (epoch %d)", s.Name, who(prev.Owner), who(s.Owner), s.Epoch)
			case s.ReleaseRequest != "" && s.ReleaseRequest != prev.ReleaseRequest:
				d.say("%-26s %s asks %s to hand it over", s.Name, who(s.ReleaseRequest), who(s.Owner))
			}
		}
	}
}

func who(dn string) string {
	if dn == "" {
		return "(nobody)"
	}
	return ldapdir.RDNValue(dn)
}

// table prints who owns what now.
func (d *demo) table(ctx context.Context) {
	snap, err := d.dir.Snapshot(ctx)
	if snap == nil {
		fmt.Fprintf(d.out, "   (cannot read the directory: %v)\n", err)
		return
	}
	byOwner := map[string][]string{}
	for _, s := range snap.Sets {
		byOwner[who(s.Owner)] = append(byOwner[who(s.Owner)], s.Name)
	}
	owners := make([]string, 0, len(byOwner))
	for o := range byOwner {
		owners = append(owners, o)
	}
	sort.Strings(owners)
	fmt.Fprintln(d.out)
	for _, o := range owners {
		sort.Strings(byOwner[o])
		fmt.Fprintf(d.out, "   %-18s owns %s\n", o, strings.Join(byOwner[o], ", "))
	}
}

func ownedAll(snap *smartset.Snapshot, want map[string]string) error {
	for _, s := range snap.Sets {
		owner, ok := want[s.Location]
		if !ok {
			continue
		}
		if snap.Orphaned(s) || who(s.Owner) != owner {
			return fmt.Errorf("%s is owned by %s, want %s", s.Name, who(s.Owner), owner)
		}
	}
	return nil
}

func liveOwned(snap *smartset.Snapshot, location string) error {
	for _, s := range snap.Sets {
		if s.Location == location && snap.Orphaned(s) {
			return fmt.Errorf("%s has no live owner", s.Name)
		}
	}
	return nil
}

// cleanup stops every agent and slapd and removes the working folder.
func (d *demo) cleanup(keep bool) {
	d.mu.Lock()
	for _, p := range d.agents {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	d.mu.Unlock()
	if d.dir != nil {
		d.dir.Close()
	}
	if d.slapd != nil && d.slapd.Process != nil {
		syscall.Kill(-d.slapd.Process.Pid, syscall.SIGTERM)
		d.slapd.Wait()
	}
	if !keep {
		os.RemoveAll(d.work)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
