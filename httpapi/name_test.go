package httpapi

import (
	"net/url"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestCheckName(t *testing.T) {
	tests := []struct {
		raw, name, err string // err: a substring of the error, "" when valid
	}{
		{raw: "dallas", name: "dallas"},
		{raw: "a", name: "a"},
		{raw: "Set_1.v2-beta", name: "Set_1.v2-beta"},
		{raw: "%64allas", name: "dallas"},
		// The names of issue 12: whatever cn the directory holds.
		{raw: "sp%20ace", name: "sp ace"},
		{raw: "%C3%BCn%C3%AFcode", name: "ünïcode"},
		{raw: "ünïcode", name: "ünïcode"}, // sent unencoded by a lax client
		{raw: "paren(thesis)", name: "paren(thesis)"},
		{raw: "paren%28thesis%29", name: "paren(thesis)"},
		{raw: "plus+sign", name: "plus+sign"}, // "+" is a plus in a path, never a space
		{raw: "plus%2Bsign", name: "plus+sign"},
		{raw: "star*", name: "star*"},
		{raw: "semi;colon", name: "semi;colon"},
		{raw: "semi%3Bcolon", name: "semi;colon"},
		// Path-like names are names: looked up, never used as paths.
		{raw: "..", name: ".."},
		{raw: ".", name: "."},
		{raw: "%2e%2e", name: ".."},
		{raw: "a%2Fb", name: "a/b"},
		{raw: "..%2fetc%2fpasswd", name: "../etc/passwd"},
		{raw: ".hidden", name: ".hidden"},
		{raw: strings.Repeat("x", 128), name: strings.Repeat("x", 128)},
		{raw: strings.Repeat("é", 128), name: strings.Repeat("é", 128)}, // 128 characters, 256 bytes
		{raw: strings.Repeat("x", 129), err: "name longer than 128 characters"},
		{raw: strings.Repeat("%78", 129), err: "name longer than 128 characters"},
		{raw: "", err: "name is empty"},
		{raw: "../etc/passwd", err: "more than one segment"},
		{raw: "a/b", err: "more than one segment"},
		{raw: "a/", err: "more than one segment"},
		{raw: "a%zz", err: "malformed percent-escape"},
		{raw: "a%2", err: "malformed percent-escape"},
		{raw: "a%00b", err: "control character U+0000 at byte 1"},
		{raw: "a%0Ab", err: "control character U+000A"},
		{raw: "a%7F", err: "control character U+007F"},
		{raw: "a%C2%85", err: "control character U+0085"},
		{raw: "a%FF", err: "not valid UTF-8"},
		{raw: "a\xff", err: "not valid UTF-8"},
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

// FuzzSetName: checkName never panics, and what it accepts is the
// percent-decoding of one path segment, valid UTF-8 without control
// characters, at most MaxNameLen characters; and every such name, escaped
// as redirects escape it, comes back unchanged.
func FuzzSetName(f *testing.F) {
	for _, s := range []string{"dallas", "..", ".", "%2e%2e", "../etc/passwd", "a%2Fb", "%2e%2e%2f", "a..b", "%64allas",
		strings.Repeat("x", 129), "a%zz", "été", "a\xff", "-x", "a b", "%252e%252e", "sp%20ace", "semi;colon"} {
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
		if strings.Contains(raw, "/") {
			t.Errorf("checkName(%q) accepted %q: the raw path has two segments", raw, name)
		}
		if name == "" || !utf8.ValidString(name) || utf8.RuneCountInString(name) > MaxNameLen || strings.ContainsFunc(name, unicode.IsControl) {
			t.Errorf("checkName(%q) accepted %q", raw, name)
		}
		if dec, err := url.PathUnescape(raw); err != nil || dec != name {
			t.Errorf("checkName(%q) accepted %q, but the raw name decodes to %q (%v)", raw, name, dec, err)
		}
		if back, err := checkName(url.PathEscape(name)); err != nil || back != name {
			t.Errorf("checkName(PathEscape(%q)) = %q, %v", name, back, err)
		}
	})
}

// A redirect's Location names the set in one segment that no client
// resolves away: dots of "." and ".." are encoded too.
func TestRedirectURLEscapesName(t *testing.T) {
	for name, want := range map[string]string{
		"..":         "http://h:1/p/v1/smartsets/%2E%2E?index=3",
		".":          "http://h:1/p/v1/smartsets/%2E?index=3",
		"a/b":        "http://h:1/p/v1/smartsets/a%2Fb?index=3",
		"sp ace":     "http://h:1/p/v1/smartsets/sp%20ace?index=3",
		"semi;colon": "http://h:1/p/v1/smartsets/semi%3Bcolon?index=3",
		"100%":       "http://h:1/p/v1/smartsets/100%25?index=3",
		"ünïcode":    "http://h:1/p/v1/smartsets/%C3%BCn%C3%AFcode?index=3",
	} {
		got, err := redirectURL("http://h:1/p/", name, "index=3")
		if err != nil || got != want {
			t.Errorf("redirectURL(%q) = %q, %v; want %q", name, got, err, want)
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Fatal(err)
		}
		rest, _ := strings.CutPrefix(u.EscapedPath(), "/p/v1/smartsets/")
		if back, err := checkName(rest); err != nil || back != name {
			t.Errorf("%q: the Location's segment %q reads back as %q, %v", name, rest, back, err)
		}
	}
}
