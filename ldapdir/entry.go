package ldapdir

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"tcs/smartset"
)

// Entry is one directory entry: its DN and attributes, names lower-cased.
type Entry struct {
	DN    string
	UUID  string // entryUUID when known (watch events)
	Attrs map[string][]string
}

// Get returns the first value of attribute name, "" when absent.
func (e Entry) Get(name string) string {
	if v := e.Attrs[strings.ToLower(name)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Values returns every value of attribute name.
func (e Entry) Values(name string) []string { return e.Attrs[strings.ToLower(name)] }

// HasClass reports whether the entry has objectClass class.
func (e Entry) HasClass(class string) bool {
	for _, c := range e.Values("objectclass") {
		if strings.EqualFold(c, class) {
			return true
		}
	}
	return false
}

func fromLDAP(le *ldap.Entry) Entry {
	e := Entry{DN: le.DN, Attrs: make(map[string][]string, len(le.Attributes))}
	for _, a := range le.Attributes {
		name := strings.ToLower(a.Name)
		e.Attrs[name] = append(e.Attrs[name], a.Values...)
	}
	if u := e.Get("entryuuid"); u != "" {
		e.UUID = u
	}
	return e
}

// Attributes read for each kind of entry.
var (
	setAttrs      = []string{"objectClass", "cn", "geoLocation", "owner", "tcsEpoch", "tcsQuery", "tcsReleaseRequest", "description", "entryUUID", "entryCSN"}
	serviceAttrs  = []string{"objectClass", "cn", "geoLocation", "tcsEndpoint", "tcsCapacity", "tcsIncarnation", "description", "entryTtl", "entryUUID"}
	locationAttrs = []string{"objectClass", "cn", "tcsCoordinates", "tcsDatabaseURL", "description", "entryUUID"}
)

// ToSet converts a smartSet entry.
func ToSet(e Entry) (smartset.Set, error) {
	s := smartset.Set{
		DN:             e.DN,
		Name:           e.Get("cn"),
		Location:       e.Get("geolocation"),
		Owner:          e.Get("owner"),
		Query:          e.Get("tcsquery"),
		ReleaseRequest: e.Get("tcsreleaserequest"),
		Description:    e.Get("description"),
		UUID:           e.UUID,
		CSN:            e.Get("entrycsn"),
	}
	if s.Name == "" {
		s.Name = rdnValue(e.DN)
	}
	if v := e.Get("tcsepoch"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return s, fmt.Errorf("%s: tcsEpoch %q is not an integer", e.DN, v)
		}
		s.Epoch = n
	}
	return s, nil
}

// ToService converts a tcsService entry. A tcsCapacity that is not a
// non-negative integer, or a tcsEndpoint that is not an absolute http or
// https URL, is reported in the error (naming the entry) and left out of
// the service, which is returned all the same: no capacity limit, no
// endpoint. An agent's lease is never ignored for a bad value written by
// hand into it, which would make its sets look orphaned.
func ToService(e Entry) (smartset.Service, error) {
	s := smartset.Service{
		DN:          e.DN,
		Name:        e.Get("cn"),
		Location:    e.Get("geolocation"),
		Endpoint:    e.Get("tcsendpoint"),
		Incarnation: e.Get("tcsincarnation"),
		UUID:        e.UUID,
	}
	if s.Name == "" {
		s.Name = rdnValue(e.DN)
	}
	var bad []string
	if v := e.Get("tcscapacity"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			bad = append(bad, fmt.Sprintf("tcsCapacity %q is not a non-negative integer (taken as no limit)", v))
		} else {
			s.Capacity = n
		}
	}
	if s.Endpoint != "" {
		if err := checkEndpoint(s.Endpoint); err != nil {
			bad = append(bad, fmt.Sprintf("tcsEndpoint %q %v (requests are not redirected to it)", s.Endpoint, err))
			s.Endpoint = ""
		}
	}
	if v := e.Get("entryttl"); v != "" {
		s.TTL, _ = strconv.Atoi(v)
	}
	if len(bad) > 0 {
		return s, fmt.Errorf("%s: %s", e.DN, strings.Join(bad, "; "))
	}
	return s, nil
}

// checkEndpoint tells why raw is not an absolute http(s) base URL.
func checkEndpoint(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return errors.New("does not parse as a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("is not an http or https URL")
	case u.Host == "" || u.Hostname() == "":
		return errors.New("has no host")
	case u.RawQuery != "" || u.Fragment != "":
		return errors.New("has a query or fragment")
	}
	return nil
}

// ToLocation converts a tcsLocation entry. Bad coordinates are an error
// naming the entry; the location is returned without coordinates, so its
// distance to everything is unknown.
func ToLocation(e Entry) (smartset.Location, error) {
	l := smartset.Location{
		DN:          e.DN,
		Name:        e.Get("cn"),
		DatabaseURL: e.Get("tcsdatabaseurl"),
	}
	if l.Name == "" {
		l.Name = rdnValue(e.DN)
	}
	if v := e.Get("tcscoordinates"); v != "" {
		lat, lon, err := smartset.ParseCoordinates(v)
		if err != nil {
			return l, fmt.Errorf("%s: tcsCoordinates: %w", e.DN, err)
		}
		l.HasCoordinates, l.Lat, l.Lon = true, lat, lon
	}
	return l, nil
}

// rdnValue returns the value of the first RDN of dn ("" when unparsable).
func rdnValue(dn string) string {
	d, err := ldap.ParseDN(dn)
	if err != nil || len(d.RDNs) == 0 || len(d.RDNs[0].Attributes) == 0 {
		return ""
	}
	return d.RDNs[0].Attributes[0].Value
}

// RDNValue returns the value of the first RDN of dn: the cn of a service or
// set DN ("" when dn does not parse).
func RDNValue(dn string) string { return rdnValue(dn) }
