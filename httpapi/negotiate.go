package httpapi

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// format is a representation the API can send.
type format int

const (
	formatJSON format = iota
	formatCSV
)

// offers are the media types the API can send, in the order it prefers
// them when the client likes several equally.
var offers = [...]struct {
	typ, sub string
	f        format
}{
	{"application", "json", formatJSON},
	{"text", "csv", formatCSV},
}

const offered = "application/json, text/csv"

// negotiate picks the representation for r: ?format= when given (json or
// csv), else the Accept header, else JSON. The error is a 400 for a
// malformed query or Accept header or an unknown format, a 406 when the
// Accept header rules out both JSON and CSV.
func negotiate(r *http.Request) (format, *apiError) {
	if r.URL.RawQuery != "" {
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return 0, badRequest("malformed query string: %v", err)
		}
		if vs, ok := q["format"]; ok {
			for _, v := range vs[1:] {
				if !strings.EqualFold(v, vs[0]) {
					return 0, badRequest("format given more than once (%q, %q)", vs[0], v)
				}
			}
			switch strings.ToLower(vs[0]) {
			case "json":
				return formatJSON, nil
			case "csv":
				return formatCSV, nil
			}
			return 0, badRequest("unknown format %q: use format=json or format=csv", vs[0])
		}
	}
	accept := r.Header.Values("Accept")
	switch {
	case len(accept) == 0:
		return formatJSON, nil
	case len(accept) == 1:
		// The common headers, without parsing.
		switch accept[0] {
		case "", "*/*", "application/json":
			return formatJSON, nil
		case "text/csv":
			return formatCSV, nil
		}
	}
	var ranges []mediaRange
	for _, v := range accept {
		var err error
		if ranges, err = parseAccept(v, ranges); err != nil {
			return 0, badRequest("malformed Accept header: %v", err)
		}
	}
	if len(ranges) == 0 { // only empty list elements: as if absent
		return formatJSON, nil
	}
	f, ok := choose(ranges)
	if !ok {
		return 0, &apiError{code: http.StatusNotAcceptable,
			msg: "none of the offered media types is acceptable: " + offered}
	}
	return f, nil
}

// mediaRange is one element of an Accept header (RFC 9110 section 12.5.1).
type mediaRange struct {
	typ, sub string
	q        int // quality in thousandths, 0..1000
}

// choose returns the offer the ranges weigh highest (each offer weighed by
// the most specific range that matches it), preferring JSON on a tie;
// false when every offer weighs 0.
func choose(ranges []mediaRange) (format, bool) {
	best, bestQ := format(0), 0
	for _, o := range offers {
		q, spec := 0, -1
		for _, mr := range ranges {
			s := -1
			switch {
			case mr.typ == "*" && mr.sub == "*":
				s = 0
			case !strings.EqualFold(mr.typ, o.typ):
			case mr.sub == "*":
				s = 1
			case strings.EqualFold(mr.sub, o.sub):
				s = 2
			}
			if s > spec {
				spec, q = s, mr.q
			}
		}
		if q > bestQ {
			best, bestQ = o.f, q
		}
	}
	return best, bestQ > 0
}

