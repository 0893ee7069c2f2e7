package agent

import (
	"sync"

	"tcs/httpapi"
	"tcs/smartset"
)

// The agent is the httpapi.Standing of its HTTP server: stale reads
// (?stale=1) of a fenced agent serve the tables of the sets its last view
// says it owns, and blocking reads wake when it is fenced or unfenced.
var _ httpapi.Standing = (*Agent)(nil)

// LastOwned reports the epoch of set name when the agent's view says this
// agent owns it, fenced or not: what a fenced agent may still serve as a
// stale read. Unlike Owns it does not check the lease.
func (a *Agent) LastOwned(name string) (int64, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.v.snap.Sets[smartset.Key(name)]
	if !ok || s.Owner == "" || !smartset.SameDN(s.Owner, a.selfDN) {
		return 0, false
	}
	return s.Epoch, true
}

// FenceChanged returns a channel closed at the next fence or unfence.
func (a *Agent) FenceChanged() <-chan struct{} { return a.standing.next() }

// broadcast is a channel closed at every fire and replaced by a new one:
// any number of waiters, no goroutine. The zero value is ready.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

// next returns the channel the next fire closes.
func (b *broadcast) next() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

// fire wakes everyone waiting on next.
func (b *broadcast) fire() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
}
