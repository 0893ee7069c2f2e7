package config_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"tcs/config"
)

func TestParseDesignExample(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "secret.txt", "secret\n")
	path := filepath.Join(dir, "tcs.toml")

	c, err := config.Parse([]byte(designExample), path, noEnv)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}

	want := config.Default()
	want.Service = config.Service{
		Name:      "tcs-texas-1",
		Location:  "Texas",
		Listen:    "127.0.0.1:8082",
		Advertise: "http://127.0.0.1:8082",
		Capacity:  0,
	}
	want.Directory.URL = "ldap://127.0.0.1:3890"
	want.Directory.BaseDN = "dc=example,dc=org"
	want.Directory.BindDN = "cn=admin,dc=example,dc=org"
	want.Directory.BindPasswordFile = filepath.Join(dir, "secret.txt")
	want.Directory.LeaseTTL = config.Duration{5 * time.Second}
	want.Directory.RenewDeadline = config.Duration{3333 * time.Millisecond}
	want.Directory.Watch = config.WatchSyncrepl
	want.Directory.PollInterval = config.Duration{2 * time.Second}
	want.Directory.Transactions = config.TxnAuto // the example sets it
	checkSections(t, c, &want)

	if got := c.BindPassword(); got != "secret" {
		t.Errorf("BindPassword() = %q, want %q", got, "secret")
	}
	if got, want := c.ServiceDN(), "cn=tcs-texas-1,ou=services,dc=example,dc=org"; got != want {
		t.Errorf("ServiceDN() = %q, want %q", got, want)
	}
}

// checkSections compares every table of got and want.
func checkSections(t *testing.T, got, want *config.Config) {
	t.Helper()
	if got.Service != want.Service {
		t.Errorf("Service =\n %+v\nwant\n %+v", got.Service, want.Service)
	}
	if !reflect.DeepEqual(got.Directory, want.Directory) {
		t.Errorf("Directory =\n %+v\nwant\n %+v", got.Directory, want.Directory)
	}
	if got.Placement != want.Placement {
		t.Errorf("Placement =\n %+v\nwant\n %+v", got.Placement, want.Placement)
	}
	if got.Cache != want.Cache {
		t.Errorf("Cache =\n %+v\nwant\n %+v", got.Cache, want.Cache)
	}
	if got.HTTP != want.HTTP {
		t.Errorf("HTTP =\n %+v\nwant\n %+v", got.HTTP, want.HTTP)
	}
	if got.Log != want.Log {
		t.Errorf("Log =\n %+v\nwant\n %+v", got.Log, want.Log)
	}
}

func TestDefault(t *testing.T) {
	d := config.Default()
	sec := time.Second
	tests := []struct {
		key       string
		got, want any
	}{
		{"[service] name", d.Service.Name, ""},
		{"[service] location", d.Service.Location, ""},
		{"[service] listen", d.Service.Listen, "127.0.0.1:8080"},
		{"[service] advertise", d.Service.Advertise, "http://127.0.0.1:8080"},
		{"[service] capacity", d.Service.Capacity, 0},
		{"[directory] url", d.Directory.URL, ""},
		{"[directory] base_dn", d.Directory.BaseDN, ""},
		{"[directory] bind_dn", d.Directory.BindDN, ""},
		{"[directory] bind_password_file", d.Directory.BindPasswordFile, ""},
		{"[directory] lease_ttl", d.Directory.LeaseTTL.Duration, 5 * sec},
		{"[directory] renew_deadline", d.Directory.RenewDeadline.Duration, 3333 * time.Millisecond},
		{"[directory] watch", d.Directory.Watch, "syncrepl"},
		{"[directory] poll_interval", d.Directory.PollInterval.Duration, 2 * sec},
		{"[directory] transactions", d.Directory.Transactions, "off"},
		{"[directory] batch_size", d.Directory.BatchSize, 500},
		{"[directory] start_tls", d.Directory.StartTLS, false},
		{"[directory] ca_file", d.Directory.CAFile, ""},
		{"[directory] insecure_skip_verify", d.Directory.InsecureSkipVerify, false},
		{"[directory] timeout", d.Directory.Timeout.Duration, 5 * sec},
		{"[placement] hysteresis_km", d.Placement.HysteresisKm, 50.0},
		{"[placement] move_budget", d.Placement.MoveBudget, 64},
		{"[placement] move_interval", d.Placement.MoveInterval.Duration, sec},
		{"[placement] claim_stagger", d.Placement.ClaimStagger.Duration, 200 * time.Millisecond},
		{"[placement] reconcile_interval", d.Placement.ReconcileInterval.Duration, 2 * sec},
		{"[placement] sweep_interval", d.Placement.SweepInterval.Duration, time.Duration(0)},
		{"[cache] refresh_interval", d.Cache.RefreshInterval.Duration, 30 * sec},
		{"[cache] row_limit", d.Cache.RowLimit, 10000},
		{"[http] read_timeout", d.HTTP.ReadTimeout.Duration, 10 * sec},
		{"[http] write_timeout", d.HTTP.WriteTimeout.Duration, 30 * sec},
		{"[http] idle_timeout", d.HTTP.IdleTimeout.Duration, 60 * sec},
		{"[http] max_header_bytes", d.HTTP.MaxHeaderBytes, 65536},
		{"[http] shutdown_timeout", d.HTTP.ShutdownTimeout.Duration, 10 * sec},
		{"[log] level", d.Log.Level, "info"},
		{"[log] format", d.Log.Format, "text"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("Default() %s = %v, want %v", tt.key, tt.got, tt.want)
		}
	}
}

