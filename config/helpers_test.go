package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// designExample is the configuration of DESIGN.md section 6, verbatim.
const designExample = `[service]
name = "tcs-texas-1"            # cn under ou=services
location = "Texas"              # geoLocation
listen = "127.0.0.1:8082"       # HTTP listen address
advertise = "http://127.0.0.1:8082"   # tcsEndpoint; default derived from listen
capacity = 0                    # 0 = no limit

[directory]
url = "ldap://127.0.0.1:3890"   # ldap://, ldaps://, ldapi://
base_dn = "dc=example,dc=org"
bind_dn = "cn=admin,dc=example,dc=org"
bind_password_file = "secret.txt"   # or env TCS_BIND_PASSWORD; never logged
lease_ttl = "5s"
watch = "syncrepl"              # or "poll"
poll_interval = "2s"
transactions = "auto"           # RFC 5805 batches where offered; "off" = single writes
`

// baseFile is the smallest valid configuration, as tables of key = value in
// file order; tomlFile edits it.
var baseFile = []table{
	{"service", []keyValue{
		{"name", `"tcs-texas-1"`},
		{"location", `"Texas"`},
		{"listen", `"127.0.0.1:8082"`},
	}},
	{"directory", []keyValue{
		{"url", `"ldap://127.0.0.1:3890"`},
		{"base_dn", `"dc=example,dc=org"`},
	}},
}

type table struct {
	name string
	kv   []keyValue
}

type keyValue struct{ key, value string }

// tomlFile returns baseFile with edits applied, in order. An edit
// `table.key = value` sets a key (adding the table if needed); an edit
// `table.key` with no value removes the key.
func tomlFile(edits ...string) string {
	tables := make([]table, len(baseFile))
	for i, t := range baseFile {
		tables[i] = table{t.name, append([]keyValue(nil), t.kv...)}
	}
	for _, e := range edits {
		lhs, value, set := strings.Cut(e, " = ")
		name, key, _ := strings.Cut(lhs, ".")
		ti := -1
		for i := range tables {
			if tables[i].name == name {
				ti = i
			}
		}
		if ti < 0 {
			tables = append(tables, table{name: name})
			ti = len(tables) - 1
		}
		t := &tables[ti]
		ki := -1
		for i := range t.kv {
			if t.kv[i].key == key {
				ki = i
			}
		}
		switch {
		case !set && ki >= 0:
			t.kv = append(t.kv[:ki], t.kv[ki+1:]...)
		case set && ki >= 0:
			t.kv[ki].value = value
		case set:
			t.kv = append(t.kv, keyValue{key, value})
		}
	}
	var b strings.Builder
	for _, t := range tables {
		b.WriteString("[" + t.name + "]\n")
		for _, kv := range t.kv {
			b.WriteString(kv.key + " = " + kv.value + "\n")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// noEnv is an empty environment.
func noEnv(string) string { return "" }

// envOf returns an environment holding only the given variables.
func envOf(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// writeFile writes content to dir/name and returns the file's path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
