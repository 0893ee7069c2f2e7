package config

import (
	"errors"
	"fmt"
	"iter"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/BurntSushi/toml"
)

// decode turns the file into a Config: the file's values over Default().
// It returns the metadata so that the caller can tell which keys the file
// set.
//
// The TOML library stops at the first value it cannot decode, in map order,
// and matches keys to fields case-insensitively. So the file is first read
// into a generic map, and every key is checked against the struct — spelled
// exactly, with a value of the right type — in file order; only a file that
// passes is decoded onto the struct, and MetaData.Undecoded then has
// nothing left to report.
func decode(data []byte, path string) (Config, toml.MetaData, error) {
	var raw map[string]any
	md, err := toml.Decode(string(data), &raw)
	if err != nil {
		return Config{}, md, syntaxError(path, err)
	}
	if errs := checkKeys(md, raw); len(errs) > 0 {
		return Config{}, md, joinIn(path, errs)
	}

	c := Default()
	md, err = toml.Decode(string(data), &c)
	if err != nil {
		// checkKeys accepts only what the struct can hold; a library error
		// here is a gap in checkKeys, reported as well as we can.
		var pe toml.ParseError
		if errors.As(err, &pe) && pe.LastKey != "" {
			err = fmt.Errorf("%s: %s", keyName(strings.Split(pe.LastKey, ".")...), pe.Message)
		}
		return Config{}, md, joinIn(path, []error{err})
	}
	var errs []error
	for _, k := range md.Undecoded() {
		errs = append(errs, fmt.Errorf("unknown key %s", keyName(k...)))
	}
	if len(errs) > 0 {
		return Config{}, md, joinIn(path, errs)
	}
	return c, md, nil
}

// syntaxError reports a TOML syntax error with its line:
// "tcs.toml line 3: expected value but found '\n' instead". The
// toml.ParseError stays reachable with errors.As, for its
// ErrorWithPosition.
func syntaxError(path string, err error) error {
	var pe toml.ParseError
	if !errors.As(err, &pe) {
		return joinIn(path, []error{err})
	}
	where := path + " line"
	if path == "" {
		where = "line"
	}
	return &wrapped{msg: fmt.Sprintf("%s %d: %s", where, pe.Position.Line, oneLine(pe.Message)), err: pe}
}

// oneLine escapes control characters, which some of the TOML library's
// messages quote raw ("invalid escape in string '\<newline>'"), so that each
// problem stays on its own line.
func oneLine(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// wrapped is an error with its own message that unwraps to another.
type wrapped struct {
	msg string
	err error
}

func (w *wrapped) Error() string { return w.msg }
func (w *wrapped) Unwrap() error { return w.err }

// schema lists the tables and keys of Config, from its toml tags.
var schema = newSchema(reflect.TypeFor[Config]())

type schemaTable struct {
	name  string
	keys  []string // in struct order, for suggestions
	types map[string]reflect.Type
}

func newSchema(t reflect.Type) []schemaTable {
	var tables []schemaTable
	for sf := range fieldsOf(t) {
		tab := schemaTable{name: tagName(sf), types: map[string]reflect.Type{}}
		for kf := range fieldsOf(sf.Type) {
			k := tagName(kf)
			tab.keys = append(tab.keys, k)
			tab.types[k] = kf.Type
		}
		tables = append(tables, tab)
	}
	return tables
}

// fieldsOf yields the exported fields of struct type t that have a toml tag.
func fieldsOf(t reflect.Type) iter.Seq[reflect.StructField] {
	return func(yield func(reflect.StructField) bool) {
		for i := range t.NumField() {
			f := t.Field(i)
			if f.IsExported() && tagName(f) != "" && !yield(f) {
				return
			}
		}
	}
}

func tagName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	return name
}

func table(name string) (schemaTable, bool) {
	i := slices.IndexFunc(schema, func(t schemaTable) bool { return t.name == name })
	if i < 0 {
		return schemaTable{}, false
	}
	return schema[i], true
}

// checkKeys walks the keys of the file in order and reports every unknown
// table or key and every value of the wrong type, once each.
func checkKeys(md toml.MetaData, raw map[string]any) []error {
	var errs []error
	done := map[string]bool{} // tables and keys already checked
	for _, k := range md.Keys() {
		name := k[0]
		if !done[name] {
			done[name] = true
			if err := checkTable(name, raw[name]); err != nil {
				errs = append(errs, err)
			}
		}
		tab, ok := table(name)
		_, isTable := raw[name].(map[string]any)
		if !ok || !isTable || len(k) < 2 {
			continue // a bad table is reported once, not key by key
		}
		id := name + "\x00" + k[1]
		if done[id] {
			continue // a key of an inline or dotted table seen before
		}
		done[id] = true
		typ, ok := tab.types[k[1]]
		if !ok {
			errs = append(errs, fmt.Errorf("unknown key %s%s", keyName(name, k[1]), hint(name, k[1])))
			continue
		}
		if err := checkValue(typ, raw[name].(map[string]any)[k[1]]); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", keyName(name, k[1]), err))
		}
	}
	return errs
}

