package ldaptest_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"tcs/internal/ldaptest"
)

// The patent's example (Japan, Texas, California) plus Oregon, a location
// with no agent, loaded into a real slapd: what the demo and the integration
// tests build on.
func TestFixtures(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif", "testdata/ldif/oregon.ldif"))
	locBase := "ou=locations," + s.BaseDN

	locs := parseLDIF(t, s.Search(locBase, "(objectClass=tcsLocation)", "cn", "tcsCoordinates", "tcsDatabaseURL"))
	if len(locs) != 4 {
		t.Fatalf("want 4 locations, got %d: %v", len(locs), dns(locs))
	}
	coords := map[string][2]float64{} // lower-case cn -> lat, lon
	for _, l := range locs {
		if u := l.get("tcsDatabaseURL"); u != "" {
			t.Errorf("%s: tcsDatabaseURL %q; the example queries run against the directory itself", l.dn, u)
		}
		lat, lon, err := parseCoordinates(l.get("tcsCoordinates"))
		if err != nil {
			t.Errorf("%s: %v", l.dn, err)
			continue
		}
		coords[strings.ToLower(l.get("cn"))] = [2]float64{lat, lon}
	}
	for _, name := range []string{"japan", "texas", "california", "oregon"} {
		if _, ok := coords[name]; !ok {
			t.Errorf("location %s missing or without coordinates", name)
		}
	}

	// Oregon has no agent: its sets go to the nearest location's agent,
	// which must be California.
	if or, ok := coords["oregon"]; ok {
		nearest, best := "", math.Inf(1)
		for name, c := range coords {
			if d := greatCircleKm(or, c); name != "oregon" && d < best {
				nearest, best = name, d
			}
		}
		if nearest != "california" {
			t.Errorf("nearest location to Oregon is %s (%.0f km), want california", nearest, best)
		}
	}

	sets := parseLDIF(t, s.Search("ou=smartsets,"+s.BaseDN, "(objectClass=smartSet)"))
	if len(sets) < 9 {
		t.Fatalf("want at least 9 SmartSets, got %d: %v", len(sets), dns(sets))
	}
	routerSets := map[string]int{} // lower-case location -> sets selecting routers
	multiValued := false
	for _, set := range sets {
		name := set.get("cn")
		t.Run(name, func(t *testing.T) {
			loc := set.get("geoLocation")
			if _, ok := coords[strings.ToLower(loc)]; !ok {
				t.Errorf("geoLocation %q names no tcsLocation", loc)
			}
			if !strings.HasPrefix(name, strings.ToLower(loc)+"-") {
				t.Errorf("name %q does not start with %q", name, strings.ToLower(loc)+"-")
			}
			if o := set.get("owner"); o != "" {
				t.Errorf("owner %q; fixture sets start unmanaged", o)
			}
			if e := set.get("tcsEpoch"); e != "" {
				t.Errorf("tcsEpoch %q; fixture sets start unmanaged", e)
			}
			raw := set.get("tcsQuery")
			if raw == "" {
				t.Fatal("no tcsQuery")
			}
			q, err := parseQuery(raw)
			if err != nil {
				t.Fatalf("tcsQuery %q: %v", raw, err)
			}
			locDN := "cn=" + loc + "," + locBase
			if !strings.EqualFold(q.base, locDN) && !strings.HasSuffix(strings.ToLower(q.base), ","+strings.ToLower(locDN)) {
				t.Errorf("query base %q is not within its location %q", q.base, locDN)
			}
			rows := parseLDIF(t, searchScope(t, s, q))
			if len(rows) < 2 {
				t.Fatalf("query %q selects %d systems, want at least 2", raw, len(rows))
			}
			for _, r := range rows {
				if !strings.EqualFold(r.get("geoLocation"), loc) && r.get("geoLocation") != "" {
					t.Errorf("%s: system of %s in a set of %s", r.dn, r.get("geoLocation"), loc)
				}
				for _, a := range q.attrs {
					if len(r.all(a)) > 1 {
						multiValued = true
					}
				}
			}
			if strings.Contains(strings.ToLower(q.filter), "tcssystemtype=router") {
				routerSets[strings.ToLower(loc)]++
			}
		})
	}
	if !multiValued {
		t.Error("no query returns a multi-valued attribute it asks for")
	}
	for _, loc := range []string{"japan", "texas", "california"} {
		if routerSets[loc] == 0 {
			t.Errorf("no SmartSet of %s selects routers", loc)
		}
	}
}

