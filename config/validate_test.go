package config_test

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tcs/config"
)

// valid returns a Config built in code that passes Validate.
func valid() config.Config {
	c := config.Default()
	c.Service.Name = "tcs-texas-1"
	c.Service.Location = "Texas"
	c.Directory.URL = "ldap://127.0.0.1:3890"
	c.Directory.BaseDN = "dc=example,dc=org"
	return c
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *config.Config)
		want   []string // each must appear in the error; none means valid
	}{
		{name: "valid", change: func(*config.Config) {}},
		{
			name:   "Default alone lacks the four required keys",
			change: func(c *config.Config) { *c = config.Default() },
			want: []string{
				"[service] name is required\n" +
					"[service] location is required\n" +
					"[directory] url is required\n" +
					"[directory] base_dn is required",
			},
		},
		{
			name: "ldaps with a CA file and StartTLS off",
			change: func(c *config.Config) {
				c.Directory.URL = "ldaps://ldap.example.org:636"
				c.Directory.CAFile = "/etc/ssl/ca.pem"
			},
		},
		{
			name: "ldap with StartTLS and skip verify",
			change: func(c *config.Config) {
				c.Directory.URL = "ldap://ldap.example.org"
				c.Directory.StartTLS = true
				c.Directory.InsecureSkipVerify = true
			},
		},
		{
			name:   "ldapi with an escaped socket path",
			change: func(c *config.Config) { c.Directory.URL = "ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi" },
		},
		{
			name:   "ldapi with the default socket",
			change: func(c *config.Config) { c.Directory.URL = "ldapi://" },
		},
		{
			name:   "ldapi in the older path form",
			change: func(c *config.Config) { c.Directory.URL = "ldapi:///var/run/slapd/ldapi" },
		},
		{
			name:   "ldapi scheme in upper case",
			change: func(c *config.Config) { c.Directory.URL = "LDAPI://%2Ftmp%2Fs" },
			want:   []string{`[directory] url: "LDAPI://%2Ftmp%2Fs" must start with ldapi:// in lower case`},
		},
		{
			name:   "DN with escapes, spaces, OIDs and a multi-valued RDN",
			change: func(c *config.Config) { c.Directory.BaseDN = `o=Acme\, Inc., 2.5.4.3=x+uid=y , dc=org` },
		},
		{
			name:   "DN ending in a lone backslash",
			change: func(c *config.Config) { c.Directory.BaseDN = `dc=org\` },
			want:   []string{`[directory] base_dn: "dc=org\\" is not a DN: ends with a lone backslash`},
		},
		{
			name:   "DN with a bad attribute type",
			change: func(c *config.Config) { c.Directory.BaseDN = "1dc=org" },
			want:   []string{`[directory] base_dn: "1dc=org" is not a DN: "1dc" is not an attribute type`},
		},
		{
			name:   "DN with an empty value",
			change: func(c *config.Config) { c.Directory.BaseDN = "dc=example,dc=" },
			want:   []string{`[directory] base_dn: "dc=example,dc=" is not a DN: "dc=" has an empty value`},
		},
		{
			name:   "bind_dn without password",
			change: func(c *config.Config) { c.Directory.BindDN = "cn=admin,dc=example,dc=org" },
			want:   []string{"[directory] bind_dn is set but there is no password"},
		},
		{
			name: "bind_dn with a password file Validate does not read",
			change: func(c *config.Config) {
				c.Directory.BindDN = "cn=admin,dc=example,dc=org"
				c.Directory.BindPasswordFile = "/nonexistent/secret.txt"
			},
		},
		{
			name:   "renew_deadline at exactly lease_ttl",
			change: func(c *config.Config) { c.Directory.RenewDeadline = c.Directory.LeaseTTL },
			want:   []string{"[directory] renew_deadline: must be at most [directory] lease_ttl less 1.1s (3.9s), not 5s"},
		},
		{
			name: "a longer lease with the default renew_deadline left as is",
			change: func(c *config.Config) {
				c.Directory.LeaseTTL = config.Duration{30 * time.Second}
			},
			want: []string{"[directory] renew_deadline: must be more than [directory] lease_ttl/3 (10s), the lease refresh period, not 3.333s"},
		},
		{
			name: "a bad lease_ttl is not reported twice",
			change: func(c *config.Config) {
				c.Directory.LeaseTTL = config.Duration{0}
				c.Directory.RenewDeadline = config.Duration{0}
			},
			want: []string{"[directory] lease_ttl: must be at least 2s, not 0s"},
		},
		{
			name:   "advertise with credentials",
			change: func(c *config.Config) { c.Service.Advertise = "http://user:pw@tcs.example.org" },
			want:   []string{`[service] advertise: "http://user:pw@tcs.example.org" must not hold credentials: it is published in the directory`},
		},
		{
			name:   "empty listen",
			change: func(c *config.Config) { c.Service.Listen = "" },
			want:   []string{"[service] listen is required"},
		},
		{
			name:   "name of 64 characters",
			change: func(c *config.Config) { c.Service.Name = strings.Repeat("a", 64) },
		},
		{
			name:   "hysteresis_km infinite",
			change: func(c *config.Config) { c.Placement.HysteresisKm = math.Inf(1) },
			want:   []string{"[placement] hysteresis_km: must be a finite number >= 0, not +Inf"},
		},
		{
			name:   "hysteresis_km zero",
			change: func(c *config.Config) { c.Placement.HysteresisKm = 0 },
		},
		{
			name:   "log level in upper case, as logrus accepts",
			change: func(c *config.Config) { c.Log.Level = "WARNING" },
		},
		{
			name: "every duration",
			change: func(c *config.Config) {
				for _, d := range []*config.Duration{
					&c.Directory.PollInterval, &c.Directory.Timeout,
					&c.Placement.MoveInterval, &c.Placement.ClaimStagger, &c.Placement.ReconcileInterval,
					&c.Cache.RefreshInterval,
					&c.HTTP.ReadTimeout, &c.HTTP.WriteTimeout, &c.HTTP.IdleTimeout, &c.HTTP.ShutdownTimeout,
				} {
					*d = config.Duration{0}
				}
			},
			want: []string{
				"[directory] poll_interval: must be > 0, not 0s",
				"[directory] timeout: must be > 0, not 0s",
				"[placement] move_interval: must be > 0, not 0s",
				"[placement] claim_stagger: must be > 0, not 0s",
				"[placement] reconcile_interval: must be > 0, not 0s",
				"[cache] refresh_interval: must be > 0, not 0s",
				"[http] read_timeout: must be > 0, not 0s",
				"[http] write_timeout: must be > 0, not 0s",
				"[http] idle_timeout: must be > 0, not 0s",
				"[http] shutdown_timeout: must be > 0, not 0s",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.change(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() error does not contain\n  %s\nerror:\n  %s", w, strings.ReplaceAll(err.Error(), "\n", "\n  "))
				}
			}
			if lines := strings.Count(err.Error(), "\n") + 1; len(tt.want) == 1 && !strings.Contains(tt.want[0], "\n") && lines != 1 {
				t.Errorf("Validate() reported %d problems, want 1:\n%v", lines, err)
			}
		})
	}
}

func TestServiceDN(t *testing.T) {
	c := valid()
	c.Service.Name = "tcs-japan-2"
	c.Directory.BaseDN = "dc=example,dc=org"
	if got, want := c.ServiceDN(), "cn=tcs-japan-2,ou=services,dc=example,dc=org"; got != want {
		t.Errorf("ServiceDN() = %q, want %q", got, want)
	}
}

// TestPasswordNotPrinted checks every way a Config is commonly printed.
func TestPasswordNotPrinted(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "secret.txt", leak+"\n")
	c, err := config.Parse([]byte(designExample), filepath.Join(dir, "tcs.toml"), noEnv)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if c.BindPassword() != leak {
		t.Fatalf("BindPassword() = %q, want the test password", c.BindPassword())
	}
	type holder struct {
		cfg config.Config // unexported: fmt prints its fields without calling String
	}
	type exported struct {
		Cfg *config.Config
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		for name, v := range map[string]any{
			"Config":                   *c,
			"*Config":                  c,
			"unexported Config field":  holder{*c},
			"exported *Config field":   exported{c},
			"pointer to unexported in": &holder{*c},
		} {
			if out := fmt.Sprintf(verb, v); strings.Contains(out, leak) {
				t.Errorf("fmt %s of %s shows the password: %s", verb, name, out)
			}
		}
	}
	// And the printout is useful: it shows the rest.
	if out := fmt.Sprintf("%v", c); !strings.Contains(out, "tcs-texas-1") || !strings.Contains(out, "LeaseTTL:5s") {
		t.Errorf("fmt %%v of *Config = %s, want the name and lease_ttl", out)
	}
}

func TestDurationText(t *testing.T) {
	tests := []struct {
		text    string
		want    time.Duration
		wantErr string
	}{
		{text: "5s", want: 5 * time.Second},
		{text: "1m30s", want: 90 * time.Second},
		{text: "200ms", want: 200 * time.Millisecond},
		{text: "0", want: 0},
		{text: "5x", wantErr: `"5x" is not a duration: time: unknown unit "x" in duration "5x"`},
		{text: "", wantErr: `"" is not a duration: time: invalid duration ""`},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			var d config.Duration
			err := d.UnmarshalText([]byte(tt.text))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("UnmarshalText(%q) = %v, want %q", tt.text, err, tt.wantErr)
				}
				return
			}
			if err != nil || d.Duration != tt.want {
				t.Fatalf("UnmarshalText(%q) = %v, %v; want %v", tt.text, d, err, tt.want)
			}
			text, err := d.MarshalText()
			var back config.Duration
			if err != nil || back.UnmarshalText(text) != nil || back != d {
				t.Errorf("MarshalText round trip of %v: %q, %v -> %v", d, text, err, back)
			}
		})
	}
}
