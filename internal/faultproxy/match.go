package faultproxy

import (
	"slices"
	"strconv"
	"time"
)

// Well-known OIDs the predefined matches look for.
const (
	RefreshOID     = "1.3.6.1.4.1.1466.101.119.1" // RFC 2589 dds Refresh extended operation
	SyncRequestOID = "1.3.6.1.4.1.4203.1.9.1.1"   // RFC 4533 sync request control
	StartTLSOID    = "1.3.6.1.4.1.1466.20037"
)

// Op is an LDAP protocolOp tag ([APPLICATION n]).
type Op int

// The LDAP operations (RFC 4511 section 4.2 to 4.14).
const (
	OpBind           Op = 0
	OpBindResponse   Op = 1
	OpUnbind         Op = 2
	OpSearch         Op = 3
	OpSearchEntry    Op = 4
	OpSearchDone     Op = 5
	OpModify         Op = 6
	OpModifyResponse Op = 7
	OpAdd            Op = 8
	OpAddResponse    Op = 9
	OpDelete         Op = 10
	OpDeleteResponse Op = 11
	OpModDN          Op = 12
	OpModDNResponse  Op = 13
	OpCompare        Op = 14
	OpCompareResp    Op = 15
	OpAbandon        Op = 16
	OpSearchRef      Op = 19
	OpExtended       Op = 23
	OpExtendedResp   Op = 24
	OpIntermediate   Op = 25
	OpUnknown        Op = -1
)

var opNames = map[Op]string{
	OpBind: "bind", OpBindResponse: "bindResponse", OpUnbind: "unbind", OpSearch: "search",
	OpSearchEntry: "searchEntry", OpSearchDone: "searchDone", OpModify: "modify",
	OpModifyResponse: "modifyResponse", OpAdd: "add", OpAddResponse: "addResponse",
	OpDelete: "delete", OpDeleteResponse: "deleteResponse", OpModDN: "modDN",
	OpModDNResponse: "modDNResponse", OpCompare: "compare", OpCompareResp: "compareResponse",
	OpAbandon: "abandon", OpSearchRef: "searchReference", OpExtended: "extended",
	OpExtendedResp: "extendedResponse", OpIntermediate: "intermediate", OpUnknown: "unknown",
}

func (o Op) String() string {
	if s, ok := opNames[o]; ok {
		return s
	}
	return "op" + strconv.Itoa(int(o))
}

// final reports whether a response with this op ends its request (so the
// request's entry can be forgotten).
func (o Op) final() bool {
	switch o {
	case OpSearchEntry, OpSearchRef, OpIntermediate, OpUnknown:
		return false
	}
	return true
}

// Request is one request a client sent on a connection.
type Request struct {
	MessageID int64
	Op        Op
	OID       string   // extended requests: requestName
	Controls  []string // control OIDs
}

// RequestMatch selects requests (for HoldReplies).
type RequestMatch func(Request) bool

// Refresh matches the dds Refresh extended operation (lease renewals).
func Refresh(r Request) bool { return r.Op == OpExtended && r.OID == RefreshOID }

// Extended matches extended requests with the given OID.
func Extended(oid string) RequestMatch {
	return func(r Request) bool { return r.Op == OpExtended && r.OID == oid }
}

// IsOp matches requests with the given operation.
func IsOp(op Op) RequestMatch { return func(r Request) bool { return r.Op == op } }

// Info is what one connection has carried so far.
type Info struct {
	ID       int // 1, 2, ... in accept order
	Opened   time.Time
	Ops      []Op     // distinct client operations, first-seen order
	Extended []string // distinct extended request OIDs
	Controls []string // distinct request control OIDs
	Closed   bool
}

// Sent reports whether the client sent op on this connection.
func (i Info) Sent(op Op) bool { return slices.Contains(i.Ops, op) }

// SentExtended reports whether the client sent an extended request oid.
func (i Info) SentExtended(oid string) bool { return slices.Contains(i.Extended, oid) }

// SentControl reports whether the client sent a request with control oid.
func (i Info) SentControl(oid string) bool { return slices.Contains(i.Controls, oid) }

// Kind is "watch" (a syncrepl search), "lease" (a Refresh), both joined by
// "+", or "other".
func (i Info) Kind() string {
	var k []string
	if Watch(i) {
		k = append(k, "watch")
	}
	if Lease(i) {
		k = append(k, "lease")
	}
	if len(k) == 0 {
		return "other"
	}
	if len(k) == 1 {
		return k[0]
	}
	return k[0] + "+" + k[1]
}

func (i *Info) record(r Request) {
	if !slices.Contains(i.Ops, r.Op) {
		i.Ops = append(i.Ops, r.Op)
	}
	if r.OID != "" && !slices.Contains(i.Extended, r.OID) {
		i.Extended = append(i.Extended, r.OID)
	}
	for _, c := range r.Controls {
		if !slices.Contains(i.Controls, c) {
			i.Controls = append(i.Controls, c)
		}
	}
}

func (i Info) clone() Info {
	i.Ops = slices.Clone(i.Ops)
	i.Extended = slices.Clone(i.Extended)
	i.Controls = slices.Clone(i.Controls)
	return i
}

// Match selects connections by what they have carried.
type Match func(Info) bool

// All matches every connection.
func All(Info) bool { return true }

// Lease matches connections that sent a Refresh extended operation.
func Lease(i Info) bool { return i.SentExtended(RefreshOID) }

// Watch matches connections that sent a search with the sync request control.
func Watch(i Info) bool { return i.Sent(OpSearch) && i.SentControl(SyncRequestOID) }

// Not inverts m.
func Not(m Match) Match { return func(i Info) bool { return !m(i) } }

// Any matches connections any of ms matches.
func Any(ms ...Match) Match {
	return func(i Info) bool {
		for _, m := range ms {
			if m(i) {
				return true
			}
		}
		return false
	}
}

// IDs matches the connections with these IDs (a snapshot: Conns tells
// which exist now).
func IDs(ids ...int) Match { return func(i Info) bool { return slices.Contains(ids, i.ID) } }
