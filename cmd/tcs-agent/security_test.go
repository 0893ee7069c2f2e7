package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"tcs/config"
	"tcs/internal/ldaptest"
)

// syncBuffer is a log sink safe for the agent's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// agentConfig writes a configuration for an agent bound as acct (extra
// lines are added to the TOML) and returns its path.
func agentConfig(t *testing.T, s *ldaptest.Server, name, location string, port int, bindDN, pwFile string, extra ...string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "tcs.toml")
	body := fmt.Sprintf(`[service]
name = %q
location = %q
listen = "127.0.0.1:%d"

[directory]
url = %q
base_dn = %q
bind_dn = %q
bind_password_file = %q
lease_ttl = "2s"

[log]
level = "debug"
`, name, location, port, s.URL, s.BaseDN, bindDN, pwFile)
	body = mergeTOML(body, extra)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// mergeTOML appends "[table] key = value" lines under their table.
func mergeTOML(body string, extra []string) string {
	for _, e := range extra {
		table, kv, _ := strings.Cut(e, " ")
		if i := strings.Index(body, table+"\n"); i >= 0 {
			at := i + len(table) + 1
			body = body[:at] + kv + "\n" + body[at:]
		} else {
			body += "\n" + table + "\n" + kv + "\n"
		}
	}
	return body
}

// A wrong password or bind DN at start: exit 1 within 2 s, saying the
// credentials were refused (result 49) and naming the bind DN, never that
// the directory cannot be reached, and never showing the password.
func TestRefusedCredentialsExitFast(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	acct := s.AddAgent("tcs-texas-1")
	wrong := filepath.Join(t.TempDir(), "wrong.pw")
	os.WriteFile(wrong, []byte("Not-The-Password-4242\n"), 0o600)
	for _, tc := range []struct{ name, dn, pw, secret string }{
		{"wrong password", acct.DN, wrong, "Not-The-Password-4242"},
		{"wrong bind DN", "cn=tcs-nobody,ou=agents," + s.BaseDN, acct.PasswordFile, acct.Password},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port, _ := ldaptest.FreePort()
			cfg := agentConfig(t, s, "tcs-texas-1", "Texas", port, tc.dn, tc.pw)
			start := time.Now()
			code, _, errOut := runMain("run", "--config", cfg)
			took := time.Since(start)
			if code == 0 || took > 2*time.Second {
				t.Fatalf("exit %d after %v, want non-zero within 2s; stderr:\n%s", code, took, errOut)
			}
			for _, want := range []string{"refused the credentials", "49", tc.dn} {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr lacks %q:\n%s", want, errOut)
				}
			}
			if strings.Contains(errOut, "cannot reach") || strings.Contains(errOut, tc.secret) {
				t.Errorf("stderr says the directory is unreachable or shows the password:\n%s", errOut)
			}
		})
	}
}

// A running agent whose password is changed under it (and whose
// connections then break) keeps retrying, fenced, logs a credentials
// problem, and recovers when the password is right again; no password
// ever shows in its log or /metrics.
func TestRotatedPasswordFencesAndNeverLeaks(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	acct := s.AddAgent("tcs-texas-1")
	port, _ := ldaptest.FreePort()
	cfg, err := config.Load(agentConfig(t, s, "tcs-texas-1", "Texas", port, acct.DN, acct.PasswordFile))
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, &logs) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("agent did not stop")
		}
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	metric := func() string {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	waitFor(t, 20*time.Second, "the agent owns the Texas sets", func() bool {
		return strings.Contains(s.Search("ou=smartsets,"+s.BaseDN, "(owner=cn=tcs-texas-1,ou=services,dc=example,dc=org)", "cn"), "texas-routers")
	})

	// Rotate the password behind the agent's back; restarting slapd breaks
	// its connections, so it must bind again.
	newPW := "Rotated-Secret-9731"
	s.Apply(fmt.Sprintf("dn: %s\nchangetype: modify\nreplace: userPassword\nuserPassword: %s\n", acct.DN, newPW))
	s.Restart(0)
	waitFor(t, 20*time.Second, "fenced with a credentials error in the log", func() bool {
		return strings.Contains(metric(), "tcs_fenced 1") && strings.Contains(logs.String(), "refused the credentials")
	})
	// Back to the password it has: it registers again and unfences.
	s.Apply(fmt.Sprintf("dn: %s\nchangetype: modify\nreplace: userPassword\nuserPassword: %s\n", acct.DN, acct.Password))
	waitFor(t, 30*time.Second, "unfenced after the password is right again", func() bool {
		return strings.Contains(metric(), "tcs_fenced 0")
	})
	all := logs.String() + metric()
	for _, pw := range []string{acct.Password, newPW} {
		if strings.Contains(all, pw) {
			t.Fatalf("a password shows in the log or /metrics")
		}
	}
	if !strings.Contains(logs.String(), acct.DN) {
		t.Errorf("the credentials problem does not name the bind DN:\n%s", logs.String())
	}
}

