package config_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tcs/config"
)

// keyPairPEM returns a self-signed certificate and its key in PEM.
func keyPairPEM(t *testing.T) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
}

// The TLS keys of [http] and [directory]: resolved against the file's
// directory, checked to load, and their rules between keys.
func TestParseTLSKeys(t *testing.T) {
	dir := t.TempDir()
	cert, key := keyPairPEM(t)
	writeFile(t, dir, "cert.pem", cert)
	writeFile(t, dir, "key.pem", key)
	writeFile(t, dir, "ca.pem", string(selfSignedPEM(t)))
	writeFile(t, dir, "junk.pem", "not a certificate")
	path := filepath.Join(dir, "tcs.toml")

	https := []string{`http.tls_cert_file = "cert.pem"`, `http.tls_key_file = "key.pem"`, `service.advertise`}
	c, err := config.Parse([]byte(tomlFile(append(https, `http.client_ca_file = "ca.pem"`)...)), path, noEnv)
	if err != nil {
		t.Fatalf("HTTPS with client certificates: %v", err)
	}
	if c.HTTP.TLSCertFile != filepath.Join(dir, "cert.pem") || c.HTTP.ClientCAFile != filepath.Join(dir, "ca.pem") {
		t.Errorf("files not resolved: %+v", c.HTTP)
	}
	if !strings.HasPrefix(c.Service.Advertise, "https://") {
		t.Errorf("derived advertise %q, want https:// with [http] tls_cert_file", c.Service.Advertise)
	}

	ext := []string{`directory.url = "ldaps://127.0.0.1:636"`, `directory.sasl_external = true`,
		`directory.tls_cert_file = "cert.pem"`, `directory.tls_key_file = "key.pem"`, `directory.bind_dn`, `directory.bind_password_file`}
	c, err = config.Parse([]byte(tomlFile(ext...)), path, noEnv)
	if err != nil {
		t.Fatalf("SASL EXTERNAL: %v", err)
	}
	if !c.Directory.SASLExternal || c.BindPassword() != "" {
		t.Errorf("sasl_external: %+v", c.Directory)
	}

	for _, tc := range []struct {
		name  string
		edits []string
		want  []string
	}{
		{"cert without key", []string{`http.tls_cert_file = "cert.pem"`}, []string{"[http] tls_key_file is required with [http] tls_cert_file"}},
		{"key without cert", []string{`http.tls_key_file = "key.pem"`}, []string{"[http] tls_cert_file is required with [http] tls_key_file"}},
		{"client CA without HTTPS", []string{`http.client_ca_file = "ca.pem"`}, []string{"[http] client_ca_file: has no use without HTTPS"}},
		{"not a key pair", []string{`http.tls_cert_file = "junk.pem"`, `http.tls_key_file = "key.pem"`}, []string{"[http] tls_cert_file", "junk.pem"}},
		{"client CA not PEM", append(https, `http.client_ca_file = "junk.pem"`), []string{"[http] client_ca_file", "holds no PEM certificate"}},
		{"missing cert file", []string{`http.tls_cert_file = "none.pem"`, `http.tls_key_file = "key.pem"`}, []string{"[http] tls_cert_file", "none.pem"}},
		{"http advertise with HTTPS", append(https, `service.advertise = "http://127.0.0.1:8080"`), []string{`[service] advertise: "http://127.0.0.1:8080" is http://`}},
		{"sasl_external on plain ldap", append(ext, `directory.url = "ldap://127.0.0.1:389"`), []string{"[directory] sasl_external: needs TLS"}},
		{"sasl_external without a certificate", []string{`directory.url = "ldaps://127.0.0.1:636"`, `directory.sasl_external = true`, `directory.bind_password_file`},
			[]string{"[directory] sasl_external: needs a client certificate"}},
		{"sasl_external with a password file", append(ext, `directory.bind_password_file = "cert.pem"`), []string{"[directory] bind_password_file: has no use with [directory] sasl_external"}},
		{"client certificate without TLS", []string{`directory.tls_cert_file = "cert.pem"`, `directory.tls_key_file = "key.pem"`}, []string{"[directory] tls_cert_file: has no use without TLS"}},
		{"typo", []string{`http.tls_cert = "cert.pem"`}, []string{"unknown key [http] tls_cert"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tomlFile(tc.edits...)), path, envOf(map[string]string{"TCS_BIND_PASSWORD": "pw"}))
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
