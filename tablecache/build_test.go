package tablecache

import (
	"regexp"
	"slices"
	"testing"

	"tcs/ldapdir"
)

func TestBuild(t *testing.T) {
	es := []ldapdir.Entry{
		{DN: "cn=b,dc=x", Attrs: map[string][]string{"cn": {"b"}, "description": {"two", "one"}, "objectclass": {"device"}}},
		{DN: "CN=a,dc=x", Attrs: map[string][]string{"cn": {"a"}, "serialnumber": {"S1"}}},
		{DN: "cn=C,dc=x", Attrs: map[string][]string{"cn": {"C"}}},
	}
	tests := []struct {
		name  string
		attrs []string
		cols  []string
	}{
		{"listed, in URL order and spelling", []string{"serialNumber", "CN", "description"}, []string{"dn", "serialNumber", "CN", "description"}},
		{"duplicates once", []string{"cn", "CN", "cn"}, []string{"dn", "cn"}},
		{"none: every name seen, sorted", nil, []string{"dn", "cn", "description", "objectclass", "serialnumber"}},
		{"1.1: dn only", []string{"1.1"}, []string{"dn"}},
		{"star after listed ones", []string{"serialNumber", "*"}, []string{"dn", "serialNumber", "cn", "description", "objectclass"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cols, rows, hash := build(ldapdir.Query{Attrs: tc.attrs}, es)
			if !slices.Equal(cols, tc.cols) {
				t.Fatalf("columns %q, want %q", cols, tc.cols)
			}
			var dns []string
			for _, row := range rows {
				if len(row) != len(cols) {
					t.Fatalf("row %q has %d cells for %d columns", row[0], len(row), len(cols))
				}
				dns = append(dns, row[0][0])
				for j, cell := range row {
					if cell == nil {
						t.Fatalf("row %s column %s: nil cell, want an empty slice", row[0][0], cols[j])
					}
				}
			}
			if want := []string{"CN=a,dc=x", "cn=b,dc=x", "cn=C,dc=x"}; !slices.Equal(dns, want) {
				t.Fatalf("rows %q, want by DN case-insensitively %q", dns, want)
			}
			if j := slices.Index(cols, "description"); j > 0 && !slices.Equal(rows[1][j], []string{"two", "one"}) {
				t.Fatalf("description of cn=b %q, want both in server order", rows[1][j])
			}
			if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(hash) {
				t.Fatalf("hash %q", hash)
			}
		})
	}
}

// The content hash tells apart tables whose strings only split differently.
func TestContentHash(t *testing.T) {
	cols := []string{"dn", "v"}
	tables := [][][][]string{
		{{{"a"}, {"bc"}}},
		{{{"a"}, {"b", "c"}}},
		{{{"a"}, {"b"}}, {{"c"}, {}}},
		{{{"ab"}, {"c"}}},
		{{{"a"}, {}}},
		{},
	}
	seen := map[string]int{}
	for i, rows := range tables {
		h := contentHash(cols, rows)
		if j, ok := seen[h]; ok {
			t.Fatalf("tables %d and %d share hash %s", i, j, h)
		}
		seen[h] = i
		if h2 := contentHash(cols, rows); h2 != h {
			t.Fatalf("hash of table %d not stable: %s then %s", i, h, h2)
		}
	}
	if h1, h2 := contentHash([]string{"dn", "a"}, nil), contentHash([]string{"dn", "b"}, nil); h1 == h2 {
		t.Fatal("columns do not count")
	}
	if got := etag(7, "0123456789abcdef"); got != `"7-0123456789abcdef"` {
		t.Fatalf("etag %s", got)
	}
}
