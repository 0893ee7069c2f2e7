package ldapdir_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"tcs/internal/ldaptest"
	"tcs/ldapdir"
)

func TestParseQuery(t *testing.T) {
	const all = "(objectClass=*)"
	tests := []struct {
		name string
		raw  string
		want ldapdir.Query // Raw is filled in from raw
		err  string        // substring of the error; "" = must parse
	}{
		// RFC 4516 section 6 examples.
		{name: "rfc host-less percent-encoded DN", raw: "ldap:///o=University%20of%20Michigan,c=US",
			want: ldapdir.Query{Base: "o=University of Michigan,c=US", Scope: ldapdir.ScopeBase, Filter: all}},
		{name: "rfc host", raw: "ldap://ldap1.example.net/o=University%20of%20Michigan,c=US",
			want: ldapdir.Query{Server: "ldap://ldap1.example.net", Base: "o=University of Michigan,c=US", Scope: ldapdir.ScopeBase, Filter: all}},
		{name: "rfc one attribute", raw: "ldap://ldap1.example.net/o=University%20of%20Michigan,c=US?postalAddress",
			want: ldapdir.Query{Server: "ldap://ldap1.example.net", Base: "o=University of Michigan,c=US", Attrs: []string{"postalAddress"}, Scope: ldapdir.ScopeBase, Filter: all}},
		{name: "rfc port, no attributes, sub, encoded filter", raw: "ldap://ldap1.example.net:6666/o=University%20of%20Michigan,c=US??sub?(cn=Babs%20Jensen)",
			want: ldapdir.Query{Server: "ldap://ldap1.example.net:6666", Base: "o=University of Michigan,c=US", Scope: ldapdir.ScopeSub, Filter: "(cn=Babs Jensen)"}},
		{name: "rfc upper-case scheme and scope", raw: "LDAP://ldap1.example.com/c=GB?objectClass?ONE",
			want: ldapdir.Query{Server: "ldap://ldap1.example.com", Base: "c=GB", Attrs: []string{"objectClass"}, Scope: ldapdir.ScopeOne, Filter: all}},
		{name: "rfc encoded question mark in DN", raw: "ldap://ldap2.example.com/o=Question%3f,c=US?mail",
			want: ldapdir.Query{Server: "ldap://ldap2.example.com", Base: "o=Question?,c=US", Attrs: []string{"mail"}, Scope: ldapdir.ScopeBase, Filter: all}},
		{name: "rfc escaped octets in filter", raw: "ldap://ldap3.example.com/o=Babsco,c=US???(four-octet=%5c00%5c00%5c00%5c04)",
			want: ldapdir.Query{Server: "ldap://ldap3.example.com", Base: "o=Babsco,c=US", Scope: ldapdir.ScopeBase, Filter: `(four-octet=\00\00\00\04)`}},
		{name: "rfc escaped comma in DN", raw: "ldap://ldap.example.com/o=An%20Example%5C2C%20Inc.,c=US",
			want: ldapdir.Query{Server: "ldap://ldap.example.com", Base: `o=An Example\2C Inc.,c=US`, Scope: ldapdir.ScopeBase, Filter: all}},
		{name: "rfc host only", raw: "ldap://ldap.example.net",
			want: ldapdir.Query{Server: "ldap://ldap.example.net", Scope: ldapdir.ScopeBase, Filter: all}},
		{name: "rfc host and slash", raw: "ldap://ldap.example.net/",
			want: ldapdir.Query{Server: "ldap://ldap.example.net", Scope: ldapdir.ScopeBase, Filter: all}},
		{name: "rfc host slash question", raw: "ldap://ldap.example.net/?",
			want: ldapdir.Query{Server: "ldap://ldap.example.net", Scope: ldapdir.ScopeBase, Filter: all}},
		{name: "rfc non-critical extension ignored", raw: "ldap:///??sub??e-bindname=cn=Manager%2cdc=example%2cdc=com",
			want: ldapdir.Query{Scope: ldapdir.ScopeSub, Filter: all}},
		{name: "rfc critical extension refused", raw: "ldap:///??sub??!e-bindname=cn=Manager%2cdc=example%2cdc=com",
			err: `unsupported critical extension "e-bindname"`},

		// The tcs fixtures.
		{name: "tcs texas linux servers", raw: "ldap:///cn=Texas,ou=locations,dc=example,dc=org?cn,tcsSystemType,tcsOSType,description?one?(&(objectClass=tcsSystem)(tcsSystemType=server)(tcsOSType=Linux))",
			want: ldapdir.Query{Base: "cn=Texas,ou=locations,dc=example,dc=org", Attrs: []string{"cn", "tcsSystemType", "tcsOSType", "description"},
				Scope: ldapdir.ScopeOne, Filter: "(&(objectClass=tcsSystem)(tcsSystemType=server)(tcsOSType=Linux))"}},

		// Omissions and defaults.
		{name: "scheme only", raw: "ldap://",
			want: ldapdir.Query{Scope: ldapdir.ScopeBase, Filter: all}},
		{name: "empty attrs, explicit base scope", raw: "ldap:///dc=example,dc=org??base",
			want: ldapdir.Query{Base: "dc=example,dc=org", Scope: ldapdir.ScopeBase, Filter: all}},
		{name: "filter only", raw: "ldap:///dc=example,dc=org???(cn=x)",
			want: ldapdir.Query{Base: "dc=example,dc=org", Scope: ldapdir.ScopeBase, Filter: "(cn=x)"}},
		{name: "filter without parentheses", raw: "ldap:///dc=example,dc=org??sub?cn=x",
			want: ldapdir.Query{Base: "dc=example,dc=org", Scope: ldapdir.ScopeSub, Filter: "(cn=x)"}},
		{name: "all four question marks", raw: "ldap:///dc=example,dc=org????",
			want: ldapdir.Query{Base: "dc=example,dc=org", Scope: ldapdir.ScopeBase, Filter: all}},
		{name: "surrounding spaces trimmed", raw: "  ldap:///dc=example,dc=org?cn?one \n",
			want: ldapdir.Query{Base: "dc=example,dc=org", Attrs: []string{"cn"}, Scope: ldapdir.ScopeOne, Filter: all}},
		{name: "special attribute selectors and options", raw: "ldap:///?*,+,1.1,description;lang-en,2.5.4.3",
			want: ldapdir.Query{Attrs: []string{"*", "+", "1.1", "description;lang-en", "2.5.4.3"}, Scope: ldapdir.ScopeBase, Filter: all}},
		{name: "plus sign kept in filter", raw: "ldap:///??sub?(tel=+1%20555)",
			want: ldapdir.Query{Scope: ldapdir.ScopeSub, Filter: "(tel=+1 555)"}},

		// Hosts.
		{name: "ldaps with port", raw: "ldaps://DB.Example.net:636/dc=x",
			want: ldapdir.Query{Server: "ldaps://db.example.net:636", Base: "dc=x", Scope: ldapdir.ScopeBase, Filter: all}},
		{name: "ipv6 host", raw: "ldap://[::1]:3890/dc=x",
			want: ldapdir.Query{Server: "ldap://[::1]:3890", Base: "dc=x", Scope: ldapdir.ScopeBase, Filter: all}},
		{name: "ldapi host is the socket path", raw: "ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi/dc=example,dc=org??sub",
			want: ldapdir.Query{Server: "ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi", Base: "dc=example,dc=org", Scope: ldapdir.ScopeSub, Filter: all}},
		{name: "ldapi without host", raw: "ldapi:///dc=example,dc=org",
			want: ldapdir.Query{Base: "dc=example,dc=org", Scope: ldapdir.ScopeBase, Filter: all}},

		// Errors, each naming its part.
		{name: "no scheme", raw: "dc=example,dc=org", err: "no scheme"},
		{name: "http scheme", raw: "http://example.org/dc=x", err: `unsupported scheme "http"`},
		{name: "bad scope", raw: "ldap:///dc=x??subtree", err: `scope "subtree": want base, one or sub`},
		{name: "bad filter", raw: "ldap:///dc=x??sub?(cn=x", err: `filter "(cn=x"`},
		{name: "bad filter operator", raw: "ldap:///dc=x??sub?(&(cn=x)(sn~y))", err: "filter"},
		{name: "bad DN", raw: "ldap:///not-a-dn", err: `base DN "not-a-dn" is not a DN`},
		{name: "bad percent-encoding in DN", raw: "ldap:///cn=%zz", err: "base DN: bad percent-encoding"},
		{name: "empty attribute", raw: "ldap:///dc=x?cn,,sn", err: "attributes: empty attribute name"},
		{name: "bad attribute", raw: "ldap:///dc=x?c n", err: `attributes: "c n" is not an attribute description`},
		{name: "too many question marks", raw: "ldap:///dc=x?cn?sub?(cn=*)?ext?more", err: "too many '?'"},
		{name: "bad port", raw: "ldap://host:99999/dc=x", err: `host "host:99999": bad port`},
		{name: "user info", raw: "ldap://me@host/dc=x", err: "user information"},
		{name: "question mark right after host", raw: "ldap://host?cn", err: "a '/' must separate the host"},
		{name: "relative ldapi socket", raw: "ldapi://slapd.sock/dc=x", err: "not absolute"},
		{name: "unknown critical extension", raw: "ldap:///dc=x????!x-paged=10", err: `unsupported critical extension "x-paged"`},
		{name: "empty extension", raw: "ldap:///dc=x????,", err: "extensions: empty extension"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ldapdir.ParseQuery(tc.raw)
			if tc.err != "" {
				if err == nil {
					t.Fatalf("ParseQuery(%q) = %+v, want an error with %q", tc.raw, got, tc.err)
				}
				if !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), tc.raw) {
					t.Fatalf("ParseQuery(%q) error %q, want it to contain %q and the URL", tc.raw, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseQuery(%q): %v", tc.raw, err)
			}
			want := tc.want
			want.Raw = tc.raw
			if !equalQuery(got, want) {
				t.Fatalf("ParseQuery(%q)\n got %#v\nwant %#v", tc.raw, got, want)
			}
		})
	}
}

