package ldapdir

import (
	"context"
	"errors"
	"fmt"
	"strings"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// RFC 5805 LDAP transactions, which go-ldap has no types for.
const (
	oidTxnStart = "1.3.6.1.1.21.1" // Start Transaction extended operation
	oidTxnSpec  = "1.3.6.1.1.21.2" // Transaction Specification control
	oidTxnEnd   = "1.3.6.1.1.21.3" // End Transaction extended operation
)

// TxnMode says whether batches of writes use RFC 5805 transactions.
type TxnMode string

const (
	// TxnAuto uses transactions where the root DSE advertises both the
	// start and the end operation (slapd 2.5 with back-mdb does).
	TxnAuto TxnMode = "auto"
	// TxnOff writes one compare-and-swap at a time, pipelined.
	TxnOff TxnMode = "off"
)

// CheckTxnMode validates a configured transactions value.
func CheckTxnMode(m string) error {
	switch TxnMode(m) {
	case TxnAuto, TxnOff:
		return nil
	}
	return fmt.Errorf("ldapdir: transactions %q: want %q or %q", m, TxnAuto, TxnOff)
}

// txnSpec is the transaction specification control: critical, its value the
// transaction identifier. It is encoded here rather than with
// ldap.NewControlString because that type drops an empty value, and slapd
// 2.5 hands out an empty identifier yet refuses the control without a value.
type txnSpec struct{ id string }

func (c txnSpec) GetControlType() string { return oidTxnSpec }

func (c txnSpec) Encode() *ber.Packet {
	p := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "Control")
	p.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, oidTxnSpec, "Control Type ("+oidTxnSpec+")"))
	p.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, true, "Criticality"))
	p.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, c.id, "Control Value (transaction identifier)"))
	return p
}

func (c txnSpec) String() string {
	return fmt.Sprintf("Control Type: %s (transaction specification) Criticality: true Identifier: %q", oidTxnSpec, c.id)
}

// startTxn opens a transaction on c and returns its identifier.
func startTxn(c *ldap.Conn) (string, error) {
	res, err := c.Extended(ldap.NewExtendedRequest(oidTxnStart, nil))
	if err != nil {
		return "", err
	}
	if res.Value == nil {
		return "", nil
	}
	return string(res.Value.Data.Bytes()), nil
}

// endTxn commits (or aborts) the transaction id on c. A commit that fails
// applies nothing; the error carries the result code of the operation that
// failed (122 for a failed assertion).
//
//	txnEndReq ::= SEQUENCE { commit BOOLEAN DEFAULT TRUE, identifier OCTET STRING }
func endTxn(c *ldap.Conn, id string, commit bool) error {
	v := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "txnEndReq")
	if !commit { // DER leaves a DEFAULT value out
		v.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, false, "commit"))
	}
	v.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, id, "identifier"))
	_, err := c.Extended(ldap.NewExtendedRequest(oidTxnEnd, v))
	return err
}

// Transactions reports whether the server advertises RFC 5805 transactions
// (start and end operations in the root DSE's supportedExtension).
func (d *Dir) Transactions(ctx context.Context) (bool, error) {
	var exts []string
	err := d.do(ctx, "read the root DSE", func(c *ldap.Conn) error {
		res, err := c.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=*)", []string{"supportedExtension"}, nil))
		if err != nil {
			return err
		}
		if len(res.Entries) == 1 {
			exts = res.Entries[0].GetAttributeValues("supportedExtension")
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	var start, end bool
	for _, e := range exts {
		start = start || strings.TrimSpace(e) == oidTxnStart
		end = end || strings.TrimSpace(e) == oidTxnEnd
	}
	return start && end, nil
}

// errTxnRefused: the server would not queue an operation in a transaction
// (it answered the operation itself with an error); the batch falls back to
// single writes.
var errTxnRefused = errors.New("ldapdir: operation not queued in the transaction")
