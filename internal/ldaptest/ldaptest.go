// Package ldaptest starts throwaway OpenLDAP servers for tests: the tcs
// configuration (scripts/slapd.sh and schema/), a temporary directory, a free
// loopback port, torn down when the test ends.
//
// A test that needs slapd fails with the reason when slapd cannot start; it is
// never skipped. `make test` installs slapd first (scripts/slapd.sh install).
package ldaptest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Default credentials of every test server (development only).
const (
	BaseDN   = "dc=example,dc=org"
	BindDN   = "cn=admin,dc=example,dc=org"
	Password = "secret"
)

// Server is one running slapd.
type Server struct {
	URL      string // ldap://127.0.0.1:<port>
	BaseDN   string
	BindDN   string
	Password string
	Port     int
	Dir      string // configuration, data and logs

	// With WithTLS only:
	LDAPSURL string // ldaps://127.0.0.1:<port>
	LDAPIURL string // ldapi://<socket path, %2F-escaped>
	CAFile   string // PEM of the throwaway CA that signed the server's certificate
	ca       *certAuthority

	t     testing.TB
	root  string
	debug string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan error // receives once when cmd has exited
	log  *lockedBuffer
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Option changes how Start builds a server.
type Option func(*options)

type options struct {
	noSchema bool
	overlays []string
	ldif     []string
	debug    string
	tls      bool
	acl      []string
	aclSet   bool
	threads  int // olcThreads; 0 = slapd.sh's default (16)
	// init is the slapd.sh subcommand and arguments after DIR that make the
	// configuration ("init" when empty); port, when not 0, is the port to
	// listen on (replica.go).
	init []string
	port int
	from string // StartConsumer: the provider URL to replicate from
	// StartMirror: maps a provider's URL to the one its peer replicates
	// from (say a fault proxy); nil = itself.
	peerVia func(string) string
}

// WithACL replaces the shipped access control of the database (the
// olcAccess rules of schema/slapd.ldif) with rules, e.g.
// WithACL("to * by users manage by * read") for a site's own permissive
// server; no rules at all leaves slapd's default (everyone reads, only the
// admin writes).
func WithACL(rules ...string) Option {
	return func(o *options) { o.acl, o.aclSet = rules, true }
}

// WithTLS gives the server a certificate for 127.0.0.1 from a throwaway CA,
// an ldaps:// listener (Server.LDAPSURL), StartTLS on ldap://, and an
// ldapi:// socket (Server.LDAPIURL); Server.CAFile is the CA. The server asks
// clients for a certificate from that CA (ClientCert makes one) and maps its
// subject to the account for SASL EXTERNAL.
func WithTLS() Option {
	return func(o *options) { o.tls = true }
}

// WithDebug runs slapd with -d level (e.g. "256" for the stats log, one line
// per operation), readable with Log.
func WithDebug(level string) Option {
	return func(o *options) { o.debug = level }
}

// WithThreads sets slapd's worker threads (olcThreads; TCS_THREADS of
// scripts/slapd.sh), e.g. for a fleet of agents starting their watches
// together.
func WithThreads(n int) Option {
	return func(o *options) { o.threads = n }
}

// WithOverlays replaces the default overlays ("syncprov", "dds", "accesslog"), e.g.
// WithOverlays("dds") for a server without syncprov.
func WithOverlays(names ...string) Option {
	return func(o *options) { o.overlays = names }
}

// WithoutTCSSchema leaves the tcs schema out of the server (to test what an
// agent says about a directory that lacks it).
func WithoutTCSSchema() Option {
	return func(o *options) { o.noSchema = true }
}

// WithLDIF loads LDIF files (paths relative to the repository root or
// absolute) after the server is up.
func WithLDIF(paths ...string) Option {
	return func(o *options) { o.ldif = append(o.ldif, paths...) }
}

// Start makes and starts a server for t and stops it when t ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	o := options{overlays: []string{"syncprov", "dds", "accesslog"}}
	for _, f := range opts {
		f(&o)
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("ldaptest: %v", err)
	}
	dir, err := os.MkdirTemp("", "tcs-slapd-")
	if err != nil {
		t.Fatalf("ldaptest: %v", err)
	}
	s := &Server{BaseDN: BaseDN, BindDN: BindDN, Password: Password, Dir: dir, t: t, root: root, debug: o.debug}
	t.Cleanup(func() {
		s.reportExit()
		s.Kill()
		if !t.Failed() || os.Getenv("TCS_KEEP_SLAPD") == "" {
			os.RemoveAll(dir)
		}
	})
	initArgs := []string{"init", dir}
	if len(o.init) > 0 {
		initArgs = append([]string{o.init[0], dir}, o.init[1:]...)
	}
	init := exec.Command(filepath.Join(root, "scripts", "slapd.sh"), initArgs...)
	init.Env = append(os.Environ(), "TCS_OVERLAYS="+strings.Join(o.overlays, " "))
	if o.noSchema {
		init.Env = append(init.Env, "TCS_SCHEMA=none")
	}
	if o.threads > 0 {
		init.Env = append(init.Env, fmt.Sprintf("TCS_THREADS=%d", o.threads))
	}
	if o.tls {
		ca, err := newCA(dir)
		if err != nil {
			t.Fatalf("ldaptest: %v", err)
		}
		cert, key, err := ca.issue("127.0.0.1", "server")
		if err != nil {
			t.Fatalf("ldaptest: %v", err)
		}
		s.ca, s.CAFile = ca, ca.certFile
		init.Env = append(init.Env, "TCS_TLS_CERT="+cert, "TCS_TLS_KEY="+key, "TCS_TLS_CA="+ca.certFile)
		s.LDAPIURL = "ldapi://" + strings.ReplaceAll(filepath.Join(dir, "ldapi.sock"), "/", "%2F")
	}
	if out, err := init.CombinedOutput(); err != nil {
		t.Fatalf("ldaptest: cannot make a slapd configuration (is slapd installed? `scripts/slapd.sh install`): %v\n%s", err, out)
	}
	if o.aclSet {
		if err := replaceACL(dir, o.acl); err != nil {
			t.Fatalf("ldaptest: %v", err)
		}
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := FreePort()
		if err != nil {
			t.Fatalf("ldaptest: %v", err)
		}
		if o.port != 0 {
			port = o.port
		}
		s.Port = port
		s.URL = "ldap://127.0.0.1:" + strconv.Itoa(port)
		if o.tls {
			tlsPort, err := FreePort()
			if err != nil {
				t.Fatalf("ldaptest: %v", err)
			}
			s.LDAPSURL = "ldaps://127.0.0.1:" + strconv.Itoa(tlsPort)
		}
		if lastErr = s.start(); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("ldaptest: slapd did not start: %v", lastErr)
	}
	if len(o.ldif) > 0 {
		s.Load(o.ldif...)
	}
	return s
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return fmt.Errorf("already running")
	}
	urls := s.URL + "/"
	if s.LDAPSURL != "" {
		urls += " " + s.LDAPSURL + "/ " + s.LDAPIURL
	}
	cmd := exec.Command(filepath.Join(s.root, "scripts", "slapd.sh"), "run", s.Dir, urls)
	log := &lockedBuffer{}
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if s.debug != "" {
		cmd.Env = append(os.Environ(), "TCS_DEBUG="+s.debug)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.URL[len("ldap://"):], 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			return fmt.Errorf("slapd exited (%v): %s", err, log.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
			return fmt.Errorf("slapd did not listen on %s within 15s: %s", s.URL, log.String())
		}
	}
	s.cmd = cmd
	s.done = exited
	s.log = log
	return nil
}

