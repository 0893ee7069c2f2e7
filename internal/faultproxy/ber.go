package faultproxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	ber "github.com/go-asn1-ber/asn1-ber"
)

// maxMessage bounds one framed LDAP message (slapd's own default limit on
// incoming PDUs is far smaller; responses are larger but not this large in tests).
const maxMessage = 256 << 20

// errNotLDAP marks a stream that does not start an LDAP message here.
var errNotLDAP = errors.New("not an LDAP message")

// frame is one unit forwarded in one direction: a whole LDAP message, or a
// raw chunk once the direction stopped looking like LDAP.
type frame struct {
	raw   []byte
	ldap  bool
	msgID int64
	op    Op
}

// readFrame reads the next LDAP message from r, or, when the stream does
// not start one (raw already set, or the first byte is not a SEQUENCE), a
// raw chunk of what is available.
func readFrame(r *bufio.Reader, raw bool) (frame, error) {
	if !raw {
		b, err := r.Peek(1)
		if err != nil {
			return frame{}, err
		}
		if b[0] == 0x30 {
			return readMessage(r)
		}
	}
	buf := make([]byte, 32<<10)
	n, err := r.Read(buf)
	if n > 0 {
		return frame{raw: buf[:n]}, nil
	}
	return frame{}, err
}

// readMessage reads one BER SEQUENCE and parses its messageID and
// protocolOp tag.
func readMessage(r *bufio.Reader) (frame, error) {
	head := make([]byte, 2, 16)
	if _, err := io.ReadFull(r, head); err != nil {
		return frame{}, err
	}
	length := int(head[1])
	if head[1]&0x80 != 0 {
		n := int(head[1] & 0x7f)
		if n == 0 || n > 4 {
			return frame{}, fmt.Errorf("faultproxy: unsupported BER length form 0x%02x", head[1])
		}
		lb := make([]byte, n)
		if _, err := io.ReadFull(r, lb); err != nil {
			return frame{}, err
		}
		head = append(head, lb...)
		length = 0
		for _, b := range lb {
			length = length<<8 | int(b)
		}
	}
	if length > maxMessage {
		return frame{}, fmt.Errorf("faultproxy: LDAP message of %d bytes exceeds %d", length, maxMessage)
	}
	msg := make([]byte, len(head)+length)
	copy(msg, head)
	if _, err := io.ReadFull(r, msg[len(head):]); err != nil {
		return frame{}, err
	}
	f := frame{raw: msg, ldap: true, op: OpUnknown}
	body := msg[len(head):]
	// messageID INTEGER
	tag, val, rest, ok := tlv(body)
	if !ok || tag != 0x02 {
		return f, nil
	}
	for _, b := range val {
		f.msgID = f.msgID<<8 | int64(b)
	}
	// protocolOp [APPLICATION n]
	if len(rest) > 0 && rest[0]&0xc0 == 0x40 {
		f.op = Op(rest[0] & 0x1f)
	}
	return f, nil
}

// tlv splits one BER element (single-byte tag) off b.
func tlv(b []byte) (tag byte, val, rest []byte, ok bool) {
	if len(b) < 2 {
		return 0, nil, nil, false
	}
	tag = b[0]
	l, off := int(b[1]), 2
	if b[1]&0x80 != 0 {
		n := int(b[1] & 0x7f)
		if n == 0 || n > 4 || len(b) < 2+n {
			return 0, nil, nil, false
		}
		l = 0
		for _, x := range b[2 : 2+n] {
			l = l<<8 | int(x)
		}
		off = 2 + n
	}
	if len(b) < off+l {
		return 0, nil, nil, false
	}
	return tag, b[off : off+l], b[off+l:], true
}

// parseRequest reads what a request carries: its extended OID and the OIDs
// of its controls. Malformed requests give what could be read.
func parseRequest(f frame) Request {
	req := Request{MessageID: f.msgID, Op: f.op}
	pkt, err := ber.DecodePacketErr(f.raw)
	if err != nil || len(pkt.Children) < 2 {
		return req
	}
	op := pkt.Children[1]
	if f.op == OpExtended {
		for _, c := range op.Children {
			if c.ClassType == ber.ClassContext && c.Tag == 0 {
				req.OID = c.Data.String()
				break
			}
		}
	}
	if len(pkt.Children) > 2 {
		ctl := pkt.Children[2]
		if ctl.ClassType == ber.ClassContext && ctl.Tag == 0 {
			for _, c := range ctl.Children {
				if len(c.Children) > 0 {
					req.Controls = append(req.Controls, string(c.Children[0].ByteValue))
					if req.Controls[len(req.Controls)-1] == "" {
						req.Controls[len(req.Controls)-1] = c.Children[0].Data.String()
					}
				}
			}
		}
	}
	return req
}
