package tablecache

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"tcs/ldapdir"
	"tcs/smartset"
)

// noValues is the cell of an attribute an entry does not have. Shared:
// tables are read-only.
var noValues = []string{}

// build turns the entries of query q into columns and rows (see Table) and
// returns the content hash the ETag carries.
func build(q ldapdir.Query, es []ldapdir.Entry) (cols []string, rows [][][]string, hash string) {
	cols = columns(q, es)
	keys := make([]string, len(cols))
	for j, c := range cols {
		keys[j] = strings.ToLower(c)
	}
	rows = make([][][]string, len(es))
	for i, e := range es {
		row := make([][]string, len(cols))
		row[0] = []string{e.DN}
		for j := 1; j < len(cols); j++ {
			if v := e.Attrs[keys[j]]; len(v) > 0 {
				row[j] = v
			} else {
				row[j] = noValues
			}
		}
		rows[i] = row
	}
	slices.SortStableFunc(rows, func(a, b [][]string) int {
		return cmp.Or(strings.Compare(smartset.Key(a[0][0]), smartset.Key(b[0][0])), strings.Compare(a[0][0], b[0][0]))
	})
	return cols, rows, contentHash(cols, rows)
}

// columns is "dn", then the attributes q names in its order and spelling
// (duplicates, told apart case-insensitively, once; "1.1" none). When q
// names none, or names "*" or "+", the attribute names the entries have
// that are not listed yet follow, sorted case-insensitively.
func columns(q ldapdir.Query, es []ldapdir.Entry) []string {
	cols := []string{"dn"}
	seen := map[string]bool{"dn": true}
	wild := len(q.Attrs) == 0
	for _, a := range q.Attrs {
		switch a {
		case "*", "+":
			wild = true
			continue
		case "1.1":
			continue
		}
		if k := strings.ToLower(a); !seen[k] {
			seen[k] = true
			cols = append(cols, a)
		}
	}
	if !wild {
		return cols
	}
	var extra []string
	for _, e := range es {
		for name := range e.Attrs {
			if k := strings.ToLower(name); !seen[k] {
				seen[k] = true
				extra = append(extra, name)
			}
		}
	}
	slices.SortFunc(extra, func(a, b string) int {
		return cmp.Or(strings.Compare(strings.ToLower(a), strings.ToLower(b)), strings.Compare(a, b))
	})
	return append(cols, extra...)
}

// contentHash is 16 hex digits of SHA-256 over the columns and rows, every
// string and count length-prefixed so no two tables share an encoding.
func contentHash(cols []string, rows [][][]string) string {
	h := sha256.New()
	var buf []byte
	num := func(n int) {
		buf = binary.AppendUvarint(buf[:0], uint64(n))
		h.Write(buf)
	}
	str := func(s string) {
		num(len(s))
		h.Write([]byte(s))
	}
	num(len(cols))
	for _, c := range cols {
		str(c)
	}
	num(len(rows))
	for _, row := range rows {
		num(len(row))
		for _, cell := range row {
			num(len(cell))
			for _, v := range cell {
				str(v)
			}
		}
	}
	sum := h.Sum(nil)
	return hex.EncodeToString(sum[:8])
}

// etag is the entity tag of a table: its epoch and content hash, quoted.
func etag(epoch int64, hash string) string {
	return fmt.Sprintf(`"%d-%s"`, epoch, hash)
}
