package httpapi

import (
	"context"
	"errors"

	"tcs/tablecache"
)

// SetInfo is one SmartSet as the swarm sees it.
type SetInfo struct {
	Name, Location string
	Owner          string // owner's service name (cn), "" when none
	OwnerDN        string
	OwnerEndpoint  string // owner's tcsEndpoint, "" when unknown or owner not live
	OwnerLive      bool
	Epoch          int64
	State          string // smartset.StateOptimal / StateNonOptimal / StatePending / StateOrphaned
}

// ErrUnknownSet is what Swarm.Set returns (wrapped or not) for a name that
// names no SmartSet.
var ErrUnknownSet = errors.New("httpapi: no such SmartSet")

// Swarm is what the HTTP API needs to know about the swarm and this agent.
// The agent implements it; every method may be called concurrently.
type Swarm interface {
	Name() string                                          // this agent's name
	Sets(ctx context.Context) ([]SetInfo, error)           // every set (may read the directory)
	Set(ctx context.Context, name string) (SetInfo, error) // one set; ErrUnknownSet (wrapped ok) when none
	Owns(name string) (epoch int64, ok bool)               // this agent owns it now and is not fenced
	Fenced() bool                                          // lease not renewed in time: owns nothing
	Ready() (ok bool, why string)                          // registered and watch in persist phase
}

// Tables holds the cached tables of the sets this agent owns. Get is called
// on every table request and should be cheap.
type Tables interface {
	Get(name string) (tablecache.Table, bool)
}
