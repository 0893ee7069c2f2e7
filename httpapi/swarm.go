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

// Changes is what blocking reads wait on. Tables that implement it
// (tablecache.Cache does) make ?index= reads wait; without it they answer
// at once.
type Changes interface {
	// Changed returns a channel closed at the next change of set name's
	// table (loaded, new rows, new epoch, failed, dropped). Taken before
	// looking at the table, it misses nothing.
	Changed(name string) <-chan struct{}
}

// Standing is what stale reads and waiting requests need to know about
// this agent beyond Swarm. An agent that implements it (the agent does)
// answers ?stale=1 reads while fenced, and wakes waiting requests when it
// is fenced or unfenced.
type Standing interface {
	// LastOwned reports the epoch of set name when this agent owned it in
	// its last view of the directory, fenced or not.
	LastOwned(name string) (epoch int64, ok bool)
	// FenceChanged returns a channel closed at the next fence or unfence.
	FenceChanged() <-chan struct{}
}

// SwarmChanges is what blocking reads of the list of sets wait on (the
// status page implements it: statuspage.Page.Changed).
type SwarmChanges interface {
	// Changed returns a channel closed at the next change of the swarm's
	// sets, owners or agents, and a function to call when done waiting.
	Changed() (<-chan struct{}, func())
}