// TestParseAppliesDefaults checks that a file with only the required keys
// gets every other value from Default.
func TestParseAppliesDefaults(t *testing.T) {
	file := `
[service]
name = "tcs-texas-1"
location = "Texas"
[directory]
url = "ldap://127.0.0.1:3890"
base_dn = "dc=example,dc=org"
`
	c, err := config.Parse([]byte(file), "tcs.toml", noEnv)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := config.Default()
	want.Service.Name = "tcs-texas-1"
	want.Service.Location = "Texas"
	want.Directory.URL = "ldap://127.0.0.1:3890"
	want.Directory.BaseDN = "dc=example,dc=org"
	checkSections(t, c, &want)
	if c.BindPassword() != "" {
		t.Errorf("BindPassword() = %q without bind_dn, want empty", c.BindPassword())
	}
}

func TestParseDerivedDefaults(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name          string
		edits         []string
		wantAdvertise string
		wantRenew     time.Duration
	}{
		{
			name:          "advertise from listen",
			edits:         []string{`service.listen = "127.0.0.1:8082"`},
			wantAdvertise: "http://127.0.0.1:8082",
			wantRenew:     3333 * time.Millisecond,
		},
		{
			name:          "advertise from the default listen",
			edits:         []string{`service.listen`},
			wantAdvertise: "http://127.0.0.1:8080",
			wantRenew:     3333 * time.Millisecond,
		},
		{
			name:          "advertise from an IPv6 listen",
			edits:         []string{`service.listen = "[::1]:8082"`},
			wantAdvertise: "http://[::1]:8082",
			wantRenew:     3333 * time.Millisecond,
		},
		{
			name:          "advertise uses the host name for 0.0.0.0",
			edits:         []string{`service.listen = "0.0.0.0:9000"`},
			wantAdvertise: "http://" + host + ":9000",
			wantRenew:     3333 * time.Millisecond,
		},
		{
			name:          "advertise uses the host name for an empty host",
			edits:         []string{`service.listen = ":9000"`},
			wantAdvertise: "http://" + host + ":9000",
			wantRenew:     3333 * time.Millisecond,
		},
		{
			name:          "advertise uses the host name for ::",
			edits:         []string{`service.listen = "[::]:9000"`},
			wantAdvertise: "http://" + host + ":9000",
			wantRenew:     3333 * time.Millisecond,
		},
		{
			name:          "explicit advertise is kept",
			edits:         []string{`service.listen = "0.0.0.0:9000"`, `service.advertise = "https://tcs.example.org/texas"`},
			wantAdvertise: "https://tcs.example.org/texas",
			wantRenew:     3333 * time.Millisecond,
		},
		{
			name:          "renew_deadline from lease_ttl",
			edits:         []string{`directory.lease_ttl = "6s"`},
			wantAdvertise: "http://127.0.0.1:8082",
			wantRenew:     4 * time.Second,
		},
		{
			name:          "renew_deadline from a long lease_ttl",
			edits:         []string{`directory.lease_ttl = "1m"`},
			wantAdvertise: "http://127.0.0.1:8082",
			wantRenew:     40 * time.Second,
		},
		{
			name:          "explicit renew_deadline is kept",
			edits:         []string{`directory.lease_ttl = "30s"`, `directory.renew_deadline = "25s"`},
			wantAdvertise: "http://127.0.0.1:8082",
			wantRenew:     25 * time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Parse([]byte(tomlFile(tt.edits...)), "tcs.toml", noEnv)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if c.Service.Advertise != tt.wantAdvertise {
				t.Errorf("[service] advertise = %q, want %q", c.Service.Advertise, tt.wantAdvertise)
			}
			if c.Directory.RenewDeadline.Duration != tt.wantRenew {
				t.Errorf("[directory] renew_deadline = %v, want %v", c.Directory.RenewDeadline, tt.wantRenew)
			}
		})
	}
}

