package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
)

// PasswordEnv is the environment variable that holds the bind password when
// [directory] bind_password_file is not set.
const PasswordEnv = "TCS_BIND_PASSWORD"

// Size limits for the files the configuration names; anything larger is not
// what the key is for (and /dev/zero must not hang Load).
const (
	maxPasswordFile = 64 << 10
	maxCAFile       = 1 << 20
)

// Load reads the configuration file at path: see [Parse]. The bind password
// comes from bind_password_file or, when that is not set, from the
// environment variable TCS_BIND_PASSWORD.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading configuration: %w", err)
	}
	return Parse(data, path, os.Getenv)
}

// Parse reads a configuration from data, as if from the file at path: it
// decodes data onto [Default], rejecting syntax errors, unknown keys and
// values of the wrong type; derives advertise and renew_deadline when data
// does not set them; resolves bind_password_file and ca_file against the
// directory of path and reads them; and runs [Config.Validate]. path
// prefixes every error. env looks up environment variables (nil means
// os.Getenv); only TCS_BIND_PASSWORD is read.
//
// On error the returned Config is nil and the error lists every problem
// found, one per line. Problems with the file's keys and types are reported
// without the value checks, which would only repeat them.
func Parse(data []byte, path string, env func(string) string) (*Config, error) {
	if env == nil {
		env = os.Getenv
	}
	c, md, err := decode(data, path)
	if err != nil {
		return nil, err
	}
	c.path = path
	c.deriveDefaults(md)

	dir := filepath.Dir(path)
	d := &c.Directory
	d.BindPasswordFile = resolve(dir, d.BindPasswordFile)
	d.CAFile = resolve(dir, d.CAFile)
	d.TLSCertFile = resolve(dir, d.TLSCertFile)
	d.TLSKeyFile = resolve(dir, d.TLSKeyFile)
	h := &c.HTTP
	h.TLSCertFile = resolve(dir, h.TLSCertFile)
	h.TLSKeyFile = resolve(dir, h.TLSKeyFile)
	h.ClientCAFile = resolve(dir, h.ClientCAFile)

	var fileErrs []error
	if d.BindDN != "" { // a password without a bind DN is a problem for Validate
		if d.BindPasswordFile != "" {
			pw, err := readPassword(d.BindPasswordFile)
			if err != nil {
				fileErrs = append(fileErrs, fmt.Errorf("%s: %w", keyName("directory", "bind_password_file"), err))
			} else {
				c.password = &pw
			}
		} else if pw := env(PasswordEnv); pw != "" {
			c.password = &pw
		}
	}
	if scheme, err := ldapScheme(d.URL); err == nil && d.CAFile != "" && (scheme == "ldaps" || d.StartTLS) {
		if err := checkCAFile(d.CAFile); err != nil {
			fileErrs = append(fileErrs, fmt.Errorf("%s: %w", keyName("directory", "ca_file"), err))
		}
	}

	if d.TLSCertFile != "" && d.TLSKeyFile != "" {
		if err := checkKeyPair(d.TLSCertFile, d.TLSKeyFile); err != nil {
			fileErrs = append(fileErrs, fmt.Errorf("%s: %w", keyName("directory", "tls_cert_file"), err))
		}
	}
	if h.TLSCertFile != "" && h.TLSKeyFile != "" {
		if err := checkKeyPair(h.TLSCertFile, h.TLSKeyFile); err != nil {
			fileErrs = append(fileErrs, fmt.Errorf("%s: %w", keyName("http", "tls_cert_file"), err))
		}
	}
	if h.ClientCAFile != "" && h.TLSCertFile != "" {
		if err := checkCAFile(h.ClientCAFile); err != nil {
			fileErrs = append(fileErrs, fmt.Errorf("%s: %w", keyName("http", "client_ca_file"), err))
		}
	}

	if errs := append(c.problems(), fileErrs...); len(errs) > 0 {
		return nil, joinIn(path, errs)
	}
	return &c, nil
}

// deriveDefaults fills in the defaults that depend on other keys, unless the
// file set them.
func (c *Config) deriveDefaults(md toml.MetaData) {
	if !md.IsDefined("service", "advertise") {
		if adv, ok := advertiseFor(c.Service.Listen); ok {
			c.Service.Advertise = adv
		}
	}
	if !md.IsDefined("service", "advertise") && c.HTTP.TLSCertFile != "" {
		if rest, ok := strings.CutPrefix(c.Service.Advertise, "http://"); ok {
			c.Service.Advertise = "https://" + rest
		}
	}
	if !md.IsDefined("directory", "renew_deadline") {
		c.Directory.RenewDeadline = Duration{defaultRenewDeadline(c.Directory.LeaseTTL.Duration)}
	}
}

// advertiseFor derives the advertised URL from a listen address:
// "http://host:port", with the machine's host name when the listen host
// means "every address", or "" when the host name is unknown (Validate then
// asks for advertise). ok is false when listen is not host:port: Validate
// reports that, and advertise is left alone so as not to report it twice.
func advertiseFor(listen string) (adv string, ok bool) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", false
	}
	switch host {
	case "", "0.0.0.0", "::":
		host, err = os.Hostname()
		if err != nil || host == "" {
			return "", true
		}
	}
	return "http://" + net.JoinHostPort(host, port), true
}

// resolve makes a file name from the configuration relative to dir, the
// configuration file's directory.
func resolve(dir, name string) string {
	if name == "" || filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(dir, name)
}

// readPassword reads a password file; trailing newlines are not part of the
// password. Errors name the file, never its content.
func readPassword(name string) (string, error) {
	b, err := readSmallFile(name, maxPasswordFile)
	if err != nil {
		return "", err
	}
	pw := strings.TrimRight(string(b), "\r\n")
	if pw == "" {
		return "", fmt.Errorf("%s is empty", name)
	}
	return pw, nil
}

// checkKeyPair checks that a certificate and its key load together.
// Errors name the files, never the key.
func checkKeyPair(certFile, keyFile string) error {
	for _, f := range []string{certFile, keyFile} {
		if _, err := readSmallFile(f, maxCAFile); err != nil {
			return err
		}
	}
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		return fmt.Errorf("%s and %s are not a PEM certificate and its key: %v", certFile, keyFile, err)
	}
	return nil
}

// checkCAFile checks that a file holds at least one PEM certificate.
func checkCAFile(name string) error {
	b, err := readSmallFile(name, maxCAFile)
	if err != nil {
		return err
	}
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		return fmt.Errorf("%s holds no PEM certificate", name)
	}
	return nil
}

// readSmallFile reads a regular file of at most limit bytes. A FIFO or a
// device is refused before it is opened, since opening or reading one can
// block forever.
func readSmallFile(name string, limit int64) ([]byte, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d KiB", name, limit>>10)
	}
	return b, nil
}

// joinIn prefixes every error with the file it is about and joins them, one
// per line. A Config built in code has no file, and no prefix.
func joinIn(path string, errs []error) error {
	if path == "" {
		return errors.Join(errs...)
	}
	in := make([]error, len(errs))
	for i, err := range errs {
		in[i] = fmt.Errorf("%s: %w", path, err)
	}
	return errors.Join(in...)
}
