package ldapdir

import (
	"fmt"
	"strings"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// Control OIDs that go-ldap has no types for.
const (
	oidAssertion = "1.3.6.1.1.12"             // RFC 4528
	oidPostRead  = "1.3.6.1.1.13.2"           // RFC 4527
	oidSyncprov  = "1.3.6.1.4.1.4203.1.9.1.1" // RFC 4533 sync request
)

// assertionControl is the RFC 4528 assertion control: the operation is
// performed only if the entry matches filter, checked by the server inside
// the write. Always critical: a server that ignored it would turn a
// compare-and-swap into a blind write.
func assertionControl(filter string) (ldap.Control, error) {
	pkt, err := ldap.CompileFilter(filter)
	if err != nil {
		return nil, fmt.Errorf("assertion filter %q: %w", filter, err)
	}
	return ldap.NewControlString(oidAssertion, true, string(pkt.Bytes())), nil
}

// postReadControl is the RFC 4527 post-read request control: the server
// returns the entry as it is after the write, in the same response.
func postReadControl(attrs ...string) ldap.Control {
	seq := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "AttributeSelection")
	for _, a := range attrs {
		seq.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, a, "attribute"))
	}
	return ldap.NewControlString(oidPostRead, false, string(seq.Bytes()))
}

// parsePostRead finds the post-read response control among controls and
// decodes its SearchResultEntry. ok is false when the server sent none.
func parsePostRead(controls []ldap.Control) (e Entry, ok bool, err error) {
	for _, c := range controls {
		if c.GetControlType() != oidPostRead {
			continue
		}
		cs, isString := c.(*ldap.ControlString)
		if !isString {
			return Entry{}, false, fmt.Errorf("post-read control: unexpected type %T", c)
		}
		e, err := decodeSearchResultEntry([]byte(cs.ControlValue))
		return e, err == nil, err
	}
	return Entry{}, false, nil
}

// decodeSearchResultEntry decodes RFC 4511 SearchResultEntry ::=
// [APPLICATION 4] SEQUENCE { objectName LDAPDN, attributes PartialAttributeList }.
func decodeSearchResultEntry(data []byte) (Entry, error) {
	pkt, err := ber.DecodePacketErr(data)
	if err != nil {
		return Entry{}, fmt.Errorf("post-read entry: %w", err)
	}
	if pkt.ClassType != ber.ClassApplication || pkt.Tag != ldap.ApplicationSearchResultEntry || len(pkt.Children) != 2 {
		return Entry{}, fmt.Errorf("post-read entry: not a SearchResultEntry")
	}
	dn, ok := pkt.Children[0].Value.(string)
	if !ok {
		dn = string(pkt.Children[0].Data.Bytes())
	}
	e := Entry{DN: dn, Attrs: map[string][]string{}}
	for _, attr := range pkt.Children[1].Children {
		if len(attr.Children) != 2 {
			return Entry{}, fmt.Errorf("post-read entry: malformed attribute")
		}
		name := strings.ToLower(string(attr.Children[0].Data.Bytes()))
		for _, v := range attr.Children[1].Children {
			e.Attrs[name] = append(e.Attrs[name], string(v.Data.Bytes()))
		}
	}
	return e, nil
}
