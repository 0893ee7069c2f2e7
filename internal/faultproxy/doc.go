// Package faultproxy is a fault-injecting TCP proxy for LDAP, for tests.
//
// A Proxy listens on a free loopback port and forwards every connection to
// one target (a slapd). It frames the LDAP messages it carries (BER:
// SEQUENCE { messageID, protocolOp, [0] controls }) in both directions, so
// each connection knows what it has carried: the operations its client sent,
// the OIDs of its extended requests and of the controls on its requests.
// That is how a test names a connection without knowing its port: Lease is a
// connection that sent the RFC 2589 Refresh extended operation, Watch one
// that sent a search with the RFC 4533 sync request control.
//
// Faults are rules: each applies to every connection its Match accepts,
// those open now and those opened or reclassified later, until Remove. A
// rule is checked per message, so a fresh connection that sends its first
// Refresh becomes a Lease connection and a Freeze(Lease, Both) holds that
// very Refresh.
//
//   - Freeze holds the messages of one or both directions (the bytes are read
//     and kept, in order); Remove releases them in order.
//   - BlackHole drops them; the connection stays open.
//   - Delay delivers each message no earlier than the delay after it arrived.
//   - Reset closes both sides abruptly (SO_LINGER 0, so the peers get RST).
//   - Refuse resets every new connection at accept.
//   - HoldReplies holds only the replies to requests a RequestMatch accepts
//     (e.g. every response to a Refresh), matched by messageID, while the
//     other replies on the same connection flow.
//
// Apart from HoldReplies, which reorders by design (LDAP clients match
// replies by messageID), each direction of a connection stays in order.
// Close stops everything and waits for every goroutine.
//
// A direction that stops looking like LDAP (StartTLS, or another protocol)
// is forwarded as raw chunks from then on: faults still apply to it, but it
// is no longer classified.
package faultproxy