// HTTPS for the HTTP API, with and without required client certificates,
// and a redirect from a plain-HTTP agent to an HTTPS owner keeps https://.
func TestHTTPS(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithTLS(), ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	texas, japan := s.AddAgent("tcs-texas-1"), s.AddAgent("tcs-japan-1")
	serverCert, serverKey := s.Issue("127.0.0.1", "server")
	clientCert, clientKey := s.Issue("curl", "client")
	pem, _ := os.ReadFile(s.CAFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cc, err := tls.LoadX509KeyPair(clientCert, clientKey)
	if err != nil {
		t.Fatal(err)
	}
	client := func(cert bool) *http.Client {
		c := &tls.Config{RootCAs: pool}
		if cert {
			c.Certificates = []tls.Certificate{cc}
		}
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: c},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}

	startAgent := func(name, loc, bindDN, pw string, extra ...string) int {
		port, _ := ldaptest.FreePort()
		cfg, err := config.Load(agentConfig(t, s, name, loc, port, bindDN, pw, extra...))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		var logs syncBuffer
		go func() { done <- run(ctx, cfg, &logs) }()
		t.Cleanup(func() {
			cancel()
			<-done
			if t.Failed() {
				t.Logf("log of %s:\n%s", name, logs.String())
			}
		})
		return port
	}
	tport := startAgent("tcs-texas-1", "Texas", texas.DN, texas.PasswordFile,
		`[http] tls_cert_file = "`+serverCert+`"`, `[http] tls_key_file = "`+serverKey+`"`, `[http] client_ca_file = "`+s.CAFile+`"`)
	tURL := fmt.Sprintf("https://127.0.0.1:%d", tport)
	waitFor(t, 20*time.Second, "the HTTPS agent owns texas-routers", func() bool {
		return strings.Contains(s.Search("cn=texas-routers,ou=smartsets,"+s.BaseDN, "(owner=*)", "owner"), "tcs-texas-1")
	})
	if out := s.Search("cn=tcs-texas-1,ou=services,"+s.BaseDN, "(objectClass=*)", "tcsEndpoint"); !strings.Contains(out, "tcsEndpoint: "+tURL) {
		t.Fatalf("the HTTPS agent advertises:\n%s", out)
	}
	if _, err := client(false).Get(tURL + "/healthz"); err == nil {
		t.Errorf("client_ca_file: a client without a certificate was served")
	}
	resp, err := client(true).Get(tURL + "/v1/smartsets/texas-routers")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("HTTPS with a client certificate: %v %v", resp, err)
	}
	resp.Body.Close()
	if resp, err := http.Get(strings.Replace(tURL, "https", "http", 1) + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest { // Go's "client sent an HTTP request to an HTTPS server"
			t.Errorf("plain HTTP on the HTTPS port: %s", resp.Status)
		}
	}

	// Japan serves plain HTTP and redirects to the owner's https:// URL.
	jport := startAgent("tcs-japan-1", "Japan", japan.DN, japan.PasswordFile)
	jURL := fmt.Sprintf("http://127.0.0.1:%d", jport)
	var loc string
	waitFor(t, 20*time.Second, "Japan redirects texas-routers to the owner", func() bool {
		resp, err := client(false).Get(jURL + "/v1/smartsets/texas-routers")
		if err != nil {
			return false
		}
		resp.Body.Close()
		loc = resp.Header.Get("Location")
		return resp.StatusCode == http.StatusTemporaryRedirect
	})
	if loc != tURL+"/v1/smartsets/texas-routers" {
		t.Errorf("redirect to %q, want %q (the owner's https:// endpoint)", loc, tURL+"/v1/smartsets/texas-routers")
	}

	// Without client_ca_file any client may connect over HTTPS.
	cali := s.AddAgent("tcs-california-1")
	cport := startAgent("tcs-california-1", "California", cali.DN, cali.PasswordFile,
		`[http] tls_cert_file = "`+serverCert+`"`, `[http] tls_key_file = "`+serverKey+`"`)
	waitFor(t, 20*time.Second, "HTTPS without client certificates", func() bool {
		resp, err := client(false).Get(fmt.Sprintf("https://127.0.0.1:%d/healthz", cport))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

func waitFor(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tcs-agent with [directory] sasl_external: the agent binds with its client
// certificate over StartTLS, as its account, and takes its sets.
func TestRunWithSASLExternal(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithTLS(), ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	s.AddAgent("tcs-texas-1")
	cert, key := s.ClientCert("tcs-texas-1")
	port, _ := ldaptest.FreePort()
	dir := t.TempDir()
	path := filepath.Join(dir, "tcs.toml")
	os.WriteFile(path, []byte(fmt.Sprintf(`[service]
name = "tcs-texas-1"
location = "Texas"
listen = "127.0.0.1:%d"

[directory]
url = %q
base_dn = %q
start_tls = true
ca_file = %q
sasl_external = true
tls_cert_file = %q
tls_key_file = %q
bind_dn = "cn=tcs-texas-1,ou=agents,dc=example,dc=org"
lease_ttl = "2s"
`, port, s.URL, s.BaseDN, s.CAFile, cert, key)), 0o600)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, &logs) }()
	defer func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	}()
	waitFor(t, 20*time.Second, "the agent owns the Texas sets", func() bool {
		return strings.Contains(s.Search("ou=smartsets,"+s.BaseDN, "(owner=cn=tcs-texas-1,ou=services,dc=example,dc=org)", "cn"), "texas-routers")
	})
	// The lease was written by the certificate's account, not the admin.
	if out := s.Search("cn=tcs-texas-1,ou=services,"+s.BaseDN, "(objectClass=*)", "creatorsName"); !strings.Contains(strings.ToLower(out), "creatorsname: cn=tcs-texas-1,ou=agents,dc=example,dc=org") {
		t.Errorf("lease not created by the agent account:\n%s", out)
	}
}
