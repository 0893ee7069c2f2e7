package httpapi

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameLen is the longest SmartSet name the API accepts, in characters.
const MaxNameLen = 128

// checkName returns the set name that raw, the rest of the escaped request
// path after "/v1/smartsets/", names, or an error saying what is wrong with
// it. A set's name is whatever cn the directory holds, so any one path
// segment is a name once percent-decoded, when it is valid UTF-8 without
// control characters and at most MaxNameLen characters long. The name is
// only ever looked up, never used as a path: "..", "." and "a%2Fb" are
// names like any other (and the directory has no such set, a 404). A raw
// "/" makes more than one segment: not a set's path.
func checkName(raw string) (string, error) {
	if strings.Contains(raw, "/") {
		return "", errors.New(`the path has more than one segment after /v1/smartsets/ (a "/" in a name is written %2F)`)
	}
	name := raw
	if strings.Contains(raw, "%") {
		var err error
		if name, err = url.PathUnescape(raw); err != nil {
			return "", errors.New("name has a malformed percent-escape")
		}
	}
	switch {
	case name == "":
		return "", errors.New("name is empty")
	case !utf8.ValidString(name):
		return "", errors.New("name is not valid UTF-8")
	case utf8.RuneCountInString(name) > MaxNameLen:
		return "", fmt.Errorf("name longer than %d characters", MaxNameLen)
	}
	for i, r := range name {
		if unicode.IsControl(r) {
			return "", fmt.Errorf("name contains the control character %U at byte %d", r, i)
		}
	}
	return name, nil
}