// TestParseErrors checks that each kind of mistake is reported with the
// file, the key and the problem. In want, {dir} stands for the directory of
// the configuration file.
func TestParseErrors(t *testing.T) {
	const bindDN = `directory.bind_dn = "cn=admin,dc=example,dc=org"`
	tests := []struct {
		name string
		file string
		env  map[string]string
		want []string // each must appear in the error
	}{
		// The file's keys and types.
		{
			name: "unknown key",
			file: tomlFile(`service.nmae = "tcs-texas-2"`),
			want: []string{"tcs.toml: unknown key [service] nmae (did you mean name?)"},
		},
		{
			name: "key in the wrong case",
			file: tomlFile(`service.Location = "Ohio"`),
			want: []string{"tcs.toml: unknown key [service] Location (did you mean location?)"},
		},
		{
			name: "key in the wrong table",
			file: tomlFile(`service.lease_ttl = "5s"`),
			want: []string{"tcs.toml: unknown key [service] lease_ttl (lease_ttl belongs in [directory])"},
		},
		{
			name: "unknown key of an extension table",
			file: tomlFile(`http.read_timout = "5s"`),
			want: []string{"tcs.toml: unknown key [http] read_timout (did you mean read_timeout?)"},
		},
		{
			name: "unknown table",
			file: tomlFile(`servce.name = "x"`),
			want: []string{"tcs.toml: unknown table [servce] (did you mean [service]?)"},
		},
		{
			name: "subtable of a table",
			file: tomlFile() + "[service.tags]\nteam = \"ops\"\n",
			want: []string{"tcs.toml: unknown key [service] tags"},
		},
		{
			name: "key outside any table",
			file: "location = \"Texas\"\n" + tomlFile(),
			want: []string{"tcs.toml: unknown key location (did you mean [service] location? keys go under a table)"},
		},
		{
			name: "password written into the file",
			file: tomlFile(bindDN, `directory.bind_password = "hunter2"`),
			want: []string{"tcs.toml: unknown key [directory] bind_password (the password goes in the file named by bind_password_file, or in env TCS_BIND_PASSWORD)"},
		},
		{
			name: "bad duration",
			file: tomlFile(`directory.lease_ttl = "5x"`),
			want: []string{`tcs.toml: [directory] lease_ttl: "5x" is not a duration: time: unknown unit "x" in duration "5x"`},
		},
		{
			name: "duration without unit",
			file: tomlFile(`placement.claim_stagger = "200"`),
			want: []string{`tcs.toml: [placement] claim_stagger: "200" is not a duration: time: missing unit in duration "200"`},
		},
		{
			name: "duration as a number",
			file: tomlFile(`directory.lease_ttl = 5`),
			want: []string{`tcs.toml: [directory] lease_ttl: must be a duration string such as "5s", not the integer 5`},
		},
		{
			name: "string for an integer",
			file: tomlFile(`service.capacity = "10"`),
			want: []string{`tcs.toml: [service] capacity: must be an integer, not the string "10"`},
		},
		{
			name: "float for an integer",
			file: tomlFile(`cache.row_limit = 1.5`),
			want: []string{`tcs.toml: [cache] row_limit: must be an integer, not the float 1.5`},
		},
		{
			name: "string for a boolean",
			file: tomlFile(`directory.start_tls = "yes"`),
			want: []string{`tcs.toml: [directory] start_tls: must be true or false, not the string "yes"`},
		},
		{
			name: "number for a string",
			file: tomlFile(`service.name = 7`),
			want: []string{`tcs.toml: [service] name: must be a string, not the integer 7`},
		},
		{
			name: "array for a string",
			file: tomlFile(`service.location = ["Texas"]`),
			want: []string{`tcs.toml: [service] location: must be a string, not an array`},
		},
		{
			name: "table is a value",
			file: "service = \"tcs-texas-1\"\n",
			want: []string{`tcs.toml: [service] must be a table, not the string "tcs-texas-1"`},
		},
		{
			name: "array of tables",
			file: "[[service]]\nname = \"a\"\n[[service]]\nname = \"b\"\n",
			want: []string{`tcs.toml: [service] must be a table, not an array of tables ([[service]])`},
		},
		{
			name: "every key problem, in file order",
			file: tomlFile(`service.nmae = "x"`, `service.capacity = "ten"`, `directory.lease_ttl = "5x"`),
			want: []string{
				"tcs.toml: unknown key [service] nmae (did you mean name?)\n" +
					`tcs.toml: [service] capacity: must be an integer, not the string "ten"` + "\n" +
					`tcs.toml: [directory] lease_ttl: "5x" is not a duration`,
			},
		},

		// TOML syntax.
		{
			name: "syntax error reports the line",
			file: "[service]\nname = \"tcs-texas-1\"\nlocation =\n",
			want: []string{"tcs.toml line 3: expected value but found '\\n' instead"},
		},
		{
			name: "unterminated string",
			file: "\n\n[service]\nname = \"tcs-texas-1\n",
			want: []string{"tcs.toml line 4: strings cannot contain newlines"},
		},
		{
			name: "syntax error message with a raw newline stays on one line",
			file: "[service]\nname = \"tcs\\\n",
			want: []string{"tcs.toml line ", "invalid escape in string"},
		},
		{
			name: "duplicate key",
			file: "[service]\nname = \"a\"\nname = \"b\"\n",
			want: []string{"tcs.toml line 3: Key 'service.name' has already been defined."},
		},

		// Required keys.
		{
			name: "missing name",
			file: tomlFile(`service.name`),
			want: []string{"tcs.toml: [service] name is required"},
		},
		{
			name: "missing location",
			file: tomlFile(`service.location`),
			want: []string{"tcs.toml: [service] location is required"},
		},
		{
			name: "missing url",
			file: tomlFile(`directory.url`),
			want: []string{"tcs.toml: [directory] url is required"},
		},
		{
			name: "missing base_dn",
			file: tomlFile(`directory.base_dn`),
			want: []string{"tcs.toml: [directory] base_dn is required"},
		},
		{
			name: "empty file",
			file: "",
			want: []string{
				"tcs.toml: [service] name is required",
				"tcs.toml: [service] location is required",
				"tcs.toml: [directory] url is required",
				"tcs.toml: [directory] base_dn is required",
			},
		},

		// [service] values.
		{
			name: "name with a space",
			file: tomlFile(`service.name = "tcs texas"`),
			want: []string{`tcs.toml: [service] name: "tcs texas" is not a safe RDN value: use 1-64 letters, digits, '.', '_' or '-'`},
		},
		{
			name: "name with a comma",
			file: tomlFile(`service.name = "a,ou=evil"`),
			want: []string{`tcs.toml: [service] name: "a,ou=evil" is not a safe RDN value`},
		},
		{
			name: "name too long",
			file: tomlFile(`service.name = "` + strings.Repeat("a", 65) + `"`),
			want: []string{`tcs.toml: [service] name: "aaaa`, `is not a safe RDN value`},
		},
		{
			name: "location with a control character",
			file: tomlFile(`service.location = "Tex\tas"`),
			want: []string{`tcs.toml: [service] location: "Tex\tas" contains a control character`},
		},
		{
			name: "listen without port",
			file: tomlFile(`service.listen = "127.0.0.1"`),
			want: []string{`tcs.toml: [service] listen: "127.0.0.1" is not host:port: address 127.0.0.1: missing port in address`},
		},
		{
			name: "listen with a named port",
			file: tomlFile(`service.listen = "127.0.0.1:http"`),
			want: []string{`tcs.toml: [service] listen: "127.0.0.1:http": port "http" is not a number from 0 to 65535`},
		},
		{
			name: "listen port out of range",
			file: tomlFile(`service.listen = ":65536"`),
			want: []string{`tcs.toml: [service] listen: ":65536": port "65536" is not a number from 0 to 65535`},
		},
		{
			name: "advertise without scheme",
			file: tomlFile(`service.advertise = "127.0.0.1:8082"`),
			want: []string{`tcs.toml: [service] advertise: "127.0.0.1:8082" must be an absolute http:// or https:// URL`},
		},
		{
			name: "advertise with another scheme",
			file: tomlFile(`service.advertise = "ftp://tcs.example.org"`),
			want: []string{`tcs.toml: [service] advertise: "ftp://tcs.example.org" must be an absolute http:// or https:// URL`},
		},
		{
			name: "advertise with a query",
			file: tomlFile(`service.advertise = "http://tcs.example.org/?x=1"`),
			want: []string{`tcs.toml: [service] advertise: "http://tcs.example.org/?x=1" must be a base URL, without query or fragment`},
		},
		{
			name: "empty advertise",
			file: tomlFile(`service.advertise = ""`),
			want: []string{"tcs.toml: [service] advertise is required"},
		},
		{
			name: "negative capacity",
			file: tomlFile(`service.capacity = -1`),
			want: []string{"tcs.toml: [service] capacity: must be >= 0 (0 means no limit), not -1"},
		},

		// [directory] values.
		{
			name: "url with http scheme",
			file: tomlFile(`directory.url = "http://127.0.0.1:3890"`),
			want: []string{`tcs.toml: [directory] url: "http://127.0.0.1:3890" has scheme "http": use ldap://, ldaps:// or ldapi://`},
		},
		{
			name: "url without scheme",
			file: tomlFile(`directory.url = "127.0.0.1:3890"`),
			want: []string{`tcs.toml: [directory] url: "127.0.0.1:3890" has no scheme: use ldap://, ldaps:// or ldapi://`},
		},
		{
			name: "url without host",
			file: tomlFile(`directory.url = "ldap://"`),
			want: []string{`tcs.toml: [directory] url: "ldap://" has no host`},
		},
		{
			name: "url with a DN path",
			file: tomlFile(`directory.url = "ldap://127.0.0.1:3890/dc=example,dc=org"`),
			want: []string{`tcs.toml: [directory] url: "ldap://127.0.0.1:3890/dc=example,dc=org" must not have a path: the base DN goes in base_dn`},
		},
		{
			name: "url with a bad port",
			file: tomlFile(`directory.url = "ldap://127.0.0.1:99999"`),
			want: []string{`tcs.toml: [directory] url: "ldap://127.0.0.1:99999" has port "99999", not a number from 0 to 65535`},
		},
		{
			name: "ldapi socket path not absolute",
			file: tomlFile(`directory.url = "ldapi://slapd.sock"`),
			want: []string{`tcs.toml: [directory] url: "ldapi://slapd.sock" has socket path "slapd.sock", which is not absolute`},
		},
		{
			name: "base_dn not a DN",
			file: tomlFile(`directory.base_dn = "example.org"`),
			want: []string{`tcs.toml: [directory] base_dn: "example.org" is not a DN: "example.org" is not attribute=value`},
		},
		{
			name: "base_dn with an empty RDN",
			file: tomlFile(`directory.base_dn = "dc=example,,dc=org"`),
			want: []string{`tcs.toml: [directory] base_dn: "dc=example,,dc=org" is not a DN: RDN 2 is empty`},
		},
		{
			name: "bind_dn not a DN",
			file: tomlFile(`directory.bind_dn = "admin"`),
			env:  map[string]string{"TCS_BIND_PASSWORD": "pw"},
			want: []string{`tcs.toml: [directory] bind_dn: "admin" is not a DN`},
		},
		{
			name: "bind_dn without a password",
			file: tomlFile(bindDN),
			want: []string{"tcs.toml: [directory] bind_dn is set but there is no password: set [directory] bind_password_file or the environment variable TCS_BIND_PASSWORD"},
		},
		{
			name: "missing password file",
			file: tomlFile(bindDN, `directory.bind_password_file = "nope.txt"`),
			want: []string{"tcs.toml: [directory] bind_password_file: stat {dir}/nope.txt: no such file or directory"},
		},
		{
			name: "empty password file",
			file: tomlFile(bindDN, `directory.bind_password_file = "empty.txt"`),
			want: []string{"tcs.toml: [directory] bind_password_file: {dir}/empty.txt is empty"},
		},
		{
			name: "password file is a directory",
			file: tomlFile(bindDN, `directory.bind_password_file = "."`),
			want: []string{"tcs.toml: [directory] bind_password_file: {dir} is not a regular file"},
		},
		{
			name: "password file without bind_dn",
			file: tomlFile(`directory.bind_password_file = "secret.txt"`),
			want: []string{"tcs.toml: [directory] bind_password_file: has no use without [directory] bind_dn"},
		},
		{
			name: "lease_ttl fractional",
			file: tomlFile(`directory.lease_ttl = "2500ms"`),
			want: []string{"tcs.toml: [directory] lease_ttl: 2.5s is not a whole number of seconds (the directory counts TTLs in seconds)"},
		},
		{
			name: "lease_ttl too short",
			file: tomlFile(`directory.lease_ttl = "1s"`),
			want: []string{"tcs.toml: [directory] lease_ttl: must be at least 2s, not 1s"},
		},
		{
			name: "renew_deadline equal to lease_ttl",
			file: tomlFile(`directory.lease_ttl = "5s"`, `directory.renew_deadline = "5s"`),
			want: []string{"tcs.toml: [directory] renew_deadline: must be at most [directory] lease_ttl less 1.1s (3.9s), not 5s"},
		},
		{
			name: "renew_deadline above lease_ttl",
			file: tomlFile(`directory.renew_deadline = "10s"`),
			want: []string{"tcs.toml: [directory] renew_deadline: must be at most [directory] lease_ttl less 1.1s (3.9s), not 10s"},
		},
		{
			name: "renew_deadline within one refresh period",
			file: tomlFile(`directory.lease_ttl = "6s"`, `directory.renew_deadline = "2s"`),
			want: []string{"tcs.toml: [directory] renew_deadline: must be more than [directory] lease_ttl/3 (2s), the lease refresh period, not 2s"},
		},
		{
			name: "renew_deadline zero",
			file: tomlFile(`directory.renew_deadline = "0s"`),
			want: []string{"tcs.toml: [directory] renew_deadline: must be > 0, not 0s"},
		},
		{
			name: "watch unknown",
			file: tomlFile(`directory.watch = "persist"`),
			want: []string{`tcs.toml: [directory] watch: "persist" is neither "syncrepl" nor "poll"`},
		},
		{
			name: "transactions unknown",
			file: tomlFile(`directory.transactions = "on"`),
			want: []string{`tcs.toml: [directory] transactions: "on" is neither "auto" nor "off"`},
		},
		{
			name: "batch_size zero",
			file: tomlFile(`directory.batch_size = 0`),
			want: []string{"tcs.toml: [directory] batch_size: must be between 1 and 10000, not 0"},
		},
		{
			name: "poll_interval zero",
			file: tomlFile(`directory.poll_interval = "0s"`),
			want: []string{"tcs.toml: [directory] poll_interval: must be > 0, not 0s"},
		},
		{
			name: "start_tls with ldaps",
			file: tomlFile(`directory.url = "ldaps://ldap.example.org"`, `directory.start_tls = true`),
			want: []string{"tcs.toml: [directory] start_tls: true is not allowed with an ldaps:// url"},
		},
		{
			name: "start_tls with ldapi",
			file: tomlFile(`directory.url = "ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi"`, `directory.start_tls = true`),
			want: []string{"tcs.toml: [directory] start_tls: true is not allowed with an ldapi:// url"},
		},
		{
			name: "ca_file without TLS",
			file: tomlFile(`directory.ca_file = "ca.pem"`),
			want: []string{"tcs.toml: [directory] ca_file: has no use without TLS: use an ldaps:// url or start_tls = true"},
		},
		{
			name: "insecure_skip_verify without TLS",
			file: tomlFile(`directory.insecure_skip_verify = true`),
			want: []string{"tcs.toml: [directory] insecure_skip_verify: has no use without TLS"},
		},
		{
			name: "ca_file missing",
			file: tomlFile(`directory.url = "ldaps://ldap.example.org"`, `directory.ca_file = "ca.pem"`),
			want: []string{"tcs.toml: [directory] ca_file: stat {dir}/ca.pem: no such file or directory"},
		},
		{
			name: "ca_file not PEM",
			file: tomlFile(`directory.url = "ldap://ldap.example.org"`, `directory.start_tls = true`, `directory.ca_file = "secret.txt"`),
			want: []string{"tcs.toml: [directory] ca_file: {dir}/secret.txt holds no PEM certificate"},
		},
		{
			name: "timeout negative",
			file: tomlFile(`directory.timeout = "-5s"`),
			want: []string{"tcs.toml: [directory] timeout: must be > 0, not -5s"},
		},

		// The extension tables.
		{
			name: "hysteresis_km negative",
			file: tomlFile(`placement.hysteresis_km = -1`),
			want: []string{"tcs.toml: [placement] hysteresis_km: must be a finite number >= 0, not -1"},
		},
		{
			name: "hysteresis_km not a number",
			file: tomlFile(`placement.hysteresis_km = nan`),
			want: []string{"tcs.toml: [placement] hysteresis_km: must be a finite number >= 0, not NaN"},
		},
		{
			name: "move_budget zero",
			file: tomlFile(`placement.move_budget = 0`),
			want: []string{"tcs.toml: [placement] move_budget: must be >= 1, not 0"},
		},
		{
			name: "move_interval zero",
			file: tomlFile(`placement.move_interval = "0s"`),
			want: []string{"tcs.toml: [placement] move_interval: must be > 0, not 0s"},
		},
		{
			name: "claim_stagger not below lease_ttl",
			file: tomlFile(`placement.claim_stagger = "5s"`),
			want: []string{"tcs.toml: [placement] claim_stagger: must be less than [directory] lease_ttl (5s), not 5s"},
		},
		{
			name: "sweep_interval negative",
			file: tomlFile(`placement.sweep_interval = "-1m"`),
			want: []string{"tcs.toml: [placement] sweep_interval: must be >= 0 (0 = off), not -1m0s"},
		},
		{
			name: "row_limit zero",
			file: tomlFile(`cache.row_limit = 0`),
			want: []string{"tcs.toml: [cache] row_limit: must be >= 1, not 0"},
		},
		{
			name: "refresh_interval zero",
			file: tomlFile(`cache.refresh_interval = "0s"`),
			want: []string{"tcs.toml: [cache] refresh_interval: must be > 0, not 0s"},
		},
		{
			name: "max_header_bytes zero",
			file: tomlFile(`http.max_header_bytes = 0`),
			want: []string{"tcs.toml: [http] max_header_bytes: must be >= 1, not 0"},
		},
		{
			name: "write_timeout zero",
			file: tomlFile(`http.write_timeout = "0s"`),
			want: []string{"tcs.toml: [http] write_timeout: must be > 0, not 0s"},
		},
		{
			name: "log level unknown",
			file: tomlFile(`log.level = "verbose"`),
			want: []string{`tcs.toml: [log] level: "verbose" is not a level: use panic, fatal, error, warn, info, debug or trace`},
		},
		{
			name: "log format unknown",
			file: tomlFile(`log.format = "logfmt"`),
			want: []string{`tcs.toml: [log] format: "logfmt" is neither "text" nor "json"`},
		},
		{
			name: "every value problem at once",
			file: tomlFile(`service.name`, `directory.url = "http://x"`, `directory.lease_ttl = "2500ms"`, `log.format = "xml"`),
			want: []string{
				"tcs.toml: [service] name is required\n" +
					`tcs.toml: [directory] url: "http://x" has scheme "http"`,
				"\ntcs.toml: [directory] lease_ttl: 2.5s is not a whole number of seconds",
				"\ntcs.toml: [log] format:",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "empty.txt", "\n")
			writeFile(t, dir, "secret.txt", leak+"\n")
			env := tt.env
			if env == nil {
				env = map[string]string{}
			}

			c, err := config.Parse([]byte(tt.file), filepath.Join(dir, "tcs.toml"), envOf(env))
			if err == nil {
				t.Fatalf("Parse succeeded, want an error containing %q", tt.want)
			}
			if c != nil {
				t.Errorf("Parse returned a Config along with the error")
			}
			// Messages name the file as it was given; here that is
			// {dir}/tcs.toml, which the cases write as tcs.toml.
			msg := strings.ReplaceAll(err.Error(), filepath.Join(dir, "tcs.toml"), "tcs.toml")
			for _, w := range tt.want {
				w = strings.ReplaceAll(w, "{dir}", dir)
				if !strings.Contains(msg, w) {
					t.Errorf("error does not contain\n  %s\nerror:\n  %s", w, strings.ReplaceAll(msg, "\n", "\n  "))
				}
			}
			for line := range strings.Lines(msg) {
				if !strings.HasPrefix(line, "tcs.toml") {
					t.Errorf("error line does not name the file: %q", line)
				}
			}
			if strings.Contains(msg, leak) {
				t.Errorf("error shows the password:\n%s", msg)
			}
		})
	}
}