func equalQuery(a, b ldapdir.Query) bool {
	return a.Raw == b.Raw && a.Server == b.Server && a.Base == b.Base && slices.Equal(a.Attrs, b.Attrs) &&
		a.Scope == b.Scope && a.Filter == b.Filter
}

// encodeQuery writes q back as an LDAP URL, percent-encoding what must be.
func encodeQuery(q ldapdir.Query) string {
	esc := func(s string) string {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c <= ' ' || c >= 0x7f || c == '%' || c == '?' || c == '#' {
				fmt.Fprintf(&b, "%%%02X", c)
				continue
			}
			b.WriteByte(c)
		}
		return b.String()
	}
	scheme, host := "ldap", ""
	if q.Server != "" {
		scheme, host, _ = strings.Cut(q.Server, "://")
	}
	scope := map[int]string{ldapdir.ScopeBase: "base", ldapdir.ScopeOne: "one", ldapdir.ScopeSub: "sub"}[q.Scope]
	return scheme + "://" + host + "/" + esc(q.Base) + "?" + strings.Join(q.Attrs, ",") + "?" + scope + "?" + esc(q.Filter)
}

// Whatever ParseQuery accepts is consistent (a compiling filter, a DN, a
// known scope, a valid server) and survives encoding and parsing again.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"ldap:///o=University%20of%20Michigan,c=US",
		"ldap://ldap1.example.net:6666/o=University%20of%20Michigan,c=US??sub?(cn=Babs%20Jensen)",
		"LDAP://ldap1.example.com/c=GB?objectClass?ONE",
		"ldap://ldap3.example.com/o=Babsco,c=US???(four-octet=%5c00%5c00%5c00%5c04)",
		"ldap:///??sub??!e-bindname=cn=Manager%2cdc=example%2cdc=com",
		"ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi/dc=example,dc=org??sub",
		"ldaps://[::1]:636/dc=x?cn;lang-en,1.1?one?cn=x",
		"ldap:///cn=Texas,ou=locations,dc=example,dc=org?cn,tcsOSType?one?(&(objectClass=tcsSystem)(|(a=b)(!(c=d))))",
		"ldap://host?cn", "ldap:///dc=x????,", "ldap:///cn=%zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := ldapdir.ParseQuery(raw)
		if err != nil {
			if !strings.Contains(err.Error(), "ldapdir: LDAP URL") {
				t.Fatalf("error %q does not name the URL", err)
			}
			return
		}
		if q.Raw != raw {
			t.Fatalf("Raw %q, want %q", q.Raw, raw)
		}
		if q.Scope != ldapdir.ScopeBase && q.Scope != ldapdir.ScopeOne && q.Scope != ldapdir.ScopeSub {
			t.Fatalf("scope %d", q.Scope)
		}
		if !strings.HasPrefix(q.Filter, "(") {
			t.Fatalf("filter %q", q.Filter)
		}
		if q.Server != "" {
			if err := ldapdir.CheckURL(q.Server); err != nil {
				t.Fatalf("server %q: %v", q.Server, err)
			}
		}
		again, err := ldapdir.ParseQuery(encodeQuery(q))
		if err != nil {
			t.Fatalf("re-encoded %q does not parse: %v", encodeQuery(q), err)
		}
		again.Raw = q.Raw
		if !equalQuery(again, q) {
			t.Fatalf("round trip through %q\n got %#v\nwant %#v", encodeQuery(q), again, q)
		}
	})
}

