package chaos

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"tcs/internal/faultproxy"
	"tcs/internal/ldaptest"
)

// location is one location of the chaos topology.
type location struct {
	name   string
	coords string
	agents int
}

// The topology of issue 10: four locations with agents, one without.
var locations = []location{
	{"Tokyo", "35.6762,139.6503", 2},
	{"Austin", "30.2672,-97.7431", 2},
	{"Sacramento", "38.5816,-121.4944", 1},
	{"Frankfurt", "50.1109,8.6821", 1},
	{"Sydney", "-33.8688,151.2093", 0},
}

const (
	setsPerLocation    = 50
	systemsPerLocation = 6
)

// agentName is the name of the i-th agent of location l.
func agentName(l location, i int) string { return fmt.Sprintf("tcs-%s-%d", strings.ToLower(l.name), i) }

// topology is what the schedule picks from: every agent, every location,
// the read replicas of the Consumers topology.
func topology(ttl time.Duration, dir string) Topology {
	topo := Topology{TTL: ttl, Directory: dir}
	if dir == Consumers {
		topo.Consumers = consumerNames
	}
	for _, l := range locations {
		topo.Locations = append(topo.Locations, l.name)
		for i := 1; i <= l.agents; i++ {
			topo.Agents = append(topo.Agents, agentName(l, i))
		}
	}
	return topo
}

// cluster is the directory (one slapd, or a replicated topology: see
// replicated_test.go), one faultproxy per agent and directory address, and
// the agent processes.
type cluster struct {
	t   *testing.T
	srv *ldaptest.Server // the server the run loads: the provider, or the first of a MirrorMode pair
	bin string
	dir string // work dir: configs, logs, report
	ttl time.Duration
	rec *recorder

	topology string
	// dirURL is where the agents' writes, the sampler and the harness's
	// own writes go: srv, or the MirrorMode frontend.
	dirURL    string
	consumers []*consumer // Consumers topology
	pair      *mirrorPair // Mirror topology

	mu      sync.Mutex
	agents  map[string]*agent
	order   []string          // agent names, sorted by location then number
	allSets map[string]string // set name -> location, every set that ever existed
}

// agent is one agent name: its proxy, its config and its current process.
type agent struct {
	name, location string
	port, dupPort  int
	// proxies are the agent's ways to the directory: the first to the
	// provider (url), then one per read replica (read_urls). A fault on the
	// agent applies to all of them.
	proxies   []*faultproxy.Proxy
	config    string
	dupConfig string
	cur       *proc // nil while down
	dup       *proc
	n, dupN   int
	faulted   int       // faults on this agent now
	hot       time.Time // when the last one began or healed
}

// proc is one running tcs-agent process.
type proc struct {
	id   string
	idx  int // index in the recorder's processes
	cmd  *exec.Cmd
	done chan struct{}
}