// parseAccept appends the media ranges of one Accept header value to out.
// Grammar (RFC 9110): #( media-range [ weight ] ), where
// media-range = ( "*/*" / type "/*" / type "/" subtype ) *( OWS ";" OWS parameter ),
// parameter = token "=" ( token / quoted-string ) and q is 0..1 with at most
// three decimals. Empty list elements are allowed.
func parseAccept(s string, out []mediaRange) ([]mediaRange, error) {
	for i := 0; ; {
		i = skipOWS(s, i)
		if i == len(s) {
			return out, nil
		}
		if s[i] == ',' {
			i++
			continue
		}
		start := i
		elem := func() string { // the element, for messages
			end := strings.IndexByte(s[start:], ',')
			if end < 0 {
				return s[start:]
			}
			return s[start : start+end]
		}
		j := skipToken(s, i)
		if j == i {
			return out, fmt.Errorf("%q is not a media range (want type/subtype)", elem())
		}
		mr := mediaRange{typ: s[i:j], q: 1000}
		if j == len(s) || s[j] != '/' {
			return out, fmt.Errorf("media range %q has no '/'", elem())
		}
		i, j = j+1, skipToken(s, j+1)
		if j == i {
			return out, fmt.Errorf("media range %q has no subtype", elem())
		}
		mr.sub = s[i:j]
		if mr.typ == "*" && mr.sub != "*" {
			return out, fmt.Errorf("media range %q: only */* may have a wildcard type", elem())
		}
		i = skipOWS(s, j)
		for i < len(s) && s[i] == ';' {
			i = skipOWS(s, i+1)
			j = skipToken(s, i)
			if j == i {
				return out, fmt.Errorf("media range %q has an empty parameter", elem())
			}
			name := s[i:j]
			if j == len(s) || s[j] != '=' {
				return out, fmt.Errorf("parameter %q in %q has no value", name, elem())
			}
			i = j + 1
			var val string
			if i < len(s) && s[i] == '"' {
				end, ok := skipQuoted(s, i)
				if !ok {
					return out, fmt.Errorf("unterminated quoted string in %q", s[start:])
				}
				val, i = s[i:end], end
			} else {
				j = skipToken(s, i)
				if j == i {
					return out, fmt.Errorf("parameter %q in %q has an empty value", name, elem())
				}
				val, i = s[i:j], j
			}
			if strings.EqualFold(name, "q") {
				q, ok := parseQ(val)
				if !ok {
					return out, fmt.Errorf("bad q-value %q in %q: want a number from 0 to 1 with at most 3 decimals", val, elem())
				}
				mr.q = q
			}
			i = skipOWS(s, i)
		}
		if i < len(s) && s[i] != ',' {
			return out, fmt.Errorf("unexpected %q in media range %q", s[i:i+1], elem())
		}
		out = append(out, mr)
	}
}

// parseQ parses a qvalue: "0" [ "." 0*3DIGIT ] / "1" [ "." 0*3("0") ], in
// thousandths.
func parseQ(v string) (int, bool) {
	if v == "" || (v[0] != '0' && v[0] != '1') {
		return 0, false
	}
	q := int(v[0]-'0') * 1000
	if len(v) == 1 {
		return q, true
	}
	if v[1] != '.' || len(v) > 5 {
		return 0, false
	}
	scale := 100
	for _, c := range []byte(v[2:]) {
		if c < '0' || c > '9' {
			return 0, false
		}
		q += int(c-'0') * scale
		scale /= 10
	}
	return q, q <= 1000
}

func skipOWS(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

// skipToken returns the end of the RFC 9110 token starting at i.
func skipToken(s string, i int) int {
	for i < len(s) && isTchar(s[i]) {
		i++
	}
	return i
}

func isTchar(c byte) bool {
	if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// skipQuoted returns the end of the quoted-string starting at s[i] == '"'.
func skipQuoted(s string, i int) (int, bool) {
	for i++; i < len(s); i++ {
		switch s[i] {
		case '"':
			return i + 1, true
		case '\\':
			i++
		}
	}
	return 0, false
}

// noneMatch reports whether the If-None-Match header values list etag (weak
// comparison) or are "*": the client's copy is current, answer 304. A
// malformed header matches nothing.
func noneMatch(values []string, etag string) bool {
	want := opaque(etag)
	for _, v := range values {
		for i := 0; ; {
			i = skipOWS(v, i)
			for i < len(v) && (v[i] == ',' || v[i] == ' ' || v[i] == '\t') {
				i++
			}
			if i == len(v) {
				break
			}
			if v[i] == '*' {
				return true
			}
			start := i
			if strings.HasPrefix(v[i:], "W/") {
				i += 2
			}
			if i == len(v) || v[i] != '"' {
				return false
			}
			end := strings.IndexByte(v[i+1:], '"')
			if end < 0 {
				return false
			}
			i += end + 2
			if opaque(v[start:i]) == want {
				return true
			}
		}
	}
	return false
}

// opaque is an entity tag without its weakness indicator.
func opaque(etag string) string {
	return strings.TrimPrefix(etag, "W/")
}

// csvETag is the ETag of the CSV representation of the table whose JSON
// ETag is etag: "-csv" added inside the quotes.
func csvETag(etag string) string {
	if n := len(etag); n >= 2 && etag[n-1] == '"' {
		return etag[:n-1] + `-csv"`
	}
	return etag + "-csv"
}