// replaceACL rewrites the olcAccess rules of the mdb database in the
// configuration under dir (slapd not running) with slapmodify.
func replaceACL(dir string, rules []string) error {
	var b strings.Builder
	b.WriteString("dn: olcDatabase={1}mdb,cn=config\nchangetype: modify\n")
	if len(rules) == 0 {
		b.WriteString("delete: olcAccess\n-\n")
	} else {
		b.WriteString("replace: olcAccess\n")
		for i, r := range rules {
			fmt.Fprintf(&b, "olcAccess: {%d}%s\n", i, r)
		}
		b.WriteString("-\n")
	}
	bin := "slapmodify"
	if _, err := exec.LookPath(bin); err != nil {
		bin = "/usr/sbin/slapmodify"
	}
	cmd := exec.Command(bin, "-n0", "-F", filepath.Join(dir, "slapd.d"))
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("slapmodify of the access rules: %v\n%s", err, out)
	}
	return nil
}

// Stop shuts slapd down cleanly (SIGTERM) and waits for it.
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

// Kill stops slapd with SIGKILL and waits for it.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

// reportExit logs slapd's output when it exited without being asked to (a
// crash under load says why only there).
func (s *Server) reportExit() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	select {
	case err := <-s.done:
		s.t.Errorf("ldaptest: slapd exited on its own (%v); its output:\n%s", err, s.log.String())
		s.cmd = nil
	default:
	}
}

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	pid := s.cmd.Process.Pid
	syscall.Kill(-pid, sig)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		syscall.Kill(-pid, syscall.SIGKILL)
		<-s.done
	}
	s.cmd = nil
}

