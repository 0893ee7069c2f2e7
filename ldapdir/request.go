package ldapdir

import (
	"context"
	"fmt"
	"strconv"

	"github.com/go-ldap/ldap/v3"

	"tcs/smartset"
)

// requestFilter asserts the set is still at epoch and carries the release
// request seen ("" for none).
func requestFilter(epoch int64, seen string) string {
	if seen == "" {
		return "(&" + epochFilter(epoch) + "(!(tcsReleaseRequest=*)))"
	}
	return "(&" + epochFilter(epoch) + "(tcsReleaseRequest=" + ldap.EscapeFilter(seen) + "))"
}

// RequestReleaseOver is RequestRelease that also asserts the request the
// caller saw on the set (seen; "" for none). A requester deciding on a stale
// view cannot overwrite a request another agent wrote since — which may be
// better placed — and gets ErrConflict instead: it re-reads and decides
// again.
func (d *Dir) RequestReleaseOver(ctx context.Context, name string, epoch int64, seen, requester string) error {
	return d.writeRequest(ctx, "request release of", name, epoch, seen, requester)
}

// ClearRequestOf is ClearRequest that asserts the request being rejected is
// still seen: a newer request, from an agent the owner has not judged,
// stays.
func (d *Dir) ClearRequestOf(ctx context.Context, name string, epoch int64, seen string) error {
	return d.writeRequest(ctx, "clear request on", name, epoch, seen, "")
}

func (d *Dir) writeRequest(ctx context.Context, what, name string, epoch int64, seen, requester string) error {
	assert, err := assertionControl(requestFilter(epoch, seen))
	if err != nil {
		return err
	}
	dn := d.SetDN(name)
	req := ldap.NewModifyRequest(dn, []ldap.Control{assert})
	if requester == "" {
		req.Replace("tcsReleaseRequest", nil)
	} else {
		req.Replace("tcsReleaseRequest", []string{requester})
	}
	return d.do(ctx, fmt.Sprintf("%s %s at epoch %d", what, dn, epoch), func(c *ldap.Conn) error {
		return c.Modify(req)
	})
}

// TransferRequested hands set name, read at epoch with a release request
// from to, over to it — asserting the request is still to's. An owner
// answering a request it read from a stale view cannot hand the set to an
// agent whose request a better-placed one has since replaced: it gets
// ErrConflict, re-reads and answers the request that is there.
func (d *Dir) TransferRequested(ctx context.Context, name string, epoch int64, to string) (smartset.Set, error) {
	assert, err := assertionControl(requestFilter(epoch, to))
	if err != nil {
		return smartset.Set{}, err
	}
	dn := d.SetDN(name)
	req := ldap.NewModifyRequest(dn, []ldap.Control{assert, postReadControl(setAttrs...)})
	req.Replace("owner", []string{to})
	req.Replace("tcsEpoch", []string{strconv.FormatInt(epoch+1, 10)})
	req.Replace("tcsReleaseRequest", nil)
	var res *ldap.ModifyResult
	err = d.do(ctx, fmt.Sprintf("transfer %s at epoch %d to its requester", dn, epoch), func(c *ldap.Conn) error {
		var err error
		res, err = c.ModifyWithResult(req)
		return err
	})
	if err != nil {
		return smartset.Set{}, err
	}
	return d.afterWrite(ctx, name, res)
}