// Query against a real slapd: every value of a multi-valued attribute, the
// attributes asked for only, and ErrRowLimit (both when the server stops at
// its size limit and when exactly limit+1 entries match).
func TestQueryAgainstSlapd(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	d := open(t, s)
	ctx := ctxT(t, 30*time.Second)

	q, err := ldapdir.ParseQuery("ldap:///cn=Texas,ou=locations,dc=example,dc=org?cn,tcsSystemType,tcsOSType,description?one?(&(objectClass=tcsSystem)(tcsSystemType=server)(tcsOSType=Linux))")
	if err != nil {
		t.Fatal(err)
	}
	es, err := d.Query(ctx, q, 10)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, e := range es {
		got[e.Get("cn")] = e.Values("description")
		if e.Get("serialNumber") != "" {
			t.Errorf("%s: serialNumber returned though not asked for", e.DN)
		}
	}
	want := map[string][]string{
		"tx-srv-01": {"inventory database, primary", "nightly backup to tx-srv-03"},
		"tx-srv-02": {"web front end"},
	}
	if len(got) != len(want) || !slices.Equal(got["tx-srv-01"], want["tx-srv-01"]) || !slices.Equal(got["tx-srv-02"], want["tx-srv-02"]) {
		t.Fatalf("descriptions %v, want %v", got, want)
	}

	all, err := ldapdir.ParseQuery("ldap:///cn=Japan,ou=locations,dc=example,dc=org?cn?sub?(objectClass=tcsSystem)")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		limit int
		want  error
	}{{0, nil}, {7, nil}, {100, nil}, {6, ldapdir.ErrRowLimit}, {5, ldapdir.ErrRowLimit}, {1, ldapdir.ErrRowLimit}} {
		es, err := d.Query(ctx, all, tc.limit)
		if !errors.Is(err, tc.want) {
			t.Fatalf("limit %d: error %v, want %v", tc.limit, err, tc.want)
		}
		if err != nil {
			if !strings.Contains(err.Error(), fmt.Sprintf("more than %d entries", tc.limit)) {
				t.Fatalf("limit %d: error %q does not say the limit", tc.limit, err)
			}
			continue
		}
		if len(es) != 7 {
			t.Fatalf("limit %d: %d entries, want the 7 Japan systems", tc.limit, len(es))
		}
	}

	missing, _ := ldapdir.ParseQuery("ldap:///cn=Nowhere,ou=locations,dc=example,dc=org??one")
	if _, err := d.Query(ctx, missing, 10); !errors.Is(err, ldapdir.ErrNotFound) {
		t.Fatalf("query under a missing base: %v, want ErrNotFound", err)
	}
}