// checkTable checks a top-level name of the file: a known table, as a table.
func checkTable(name string, v any) error {
	if _, ok := table(name); !ok {
		if _, isTable := v.(map[string]any); isTable {
			return fmt.Errorf("unknown table %s%s", keyName(name), tableHint(name))
		}
		return fmt.Errorf("unknown key %s%s", toml.Key{name}, topHint(name))
	}
	switch v.(type) {
	case map[string]any:
		return nil
	case []map[string]any:
		return fmt.Errorf("%s must be a table, not an array of tables ([[%s]])", keyName(name), name)
	default:
		return fmt.Errorf("%s must be a table, not %s", keyName(name), describe(v))
	}
}

var durationType = reflect.TypeFor[Duration]()

// checkValue reports whether v, as the TOML library decoded it into a
// generic map, fits a field of type t.
func checkValue(t reflect.Type, v any) error {
	if t == durationType {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("must be a duration string such as \"5s\", not %s", describe(v))
		}
		var d Duration
		return d.UnmarshalText([]byte(s))
	}
	switch t.Kind() {
	case reflect.String:
		if _, ok := v.(string); !ok {
			return fmt.Errorf("must be a string, not %s", describe(v))
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("must be true or false, not %s", describe(v))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(int64)
		if !ok {
			return fmt.Errorf("must be an integer, not %s", describe(v))
		}
		if reflect.New(t).Elem().OverflowInt(n) {
			return fmt.Errorf("%d is out of range", n)
		}
	case reflect.Float32, reflect.Float64:
		switch n := v.(type) {
		case float64:
		case int64:
			// The TOML library turns integers into floats only where that
			// is exact.
			if n < -1<<53 || n > 1<<53 {
				return fmt.Errorf("%d is too large to be exact; write it as a float", n)
			}
		default:
			return fmt.Errorf("must be a number, not %s", describe(v))
		}
	case reflect.Slice:
		if t.Elem().Kind() != reflect.String {
			return fmt.Errorf("has unsupported type %s", t) // a bug in Config
		}
		vs, ok := v.([]any)
		if !ok {
			return fmt.Errorf("must be an array of strings, not %s", describe(v))
		}
		for i, e := range vs {
			if _, ok := e.(string); !ok {
				return fmt.Errorf("element %d must be a string, not %s", i+1, describe(e))
			}
		}
	default:
		return fmt.Errorf("has unsupported type %s", t) // a bug in Config
	}
	return nil
}

// describe names a decoded TOML value for an error message. Tables and
// arrays are not printed.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("the string %q", v)
	case int64:
		return fmt.Sprintf("the integer %d", v)
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Sprintf("the float %v", v)
		}
		return fmt.Sprintf("the float %g", v)
	case bool:
		return fmt.Sprintf("the boolean %t", v)
	case time.Time:
		return "a date-time"
	case map[string]any:
		return "a table"
	case []map[string]any:
		return "an array of tables"
	case []any:
		return "an array"
	default:
		return fmt.Sprintf("a %T", v)
	}
}

// keyName writes a key the way errors show it: "[service] name" for a key in
// a table, "[service]" for a table, quoting what is not a bare TOML key.
func keyName(parts ...string) string {
	if len(parts) == 0 {
		return ""
	}
	s := "[" + toml.Key{parts[0]}.String() + "]"
	if len(parts) > 1 {
		s += " " + toml.Key(parts[1:]).String()
	}
	return s
}

// hint suggests what an unknown key in a known table was meant to be.
func hint(tableName, key string) string {
	if tableName == "directory" && strings.Contains(key, "password") && key != "bind_password_file" {
		return " (the password goes in the file named by bind_password_file, or in env TCS_BIND_PASSWORD)"
	}
	for _, other := range schema {
		if _, ok := other.types[key]; ok {
			return " (" + key + " belongs in [" + other.name + "])"
		}
	}
	tab, _ := table(tableName)
	if k := closest(key, tab.keys); k != "" {
		return " (did you mean " + k + "?)"
	}
	return ""
}

// topHint suggests a table for a key written outside any table.
func topHint(key string) string {
	for _, tab := range schema {
		if _, ok := tab.types[key]; ok {
			return " (did you mean " + keyName(tab.name, key) + "? keys go under a table)"
		}
	}
	return ""
}

// tableHint suggests a table name for a misspelled one.
func tableHint(name string) string {
	names := make([]string, len(schema))
	for i, tab := range schema {
		names[i] = tab.name
	}
	if n := closest(name, names); n != "" {
		return " (did you mean [" + n + "]?)"
	}
	return ""
}

// closest returns the candidate that s most likely misspells: one equal but
// for case, else the nearest within an edit distance of 2, else "".
func closest(s string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if strings.EqualFold(s, c) {
			return c
		}
		if d := editDistance(s, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
