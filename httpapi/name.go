package httpapi

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// MaxNameLen is the longest SmartSet name the API accepts.
const MaxNameLen = 128

// checkName returns the set name that raw, the rest of the escaped request
// path after "/v1/smartsets/", names, or an error saying what is wrong with
// it. A name is [A-Za-z0-9][A-Za-z0-9._-]{0,127}: one path segment, never
// "." or "..". Percent-escapes are decoded before the name is checked, but
// an escaped "/" is refused like a plain one.
func checkName(raw string) (string, error) {
	if strings.Contains(raw, "/") {
		for seg := range strings.SplitSeq(raw, "/") {
			if s, err := url.PathUnescape(seg); err == nil && (s == "." || s == "..") {
				return "", errors.New(`name contains a "." or ".." path segment`)
			}
		}
		return "", errors.New(`name contains "/"`)
	}
	name := raw
	if strings.Contains(raw, "%") {
		var err error
		if name, err = url.PathUnescape(raw); err != nil {
			return "", errors.New("name has a malformed percent-escape")
		}
		if strings.Contains(name, "/") {
			return "", errors.New(`name contains an encoded "/" (%2F)`)
		}
	}
	switch {
	case name == "":
		return "", errors.New("name is empty")
	case name == "." || name == "..":
		return "", fmt.Errorf("name is %q, a path segment, not a set name", name)
	case len(name) > MaxNameLen:
		return "", fmt.Errorf("name longer than %d characters", MaxNameLen)
	}
	for i, r := range name {
		switch {
		case alnum(r):
		case i == 0:
			return "", fmt.Errorf("name must start with a letter or a digit, not %q", r)
		case r != '.' && r != '_' && r != '-':
			return "", fmt.Errorf("name contains %q: only letters, digits, '.', '_' and '-' are allowed", r)
		}
	}
	return name, nil
}

// alnum reports whether r is an ASCII letter or digit.
func alnum(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
}