func newCluster(t *testing.T, dir string, ttl time.Duration, rec *recorder, topology string) *cluster {
	t.Helper()
	t.Setenv("TCS_KEEP_SLAPD", "1") // keep slapd's data dir when the run fails
	c := &cluster{t: t, dir: dir, ttl: ttl, rec: rec, topology: topology, agents: map[string]*agent{}, allSets: map[string]string{}}
	c.bin = filepath.Join(dir, "tcs-agent")
	build := exec.Command("go", "build", "-o", c.bin, "tcs/cmd/tcs-agent")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("chaos: cannot build tcs-agent: %v\n%s", err, out)
	}
	var standby *ldaptest.Server
	var links map[string]*faultproxy.Proxy
	if topology == Mirror {
		c.srv, standby, links = startMirror(t)
	} else {
		c.srv = ldaptest.Start(t)
	}
	c.dirURL = c.srv.URL
	t.Logf("chaos: slapd at %s, data in %s", c.srv.URL, c.srv.Dir)
	ldif := filepath.Join(dir, "data.ldif")
	if err := os.WriteFile(ldif, []byte(c.dataLDIF()), 0o600); err != nil {
		t.Fatal(err)
	}
	c.srv.Load(ldif)
	accounts := map[string]ldaptest.Account{}
	for _, l := range locations {
		for i := 1; i <= l.agents; i++ {
			name := agentName(l, i)
			accounts[name] = c.srv.AddAgent(name) // least privilege, as every agent runs
		}
	}
	switch topology { // after the data and accounts: the replicas start with them
	case Consumers:
		c.startConsumers(t)
	case Mirror:
		c.startPair(t, standby, links)
	}
	n := 0
	for _, l := range locations {
		for i := 1; i <= l.agents; i++ {
			name := agentName(l, i)
			a := &agent{name: name, location: l.name}
			var err error
			targets := []string{c.dirURL}
			for j := range c.consumers { // varied order: agent n reads from replica n mod 2 first
				targets = append(targets, c.consumers[(n+j)%len(c.consumers)].srv.URL)
			}
			n++
			for _, target := range targets {
				p, err := faultproxy.New(target)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { p.Close() })
				a.proxies = append(a.proxies, p)
			}
			var reads []string
			for _, p := range a.proxies[1:] {
				reads = append(reads, p.URL())
			}
			if a.port, err = ldaptest.FreePort(); err != nil {
				t.Fatal(err)
			}
			if a.dupPort, err = ldaptest.FreePort(); err != nil {
				t.Fatal(err)
			}
			acct := accounts[name]
			a.config = c.writeConfig(name, l.name, a.port, a.proxies[0].URL(), reads, acct, "")
			a.dupConfig = c.writeConfig(name, l.name, a.dupPort, a.proxies[0].URL(), reads, acct, "-dup")
			c.agents[name] = a
			c.order = append(c.order, name)
		}
	}
	t.Cleanup(c.stopAll)
	return c
}

// rules applies a fault to every proxy of a (its writes and its reads) and
// returns what removes it.
func (a *agent) rules(f func(*faultproxy.Proxy) *faultproxy.Rule) rules {
	var out rules
	for _, p := range a.proxies {
		out = append(out, f(p))
	}
	return out
}

// rules are fault rules removed together.
type rules []*faultproxy.Rule

func (rs rules) Remove() {
	for _, r := range rs {
		r.Remove()
	}
}

// dataLDIF is the locations, their systems and the sets.
func (c *cluster) dataLDIF() string {
	var b strings.Builder
	base := c.srv.BaseDN
	for _, l := range locations {
		fmt.Fprintf(&b, "dn: cn=%s,ou=locations,%s\nobjectClass: tcsLocation\ncn: %s\ntcsCoordinates: %s\n\n", l.name, base, l.name, l.coords)
		for i := 1; i <= systemsPerLocation; i++ {
			fmt.Fprintf(&b, "dn: cn=%s-sys-%d,cn=%s,ou=locations,%s\nobjectClass: device\nobjectClass: tcsSystem\ncn: %s-sys-%d\ngeoLocation: %s\nserialNumber: %s-%04d\n\n",
				strings.ToLower(l.name), i, l.name, base, strings.ToLower(l.name), i, l.name, strings.ToUpper(l.name[:2]), i)
		}
		for i := 1; i <= setsPerLocation; i++ {
			name := fmt.Sprintf("%s-set-%03d", strings.ToLower(l.name), i)
			attrs := c.setAttrs(l.name, i)
			fmt.Fprintf(&b, "dn: cn=%s,ou=smartsets,%s\nobjectClass: smartSet\ncn: %s\ngeoLocation: %s\ndescription: %s\ntcsQuery: %s\n\n",
				name, base, name, l.name, attrs.Description, attrs.Query)
			c.rec.expect(name, attrs)
			c.allSets[name] = l.name
		}
	}
	return b.String()
}

// setAttrs are the attributes of the i-th set of location loc.
func (c *cluster) setAttrs(loc string, i int) SetAttrs {
	return SetAttrs{
		Location:    loc,
		Description: fmt.Sprintf("chaos set %d of %s", i, loc),
		Query: fmt.Sprintf("ldap:///cn=%s,ou=locations,%s?cn,serialNumber?one?(|(cn=%s-sys-1)(cn=%s-sys-%d))",
			loc, c.srv.BaseDN, strings.ToLower(loc), strings.ToLower(loc), 1+i%systemsPerLocation),
	}
}

