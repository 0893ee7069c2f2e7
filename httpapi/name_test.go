package httpapi

import (
	"net/url"
	"regexp"
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	tests := []struct {
		raw, name, err string // err: a substring of the error, "" when valid
	}{
		{raw: "dallas", name: "dallas"},
		{raw: "a", name: "a"},
		{raw: "0", name: "0"},
		{raw: "Set_1.v2-beta", name: "Set_1.v2-beta"},
		{raw: "a..b", name: "a..b"}, // one segment, not ".."
		{raw: "%64allas", name: "dallas"},
		{raw: strings.Repeat("x", 128), name: strings.Repeat("x", 128)},
		{raw: strings.Repeat("x", 129), err: "name longer than 128 characters"},
		{raw: strings.Repeat("%78", 129), err: "name longer than 128 characters"},
		{raw: "", err: "name is empty"},
		{raw: ".", err: `name is "."`},
		{raw: "..", err: `name is ".."`},
		{raw: "%2e%2e", err: `name is ".."`},
		{raw: "%2E.", err: `name is ".."`},
		{raw: "../etc/passwd", err: `".." path segment`},
		{raw: "%2e%2e/etc/passwd", err: `".." path segment`},
		{raw: "a/../b", err: `".." path segment`},
		{raw: "a/b", err: `name contains "/"`},
		{raw: "a/", err: `name contains "/"`},
		{raw: "a%2Fb", err: `encoded "/"`},
		{raw: "..%2fetc%2fpasswd", err: `encoded "/"`},
		{raw: "%2e%2e%2f", err: `encoded "/"`},
		{raw: "a%zz", err: "malformed percent-escape"},
		{raw: "a%2", err: "malformed percent-escape"},
		{raw: ".x", err: "must start with a letter or a digit, not '.'"},
		{raw: "_x", err: "must start with a letter or a digit"},
		{raw: "-x", err: "must start with a letter or a digit"},
		{raw: "a b", err: `name contains ' '`},
		{raw: "a%00b", err: `name contains '\x00'`},
		{raw: "a\\b", err: `name contains '\\'`},
		{raw: "a:b", err: `name contains ':'`},
		{raw: "a%3Fb", err: `name contains '?'`},
		{raw: "été", err: "must start with a letter or a digit, not 'é'"},
		{raw: "a\xff", err: `name contains '�'`},
	}
	for _, tc := range tests {
		name, err := checkName(tc.raw)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("checkName(%q): %v, want %q", tc.raw, err, tc.name)
		case tc.err == "" && name != tc.name:
			t.Errorf("checkName(%q) = %q, want %q", tc.raw, name, tc.name)
		case tc.err != "" && err == nil:
			t.Errorf("checkName(%q) = %q, want an error with %q", tc.raw, name, tc.err)
		case tc.err != "" && !strings.Contains(err.Error(), tc.err):
			t.Errorf("checkName(%q): %q, want an error with %q", tc.raw, err, tc.err)
		}
	}
}

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// FuzzSetName: checkName never panics, and what it accepts is a name of
// the documented form: one path segment, never "." or "..", no "/" in it,
// and no "/" in the raw input either, plain or encoded.
func FuzzSetName(f *testing.F) {
	for _, s := range []string{"dallas", "..", ".", "%2e%2e", "../etc/passwd", "a%2Fb", "%2e%2e%2f", "a..b", "%64allas",
		strings.Repeat("x", 129), "a%zz", "été", "a\xff", "-x", "a b", "%252e%252e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		name, err := checkName(raw)
		if err != nil {
			if err.Error() == "" {
				t.Errorf("checkName(%q): empty error", raw)
			}
			return
		}
		if !validName.MatchString(name) {
			t.Errorf("checkName(%q) accepted %q, which is not [A-Za-z0-9][A-Za-z0-9._-]{0,127}", raw, name)
		}
		if name == "." || name == ".." || strings.Contains(name, "/") {
			t.Errorf("checkName(%q) accepted %q", raw, name)
		}
		if strings.Contains(raw, "/") || strings.Contains(strings.ToLower(raw), "%2f") {
			t.Errorf("checkName(%q) accepted %q: the raw name has a '/'", raw, name)
		}
		if dec, err := url.PathUnescape(raw); err != nil || dec != name {
			t.Errorf("checkName(%q) accepted %q, but the raw name decodes to %q (%v)", raw, name, dec, err)
		}
	})
}