// entry is one LDIF record; attribute names are kept lower-case.
type entry struct {
	dn    string
	attrs map[string][]string
}

func (e entry) all(attr string) []string { return e.attrs[strings.ToLower(attr)] }

func (e entry) get(attr string) string {
	if v := e.all(attr); len(v) > 0 {
		return v[0]
	}
	return ""
}

func dns(es []entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.dn)
	}
	return out
}

// parseLDIF reads ldapsearch -LLL -o ldif_wrap=no output.
func parseLDIF(t *testing.T, text string) []entry {
	t.Helper()
	var out []entry
	for _, rec := range strings.Split(strings.TrimSpace(text), "\n\n") {
		if strings.TrimSpace(rec) == "" {
			continue
		}
		e := entry{attrs: map[string][]string{}}
		for _, line := range strings.Split(rec, "\n") {
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			name, value, ok := strings.Cut(line, ":")
			if !ok {
				t.Fatalf("bad LDIF line %q", line)
			}
			if strings.HasPrefix(value, ":") {
				b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(value[1:]))
				if err != nil {
					t.Fatalf("bad base64 in %q: %v", line, err)
				}
				value = string(b)
			} else {
				value = strings.TrimPrefix(value, " ")
			}
			if strings.EqualFold(name, "dn") {
				e.dn = value
				continue
			}
			e.attrs[strings.ToLower(name)] = append(e.attrs[strings.ToLower(name)], value)
		}
		out = append(out, e)
	}
	return out
}

// query is a host-less RFC 4516 URL: ldap:///base?attrs?scope?filter.
type query struct {
	base, scope, filter string
	attrs               []string
}

func parseQuery(raw string) (query, error) {
	rest, ok := strings.CutPrefix(raw, "ldap:///")
	if !ok {
		return query{}, errors.New("not a host-less ldap:/// URL")
	}
	parts := strings.Split(rest, "?")
	if len(parts) != 4 {
		return query{}, fmt.Errorf("want base?attrs?scope?filter, got %d parts", len(parts))
	}
	q := query{base: parts[0], scope: parts[2], filter: parts[3]}
	if parts[1] != "" {
		q.attrs = strings.Split(parts[1], ",")
	}
	switch q.scope {
	case "base", "one", "sub":
	default:
		return query{}, fmt.Errorf("scope %q: want base, one or sub", q.scope)
	}
	if strings.Contains(raw, "%") {
		return query{}, errors.New("percent-encoding: the fixtures keep their URLs plain")
	}
	return q, nil
}

// searchScope runs q with its own scope (Server.Search always uses sub).
func searchScope(t *testing.T, s *ldaptest.Server, q query) string {
	t.Helper()
	args := []string{"-x", "-LLL", "-o", "ldif_wrap=no", "-H", s.URL, "-D", s.BindDN, "-w", s.Password,
		"-b", q.base, "-s", q.scope, q.filter}
	args = append(args, q.attrs...)
	out, err := exec.Command("ldapsearch", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ldapsearch -b %s -s %s %s: %v\n%s", q.base, q.scope, q.filter, err, out)
	}
	return string(out)
}

func parseCoordinates(s string) (lat, lon float64, err error) {
	a, b, ok := strings.Cut(s, ",")
	if !ok {
		return 0, 0, fmt.Errorf("tcsCoordinates %q: want \"<lat>,<lon>\"", s)
	}
	if lat, err = strconv.ParseFloat(strings.TrimSpace(a), 64); err != nil {
		return 0, 0, err
	}
	if lon, err = strconv.ParseFloat(strings.TrimSpace(b), 64); err != nil {
		return 0, 0, err
	}
	if math.Abs(lat) > 90 || math.Abs(lon) > 180 {
		return 0, 0, fmt.Errorf("tcsCoordinates %q out of range", s)
	}
	return lat, lon, nil
}

// greatCircleKm is the haversine distance between two lat/lon points.
func greatCircleKm(a, b [2]float64) float64 {
	const r = 6371.0
	rad := math.Pi / 180
	dLat := (b[0] - a[0]) * rad
	dLon := (b[1] - a[1]) * rad
	h := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(a[0]*rad)*math.Cos(b[0]*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * r * math.Asin(math.Sqrt(h))
}