func (c *cluster) writeConfig(name, loc string, port int, url string, reads []string, acct ldaptest.Account, suffix string) string {
	path := filepath.Join(c.dir, name+suffix+".toml")
	readURLs := ""
	if len(reads) > 0 {
		readURLs = fmt.Sprintf("read_urls = [%q", reads[0])
		for _, r := range reads[1:] {
			readURLs += fmt.Sprintf(", %q", r)
		}
		readURLs += "]\n"
	}
	cfg := fmt.Sprintf(`[service]
name = %q
location = %q
listen = "127.0.0.1:%d"
advertise = "http://127.0.0.1:%d"

[directory]
url = %q
%sbase_dn = %q
bind_dn = %q
bind_password_file = %q
lease_ttl = "%ds"

[log]
level = "info"
`, name, loc, port, port, url, readURLs, c.srv.BaseDN, acct.DN, acct.PasswordFile, int(c.ttl/time.Second))
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		c.t.Fatal(err)
	}
	return path
}

// start starts a process for agent a (dup: a second process with its name).
func (c *cluster) start(a *agent, dup bool) *proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	cfg, port, id := a.config, a.port, ""
	if dup {
		a.dupN++
		cfg, port, id = a.dupConfig, a.dupPort, fmt.Sprintf("%s~dup#%d", a.name, a.dupN)
	} else {
		a.n++
		id = fmt.Sprintf("%s#%d", a.name, a.n)
	}
	logPath := filepath.Join(c.dir, strings.TrimSuffix(filepath.Base(cfg), ".toml")+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		c.t.Errorf("chaos: %v", err)
		return nil
	}
	fmt.Fprintf(logf, "==== %s started at %s\n", id, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(c.bin, "run", "--config", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.t.Errorf("chaos: start %s: %v", id, err)
		return nil
	}
	p := &proc{id: id, cmd: cmd, done: make(chan struct{})}
	p.idx = c.rec.processStarted(Process{ID: id, Agent: a.name, Port: port, Start: time.Now(), Exempt: dup})
	go func() {
		err := cmd.Wait()
		exit := "exit status 0"
		if err != nil {
			exit = err.Error()
		}
		c.rec.processEnded(p.idx, time.Now(), exit)
		fmt.Fprintf(logf, "==== %s ended at %s: %s\n", id, time.Now().Format(time.RFC3339Nano), exit)
		logf.Close()
		close(p.done)
	}()
	if dup {
		a.dup = p
	} else {
		a.cur = p
	}
	return p
}

