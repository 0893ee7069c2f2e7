package config_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"tcs/config"
)

// FuzzParse checks that Parse never panics, that every line of an error
// names the file, that the password never shows, and that a configuration
// it accepts survives being written out as TOML and read back.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		designExample,
		tomlFile(),
		tomlFile(`directory.bind_dn = "cn=admin,dc=example,dc=org"`),
		tomlFile(`service.listen = "0.0.0.0:9000"`, `directory.lease_ttl = "7s"`),
		tomlFile(`directory.url = "ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi"`, `placement.hysteresis_km = 12.5`),
		tomlFile(`directory.url = "ldaps://h:636"`, `directory.ca_file = "secret.txt"`, `http.max_header_bytes = 1`),
		tomlFile(`service.nmae = "x"`, `directory.lease_ttl = "5x"`, `log.level = 3`),
		"service = 1\n[[directory]]\n",
		"[service.a.b]\nc = {d = [1, {e = 2}]}\n",
		"[service]\nname = \"x\nlocation = \n",
		"\"\\n\" = 1\n[\"a\\u0000b\"]\n",
	} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secret.txt"), []byte(leak+"\n"), 0o600); err != nil {
		f.Fatal(err)
	}
	path := filepath.Join(dir, "tcs.toml")
	env := envOf(map[string]string{"TCS_BIND_PASSWORD": leak})

	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.Parse(data, path, env)
		if err != nil {
			if c != nil {
				t.Errorf("Parse returned a Config along with %v", err)
			}
			msg := err.Error()
			for line := range strings.Lines(msg) {
				if !strings.HasPrefix(line, path) {
					t.Errorf("error line does not name the file: %q", line)
				}
			}
			if strings.Contains(msg, leak) {
				t.Errorf("error shows the password: %s", msg)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Errorf("Parse accepted what Validate rejects: %v", err)
		}
		for _, verb := range []string{"%v", "%+v", "%#v"} {
			if s := fmt.Sprintf(verb, c); strings.Contains(s, leak) {
				t.Errorf("fmt %s shows the password", verb)
			}
		}

		var buf bytes.Buffer
		if err := toml.NewEncoder(&buf).Encode(c); err != nil {
			t.Fatalf("encoding an accepted Config: %v", err)
		}
		back, err := config.Parse(buf.Bytes(), path, env)
		if err != nil {
			t.Fatalf("reading back an accepted Config: %v\n%s", err, buf.String())
		}
		checkSections(t, back, c)
		if back.BindPassword() != c.BindPassword() {
			t.Errorf("password changed in the round trip")
		}
	})
}
