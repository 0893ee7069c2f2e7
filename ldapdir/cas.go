package ldapdir

import (
	"context"
	"fmt"
	"strconv"

	"github.com/go-ldap/ldap/v3"

	"tcs/smartset"
)

// epochFilter is the assertion that the set is still at epoch: (tcsEpoch=N),
// or for epoch 0 "never owned": no tcsEpoch at all (or an explicit 0).
func epochFilter(epoch int64) string {
	if epoch == 0 {
		return "(|(tcsEpoch=0)(!(tcsEpoch=*)))"
	}
	return "(tcsEpoch=" + strconv.FormatInt(epoch, 10) + ")"
}

// Claim makes owner (a service DN) the owner of set name, which the caller
// read at epoch: one modify, asserting the epoch, that replaces owner, sets
// tcsEpoch to epoch+1 and clears any tcsReleaseRequest. It returns the set as
// written (RFC 4527 post-read). A lost race returns ErrConflict.
func (d *Dir) Claim(ctx context.Context, name string, epoch int64, owner string) (smartset.Set, error) {
	return d.setOwner(ctx, "claim", name, epoch, owner)
}

// Transfer hands set name, read at epoch, to the service to: the same single
// compare-and-swap as Claim, named for the owner's side of a handoff.
func (d *Dir) Transfer(ctx context.Context, name string, epoch int64, to string) (smartset.Set, error) {
	return d.setOwner(ctx, "transfer", name, epoch, to)
}

// Release clears the owner of set name, read at epoch (epoch+1, request
// cleared): the set becomes an orphan for the swarm to claim.
func (d *Dir) Release(ctx context.Context, name string, epoch int64) (smartset.Set, error) {
	return d.setOwner(ctx, "release", name, epoch, "")
}

func (d *Dir) setOwner(ctx context.Context, what, name string, epoch int64, owner string) (smartset.Set, error) {
	assert, err := assertionControl(epochFilter(epoch))
	if err != nil {
		return smartset.Set{}, err
	}
	dn := d.SetDN(name)
	req := ldap.NewModifyRequest(dn, []ldap.Control{assert, postReadControl(setAttrs...)})
	if owner == "" {
		req.Replace("owner", nil)
	} else {
		req.Replace("owner", []string{owner})
	}
	w := Write{Set: smartset.Set{Name: name, Epoch: epoch}, Kind: SetOwner, To: owner, floor: d.track.epochFloor()}
	req.Replace("tcsEpoch", []string{strconv.FormatInt(w.nextEpoch(), 10)})
	req.Replace("tcsReleaseRequest", nil)
	var res *ldap.ModifyResult
	err = d.do(ctx, fmt.Sprintf("%s %s at epoch %d", what, dn, epoch), func(c *ldap.Conn) error {
		var err error
		res, err = c.ModifyWithResult(req)
		return err
	})
	if err != nil {
		return smartset.Set{}, err
	}
	return d.afterWrite(ctx, name, res)
}

// RequestRelease writes tcsReleaseRequest: requester on set name, asserting
// it is still at epoch (the owner has not changed since it was read). The
// owner answers with Transfer; the epoch does not move until then.
func (d *Dir) RequestRelease(ctx context.Context, name string, epoch int64, requester string) error {
	return d.setRequest(ctx, "request release of", name, epoch, requester)
}

// ClearRequest removes tcsReleaseRequest from set name at epoch (the owner
// rejects a request from an agent that is gone or not better placed).
func (d *Dir) ClearRequest(ctx context.Context, name string, epoch int64) error {
	return d.setRequest(ctx, "clear request on", name, epoch, "")
}

func (d *Dir) setRequest(ctx context.Context, what, name string, epoch int64, requester string) error {
	assert, err := assertionControl(epochFilter(epoch))
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

// afterWrite returns the set as the post-read control shows it, or reads it
// when the server sent no post-read.
func (d *Dir) afterWrite(ctx context.Context, name string, res *ldap.ModifyResult) (smartset.Set, error) {
	if res != nil {
		e, ok, err := parsePostRead(res.Controls)
		if err == nil && ok {
			return ToSet(e)
		}
	}
	return d.Set(ctx, name)
}
