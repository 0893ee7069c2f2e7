package ldapdir_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"tcs/internal/ldaptest"
	"tcs/ldapdir"
	"tcs/smartset"
)

// An agent bound as its own account (the shipped ACLs) registers, refreshes
// and claims; an operation the ACLs forbid is ErrForbidden; and on a site's
// server without the shipped rules the same code works too.
func TestAgentAccount(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []ldaptest.Option
	}{
		{"shipped ACLs", nil},
		{"site without the tcs ACLs", []ldaptest.Option{ldaptest.WithACL("to attrs=userPassword by anonymous auth by * none", "to * by users manage by * read")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := ldaptest.Start(t, tc.opts...)
			addSet(t, s, "acct", "Texas")
			acct := s.AddAgent("tcs-texas-1")
			d, err := ldapdir.Open(ldapdir.Config{URL: s.URL, BaseDN: s.BaseDN, BindDN: acct.DN, BindPassword: acct.Password})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			ctx := ctxT(t, 20*time.Second)
			l, err := d.Register(ctx, smartset.Service{Name: "tcs-texas-1", Location: "Texas", Endpoint: "http://127.0.0.1:1"}, 3*time.Second)
			if err != nil {
				t.Fatalf("register as %s: %v", acct.DN, err)
			}
			if err := l.Refresh(ctx); err != nil {
				t.Fatalf("refresh: %v", err)
			}
			got, err := d.Claim(ctx, "acct", 0, d.ServiceDN("tcs-texas-1"))
			if err != nil || got.Epoch != 1 || !smartset.SameDN(got.Owner, d.ServiceDN("tcs-texas-1")) {
				t.Fatalf("claim: %+v %v", got, err)
			}
			if _, err := d.Claim(ctx, "acct", 0, d.ServiceDN("tcs-texas-1")); !errors.Is(err, ldapdir.ErrConflict) {
				t.Fatalf("stale claim: %v, want ErrConflict", err)
			}
			if err := l.Close(ctx); err != nil {
				t.Fatalf("leave: %v", err)
			}
		})
	}
	t.Run("forbidden", func(t *testing.T) {
		s := ldaptest.Start(t)
		addSet(t, s, "acct", "Texas")
		acct := s.AddAgent("tcs-texas-1")
		d, err := ldapdir.Open(ldapdir.Config{URL: s.URL, BaseDN: s.BaseDN, BindDN: acct.DN, BindPassword: acct.Password})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		ctx := ctxT(t, 20*time.Second)
		_, err = d.Register(ctx, smartset.Service{Name: "tcs-japan-1", Location: "Japan"}, 3*time.Second)
		if !errors.Is(err, ldapdir.ErrForbidden) {
			t.Fatalf("register another agent's lease: %v, want ErrForbidden", err)
		}
		if _, err := d.Claim(ctx, "acct", 0, "cn=admin,"+s.BaseDN); !errors.Is(err, ldapdir.ErrForbidden) {
			t.Fatalf("owner outside ou=services: %v, want ErrForbidden", err)
		}
	})
}

// A wrong password is ErrCredentials naming the bind DN and not the
// password; a wrong bind DN too.
func TestCredentialsRefused(t *testing.T) {
	s := ldaptest.Start(t)
	acct := s.AddAgent("tcs-texas-1")
	ctx := ctxT(t, 20*time.Second)
	for _, tc := range []struct{ name, dn, pw string }{
		{"wrong password", acct.DN, "Zq-not-it-91"},
		{"wrong bind DN", "cn=tcs-nobody,ou=agents," + s.BaseDN, acct.Password},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ldapdir.Open(ldapdir.Config{URL: s.URL, BaseDN: s.BaseDN, BindDN: tc.dn, BindPassword: tc.pw})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			err = d.Ping(ctx)
			if !errors.Is(err, ldapdir.ErrCredentials) || errors.Is(err, ldapdir.ErrUnavailable) {
				t.Fatalf("Ping: %v, want ErrCredentials", err)
			}
			if !strings.Contains(err.Error(), tc.dn) || !strings.Contains(err.Error(), "49") || strings.Contains(err.Error(), tc.pw) {
				t.Fatalf("message %q must name %s and result 49, and not the password", err, tc.dn)
			}
		})
	}
}

// SASL EXTERNAL: a client certificate from the server's CA, over ldaps://
// and StartTLS, binds as the agent account its subject maps to (and may do
// what that account may do); a certificate from another CA is refused.
func TestSASLExternal(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithTLS())
	addSet(t, s, "ext", "Texas")
	s.AddAgent("tcs-texas-1")
	certFile, keyFile := s.ClientCert("tcs-texas-1")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	ctx := ctxT(t, 30*time.Second)
	epoch := int64(0)
	for _, tc := range []struct {
		name     string
		url      string
		startTLS bool
	}{
		{"ldaps", s.LDAPSURL, false},
		{"StartTLS", s.URL, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ldapdir.Open(ldapdir.Config{URL: tc.url, BaseDN: s.BaseDN, SASLExternal: true, StartTLS: tc.startTLS,
				BindDN: "cn=tcs-texas-1,ou=agents," + s.BaseDN,
				TLS:    &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{cert}}})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			got, err := d.Claim(ctx, "ext", epoch, d.ServiceDN("tcs-texas-1"))
			if err != nil {
				t.Fatalf("claim as the certificate's account: %v", err)
			}
			epoch = got.Epoch
			// The account may not name another agent as owner: the
			// certificate maps to an agent, not to the admin.
			if _, err := d.Claim(ctx, "ext", epoch, "cn=admin,"+s.BaseDN); !errors.Is(err, ldapdir.ErrForbidden) {
				t.Fatalf("owner outside ou=services: %v, want ErrForbidden", err)
			}
		})
	}
	if epoch != 2 {
		t.Fatalf("epoch after two claims: %d", epoch)
	}

	// A certificate from a CA the server does not trust.
	other := ldaptest.Start(t, ldaptest.WithTLS())
	foreignCert, foreignKey := other.ClientCert("tcs-texas-1")
	foreign, err := tls.LoadX509KeyPair(foreignCert, foreignKey)
	if err != nil {
		t.Fatal(err)
	}
	d, err := ldapdir.Open(ldapdir.Config{URL: s.LDAPSURL, BaseDN: s.BaseDN, SASLExternal: true,
		TLS: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{foreign}}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Ping(ctx); err == nil {
		t.Fatalf("a certificate from another CA was accepted")
	}
	if _, err := ldapdir.Open(ldapdir.Config{URL: s.URL, BaseDN: s.BaseDN, SASLExternal: true,
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}}}); err == nil || !strings.Contains(err.Error(), "ldaps:// URL or StartTLS") {
		t.Fatalf("SASL EXTERNAL on plain ldap://: %v", err)
	}
}