// end ends p with sig as a planned part of the schedule and waits for it
// (SIGKILL after 15 s).
func (c *cluster) end(p *proc, sig syscall.Signal) {
	if p == nil {
		return
	}
	c.rec.planned(p.idx)
	p.cmd.Process.Signal(syscall.SIGCONT)
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		c.rec.note(fmt.Sprintf("%s did not exit within 15s of %v: killed", p.id, sig))
		p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (c *cluster) stopAll() {
	c.mu.Lock()
	var ps []*proc
	for _, a := range c.agents {
		for _, p := range []*proc{a.cur, a.dup} {
			if p != nil {
				ps = append(ps, p)
			}
		}
	}
	c.mu.Unlock()
	for _, p := range ps {
		c.rec.planned(p.idx)
		p.cmd.Process.Signal(syscall.SIGCONT)
		p.cmd.Process.Kill()
		<-p.done
	}
}

// admin runs f on a fresh connection to the directory (not through any
// agent's proxy; in a MirrorMode pair through the frontend), retrying for up
// to 20 s while the directory is down.
func (c *cluster) admin(what string, f func(*ldap.Conn) error) error {
	return c.adminAt(c.dirURL, what, f)
}

// adminAt is admin on the server at url.
func (c *cluster) adminAt(url, what string, f func(*ldap.Conn) error) error {
	deadline := time.Now().Add(20 * time.Second)
	var err error
	for {
		err = func() error {
			conn, err := ldap.DialURL(url, ldap.DialWithDialer(&netDialer))
			if err != nil {
				return err
			}
			defer conn.Close()
			conn.SetTimeout(10 * time.Second)
			if err := conn.Bind(c.srv.BindDN, c.srv.Password); err != nil {
				return err
			}
			return f(conn)
		}()
		if err == nil || time.Now().After(deadline) || ldap.IsErrorAnyOf(err, ldap.LDAPResultNoSuchObject, ldap.LDAPResultEntryAlreadyExists) {
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			return nil
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// finalSets reads every set's non-ownership attributes.
func (c *cluster) finalSets() (map[string]SetAttrs, error) {
	out := map[string]SetAttrs{}
	err := c.admin("read the sets", func(conn *ldap.Conn) error {
		res, err := conn.SearchWithPaging(ldap.NewSearchRequest("ou=smartsets,"+c.srv.BaseDN, ldap.ScopeSingleLevel,
			ldap.NeverDerefAliases, 0, 0, false, "(objectClass=smartSet)", []string{"cn", "geoLocation", "tcsQuery", "description"}, nil), 500)
		if err != nil {
			return err
		}
		for _, e := range res.Entries {
			out[e.GetAttributeValue("cn")] = SetAttrs{Location: e.GetAttributeValue("geoLocation"),
				Query: e.GetAttributeValue("tcsQuery"), Description: e.GetAttributeValue("description")}
		}
		return nil
	})
	return out, err
}

// commits reads the accesslog back: of the server, or the provider (read
// replicas take no writes and keep no log), or both providers of a
// MirrorMode pair, merged (MergeCommits).
func (c *cluster) commits() ([]Commit, error) {
	read := func(srv *ldaptest.Server) ([]Commit, error) {
		var out []Commit
		err := c.adminAt(srv.URL, "read the accesslog of "+srv.URL, func(conn *ldap.Conn) error {
			var err error
			out, err = ReadCommits(conn, "ou=smartsets,"+c.srv.BaseDN)
			return err
		})
		for i := range out {
			out[i].Server = srv.URL
		}
		return out, err
	}
	if c.pair == nil {
		return read(c.srv)
	}
	// Let replication finish (both ways), so that what one provider's log
	// lacks was lost, not late.
	a, b := c.pair.servers[0].srv, c.pair.servers[1].srv
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		ab, _ := a.CaughtUp(b)
		ba, _ := b.CaughtUp(a)
		if ab && ba {
			break
		}
	}
	logs := map[string][]Commit{}
	for _, p := range c.pair.servers {
		cs, err := read(p.srv)
		if err != nil {
			return nil, err
		}
		logs[p.sid] = cs
	}
	return MergeCommits(logs), nil
}

// saveSlapdLogs writes what every slapd of the run printed since it last
// started (an abort's message, say) into the run's folder, slapd-*.log.
func (c *cluster) saveSlapdLogs() {
	save := func(name string, s *ldaptest.Server) {
		os.WriteFile(filepath.Join(c.dir, "slapd-"+name+".log"), []byte(s.Log()), 0o600)
	}
	save("provider-1", c.srv)
	for _, cs := range c.consumers {
		save(cs.name, cs.srv)
	}
	if c.pair != nil {
		save("provider-2", c.pair.servers[1].srv)
	}
}

// dataDirs names the data folders of every slapd of the run.
func (c *cluster) dataDirs() string {
	dirs := c.srv.Dir
	for _, cs := range c.consumers {
		dirs += ", " + cs.srv.Dir
	}
	if c.pair != nil {
		dirs += ", " + c.pair.servers[1].srv.Dir
	}
	return dirs
}

// logTail returns the last n lines of every agent log, for a failure report.
func (c *cluster) logTails(n int) string {
	var b bytes.Buffer
	files, _ := filepath.Glob(filepath.Join(c.dir, "*.log"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		fmt.Fprintf(&b, "---- %s ----\n%s\n", filepath.Base(f), strings.Join(lines, "\n"))
	}
	return b.String()
}
