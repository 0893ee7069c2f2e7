package config_test

import (
	"slices"
	"strings"
	"testing"

	"tcs/config"
)

// [directory] read_urls: an array of directory URLs, each checked and
// named by its position; every problem reported once.
func TestReadURLs(t *testing.T) {
	tests := []struct {
		name string
		edit string
		want []string // "" = valid
		urls []string
	}{
		{name: "none by default", edit: "directory.timeout = \"5s\""},
		{name: "two replicas", edit: `directory.read_urls = ["ldap://replica-1:389", "ldaps://replica-2"]`,
			urls: []string{"ldap://replica-1:389", "ldaps://replica-2"}},
		{name: "not an array", edit: `directory.read_urls = "ldap://replica-1"`,
			want: []string{"[directory] read_urls: must be an array of strings, not the string \"ldap://replica-1\""}},
		{name: "not strings", edit: `directory.read_urls = ["ldap://replica-1", 389]`,
			want: []string{"[directory] read_urls: element 2 must be a string, not the integer 389"}},
		{name: "bad URLs", edit: `directory.read_urls = ["http://replica-1", "ldap://", "ldap://replica-1", "ldap://127.0.0.1:3890", "ldap://REPLICA-1"]`,
			want: []string{
				`[directory] read_urls: element 1: "http://replica-1"`,
				`[directory] read_urls: element 2: "ldap://"`,
				`[directory] read_urls: element 4: "ldap://127.0.0.1:3890" is the url itself`,
				`[directory] read_urls: element 5: "ldap://REPLICA-1" is listed twice`,
			}},
		{name: "StartTLS wants ldap://", edit: `directory.read_urls = ["ldaps://replica-1"]`,
			want: []string{`element 1: "ldaps://replica-1": start_tls = true needs ldap:// read URLs`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			edits := []string{tt.edit}
			if strings.Contains(tt.name, "StartTLS") {
				edits = append(edits, "directory.start_tls = true")
			}
			c, err := config.Parse([]byte(tomlFile(edits...)), "tcs.toml", noEnv)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if !slices.Equal(c.Directory.ReadURLs, tt.urls) {
					t.Fatalf("read_urls = %q, want %q", c.Directory.ReadURLs, tt.urls)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			for _, w := range tt.want {
				if strings.Count(err.Error(), w) != 1 {
					t.Errorf("error does not say %q once:\n%v", w, err)
				}
			}
			if strings.Contains(tt.name, "bad") && strings.Contains(err.Error(), "element 3") {
				t.Errorf("the good element 3 was reported:\n%v", err)
			}
		})
	}
}
