package ldaptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// certAuthority is a throwaway CA for one test server: it signs the
// server's certificate and the clients' certificates.
type certAuthority struct {
	dir      string
	certFile string
	cert     *x509.Certificate
	key      *ecdsa.PrivateKey

	mu     sync.Mutex
	serial int64
}

func newCA(dir string) (*certAuthority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tcs test CA", Organization: []string{"tcs"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	ca := &certAuthority{dir: dir, certFile: filepath.Join(dir, "ca.pem"), cert: cert, key: key, serial: 1}
	if err := os.WriteFile(ca.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	return ca, nil
}

// issue writes a certificate and key signed by the CA. A "server"
// certificate is for the IP address or host name cn; a "client" one has
// the subject CN=cn,OU=agents,O=tcs (what slapd's olcAuthzRegexp maps to the
// agent account cn=<cn>,ou=agents,<suffix>).
func (ca *certAuthority) issue(cn, kind string) (certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	ca.mu.Lock()
	ca.serial++
	serial := ca.serial
	ca.mu.Unlock()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	switch kind {
	case "server":
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		if ip := net.ParseIP(cn); ip != nil {
			tmpl.IPAddresses = []net.IP{ip}
		} else {
			tmpl.DNSNames = []string{cn}
		}
	case "client":
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		tmpl.Subject.OrganizationalUnit = []string{"agents"}
		tmpl.Subject.Organization = []string{"tcs"}
	default:
		return "", "", fmt.Errorf("ldaptest: unknown certificate kind %q", kind)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return "", "", err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", err
	}
	base := fmt.Sprintf("%s-%s-%d", kind, sanitize(cn), serial)
	certFile, keyFile = filepath.Join(ca.dir, base+".pem"), filepath.Join(ca.dir, base+"-key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			b[i] = '_'
		}
	}
	return string(b)
}

// ClientCert issues a client certificate (and key, PEM files) for the agent
// account name from the server's CA: SASL EXTERNAL over ldaps:// or
// StartTLS with it binds as cn=<name>,ou=agents,<base>. Only with WithTLS.
func (s *Server) ClientCert(name string) (certFile, keyFile string) {
	s.t.Helper()
	if s.ca == nil {
		s.t.Fatalf("ldaptest: ClientCert needs a server started WithTLS")
	}
	c, k, err := s.ca.issue(name, "client")
	if err != nil {
		s.t.Fatalf("ldaptest: client certificate for %s: %v", name, err)
	}
	return c, k
}

// Issue makes a certificate for an HTTPS server at host (an IP address or a
// name) or, with kind "client", a client certificate with subject
// CN=<host>,OU=agents,O=tcs, signed by the server's CA (CAFile). Only with
// WithTLS.
func (s *Server) Issue(host, kind string) (certFile, keyFile string) {
	s.t.Helper()
	if s.ca == nil {
		s.t.Fatalf("ldaptest: Issue needs a server started WithTLS")
	}
	c, k, err := s.ca.issue(host, kind)
	if err != nil {
		s.t.Fatalf("ldaptest: certificate for %s: %v", host, err)
	}
	return c, k
}