// Restart stops slapd cleanly and starts it again on the same port with the
// same data, after an optional pause while it is down.
func (s *Server) Restart(down time.Duration) {
	s.t.Helper()
	s.Stop()
	time.Sleep(down)
	var err error
	for i := 0; i < 50; i++ { // the port may linger a moment
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("ldaptest: slapd did not restart: %v", err)
}

// Start starts a stopped server again (same port, same data).
func (s *Server) Start() {
	s.t.Helper()
	s.Restart(0)
}

// Load adds the entries of LDIF files (paths relative to the repository root
// or absolute) with ldapadd.
func (s *Server) Load(paths ...string) {
	s.t.Helper()
	for _, p := range paths {
		if !filepath.IsAbs(p) {
			p = filepath.Join(s.root, p)
		}
		s.ldap("ldapadd", "-f", p)
	}
}

// Apply runs ldapmodify with an LDIF text (changetype records, or plain
// entries which are added).
func (s *Server) Apply(ldif string) {
	s.t.Helper()
	s.ldapStdin(ldif, "ldapmodify", "-a")
}

// Search runs ldapsearch and returns its LDIF output.
func (s *Server) Search(base, filter string, attrs ...string) string {
	s.t.Helper()
	args := append([]string{"-LLL", "-o", "ldif_wrap=no", "-b", base, filter}, attrs...)
	return s.ldap("ldapsearch", args...)
}

func (s *Server) ldap(tool string, args ...string) string {
	s.t.Helper()
	return s.ldapStdin("", tool, args...)
}

func (s *Server) ldapStdin(stdin, tool string, args ...string) string {
	s.t.Helper()
	full := append([]string{"-x", "-H", s.URL, "-D", s.BindDN, "-w", s.Password}, args...)
	cmd := exec.Command(tool, full...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("ldaptest: %s %s: %v\n%s", tool, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Log returns what slapd printed so far (its -d output).
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log == nil {
		return ""
	}
	return s.log.String()
}

// RepoRoot finds the repository root (the folder holding go.mod and
// scripts/slapd.sh) from the working directory up.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "scripts", "slapd.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("scripts/slapd.sh not found above the working directory")
		}
		dir = parent
	}
}

// FreePort returns a loopback TCP port that was free a moment ago, for a
// server started later (slapd, an agent process). It is drawn at random
// from below the kernel's ephemeral range: a port the kernel hands out
// (listening on port 0) is also what it gives the next outgoing
// connection, and in the scale run, a hundred agents opening connections
// took the ports of two agents between the pick and their listen (both
// exited with "address already in use"). A port is never handed out twice
// by one process: a hundred random picks made before any agent listens
// collide about one time in five (the next scale run lost an agent so).
func FreePort() (int, error) {
	lo, hi := freePortRange()
	handedMu.Lock()
	defer handedMu.Unlock()
	var last error
	for range 100 {
		port := lo + rand.IntN(hi-lo+1)
		if handed[port] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			last = err
			continue
		}
		l.Close()
		handed[port] = true
		return port, nil
	}
	return 0, fmt.Errorf("no free loopback port in %d-%d after 100 tries: %w", lo, hi, last)
}

// handed holds the ports FreePort has returned in this process.
var (
	handedMu sync.Mutex
	handed   = map[int]bool{}
)

// freePortRange is where FreePort draws from: 10000 up to just below the
// ephemeral range (ip_local_port_range), or 10000-32767 when that cannot
// be read or leaves too little room.
func freePortRange() (lo, hi int) {
	lo, hi = 10000, 32767
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return lo, hi
	}
	if first, err := strconv.Atoi(f[0]); err == nil && first-1 >= lo+1000 {
		hi = first - 1
	}
	return lo, hi
}