// At reaches another server with the same credentials, and rejects what
// is not a server URL.
func TestAtAnotherServer(t *testing.T) {
	s1 := ldaptest.Start(t)
	s2 := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	d := open(t, s1)
	d2, err := d.At(s2.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	q, _ := ldapdir.ParseQuery("ldap:///cn=Texas,ou=locations,dc=example,dc=org?cn?one?(tcsSystemType=router)")
	ctx := ctxT(t, 30*time.Second)
	if es, err := d.Query(ctx, q, 0); !errors.Is(err, ldapdir.ErrNotFound) {
		t.Fatalf("first server: %d entries, %v; want ErrNotFound (it has no Texas)", len(es), err)
	}
	es, err := d2.Query(ctx, q, 0)
	if err != nil || len(es) != 2 {
		t.Fatalf("second server: %d entries, %v; want the 2 Texas routers", len(es), err)
	}
	for _, bad := range []string{"", "http://x", "ldap://", "ldap://h:0", "ldap://h/dc=x"} {
		if _, err := d.At(bad); err == nil {
			t.Errorf("At(%q) succeeded", bad)
		}
	}
}

// With NoPoll a watch on a server without syncprov ends, and says why.
func TestWatchNoPollEndsWithoutSyncprov(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithOverlays("dds"))
	d := open(t, s)
	ctx := ctxT(t, 30*time.Second)
	w := d.Watch(ctx, ldapdir.WatchSpec{Base: d.SetsDN(), Scope: ldapdir.ScopeOne, Attrs: []string{"1.1"}, NoPoll: true})
	defer w.Close()
	for {
		select {
		case ev, ok := <-w.Events():
			if ok {
				t.Fatalf("event %v from a watch that cannot sync", ev.Type)
			}
			if st := w.Status(); !errors.Is(st.LastError, ldapdir.ErrNoSyncprov) || st.Synced {
				t.Fatalf("status %+v, want LastError wrapping ErrNoSyncprov", st)
			}
			return
		case <-ctx.Done():
			t.Fatal("the watch did not end")
		}
	}
}

func ExampleParseQuery() {
	q, err := ldapdir.ParseQuery("ldap:///cn=Texas,ou=locations,dc=example,dc=org?cn,description?one?(tcsOSType=Linux)")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("server %q base %q attrs %q one-level %v filter %s\n", q.Server, q.Base, q.Attrs, q.Scope == ldapdir.ScopeOne, q.Filter)
	_, err = ldapdir.ParseQuery("ldap:///dc=example,dc=org??subtree")
	fmt.Println(err)
	// Output:
	// server "" base "cn=Texas,ou=locations,dc=example,dc=org" attrs ["cn" "description"] one-level true filter (tcsOSType=Linux)
	// ldapdir: LDAP URL "ldap:///dc=example,dc=org??subtree": scope "subtree": want base, one or sub
}