// leak is a password that must never be shown.
const leak = "pw-Never-Shown-7d1f"

func TestParseSyntaxErrorKeepsParseError(t *testing.T) {
	_, err := config.Parse([]byte("[service]\nname = \"x\"\nlocation =\n"), "tcs.toml", noEnv)
	var pe toml.ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("errors.As(%v, *toml.ParseError) = false, want true", err)
	}
	if pe.Position.Line != 3 {
		t.Errorf("ParseError line = %d, want 3", pe.Position.Line)
	}
}

func TestParseMissingPasswordFileIsNotExist(t *testing.T) {
	file := tomlFile(`directory.bind_dn = "cn=admin,dc=example,dc=org"`, `directory.bind_password_file = "nope.txt"`)
	_, err := config.Parse([]byte(file), filepath.Join(t.TempDir(), "tcs.toml"), noEnv)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(%v, fs.ErrNotExist) = false, want true", err)
	}
}

func TestBindPassword(t *testing.T) {
	const bindDN = `directory.bind_dn = "cn=admin,dc=example,dc=org"`
	tests := []struct {
		name  string
		edits []string
		files map[string]string // written in the configuration's directory
		env   map[string]string
		want  string
	}{
		{
			name:  "file relative to the configuration",
			edits: []string{bindDN, `directory.bind_password_file = "secret.txt"`},
			files: map[string]string{"secret.txt": "s3cret\n"},
			want:  "s3cret",
		},
		{
			name:  "file in a subdirectory",
			edits: []string{bindDN, `directory.bind_password_file = "private/secret.txt"`},
			files: map[string]string{"private/secret.txt": "s3cret"},
			want:  "s3cret",
		},
		{
			name:  "file with CRLF and blank lines at the end",
			edits: []string{bindDN, `directory.bind_password_file = "secret.txt"`},
			files: map[string]string{"secret.txt": "s3cret \r\n\n"},
			want:  "s3cret ",
		},
		{
			name:  "environment",
			edits: []string{bindDN},
			env:   map[string]string{"TCS_BIND_PASSWORD": "from-env"},
			want:  "from-env",
		},
		{
			name:  "file wins over the environment",
			edits: []string{bindDN, `directory.bind_password_file = "secret.txt"`},
			files: map[string]string{"secret.txt": "from-file\n"},
			env:   map[string]string{"TCS_BIND_PASSWORD": "from-env"},
			want:  "from-file",
		},
		{
			name: "no bind_dn, no password",
			env:  map[string]string{"TCS_BIND_PASSWORD": "from-env"},
			want: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tt.files {
				if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o700); err != nil {
					t.Fatal(err)
				}
				writeFile(t, dir, name, content)
			}
			c, err := config.Parse([]byte(tomlFile(tt.edits...)), filepath.Join(dir, "tcs.toml"), envOf(tt.env))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := c.BindPassword(); got != tt.want {
				t.Errorf("BindPassword() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "secret.txt", "secret\n")
	path := writeFile(t, dir, "tcs.toml", designExample)

	c, err := config.Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.Service.Name != "tcs-texas-1" || c.BindPassword() != "secret" {
		t.Errorf("Load(%s): name %q, password %q; want tcs-texas-1, secret", path, c.Service.Name, c.BindPassword())
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate after Load: %v", err)
	}
}

func TestLoadErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.toml")
	if _, err := config.Load(missing); err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(%s) = %v, want a not-exist error naming the file", missing, err)
	}

	bad := writeFile(t, dir, "bad.toml", tomlFile(`service.name`))
	want := bad + ": [service] name is required"
	if _, err := config.Load(bad); err == nil || err.Error() != want {
		t.Errorf("Load(%s) = %v, want %q", bad, err, want)
	}
}

func TestParseCAFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "ca.pem", string(selfSignedPEM(t)))
	file := tomlFile(`directory.url = "ldaps://ldap.example.org"`, `directory.ca_file = "ca.pem"`)

	c, err := config.Parse([]byte(file), filepath.Join(dir, "tcs.toml"), noEnv)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if want := filepath.Join(dir, "ca.pem"); c.Directory.CAFile != want {
		t.Errorf("[directory] ca_file = %q, want it resolved to %q", c.Directory.CAFile, want)
	}
}

// selfSignedPEM returns a throwaway CA certificate in PEM.
func selfSignedPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tcs test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
