package ldapdir

import (
	"strings"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/sirupsen/logrus"
)

// MirrorMode (two providers behind one frontend address) keeps the
// compare-and-swap exact only while every client writes to the same
// provider: an assertion is checked on the provider that receives the
// write, and replication between the two is asynchronous, so a write the
// old provider acknowledged may be missing on the new one after the
// frontend switched. What the Dir does about it:
//
//   - every connection to the provider reads the root DSE's
//     "description: tcs-server-id N" (slapd.sh init-mirror puts it there);
//     a Dir and its clones remember the last one, and a different one is a
//     switch: the hooks of OnSwitch run (the agent fences itself), and the
//     next session of every Watch of the Dir starts over without its cookie
//     (EventReset, then a full refresh), because the new provider's state
//     may be older than what the watch reported;
//   - after a switch every epoch the Dir writes is at least EpochFloor, the
//     time of the switch in seconds shifted left 20 bits: above every epoch
//     written before it, lost or not (unless a set had more than a million
//     writes a second since the previous floor), so no epoch is reused for
//     another owner and no client sees an epoch go down.

// epochFloorShift leaves room for 2^20 writes per set per second between
// two switches.
const epochFloorShift = 20

// tracker follows the provider behind a frontend.
type tracker struct {
	mu       sync.Mutex
	id       string
	floor    int64
	switches int
	hooks    []func(from, to string)
}

// observe records the provider id a new connection reached ("" = the server
// does not say: not a MirrorMode provider).
func (t *tracker) observe(id string, log logrus.FieldLogger) {
	if t == nil || id == "" {
		return
	}
	t.mu.Lock()
	from := t.id
	if from == id || from == "" {
		t.id = id
		t.mu.Unlock()
		return
	}
	t.id = id
	t.switches++
	t.floor = max(t.floor+1, time.Now().Unix()<<epochFloorShift)
	hooks := append([]func(from, to string){}, t.hooks...)
	t.mu.Unlock()
	log.WithFields(logrus.Fields{"from": from, "to": id}).Warn("the directory frontend switched to the other provider")
	for _, h := range hooks {
		h(from, id)
	}
}

func (t *tracker) epochFloor() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.floor
}

func (t *tracker) switchCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.switches
}

// OnSwitch registers f to run when a connection of d or of its clones (the
// read side included) reaches another MirrorMode provider than the one
// before. f runs synchronously, before the connection that saw the switch
// is used: it must not block.
func (d *Dir) OnSwitch(f func(from, to string)) {
	d.track.mu.Lock()
	defer d.track.mu.Unlock()
	d.track.hooks = append(d.track.hooks, f)
}

// Provider returns the server id of the MirrorMode provider d's last
// connection reached, "" when the server names none.
func (d *Dir) Provider() string {
	d.track.mu.Lock()
	defer d.track.mu.Unlock()
	return d.track.id
}

// EpochFloor is the least epoch d writes (0 before any switch).
func (d *Dir) EpochFloor() int64 { return d.track.epochFloor() }

// sibling is a new Dir with cfg that shares d's provider tracking and,
// for the read side, its servers.
func (d *Dir) sibling(cfg Config) *Dir {
	s := newDir(cfg, d.log)
	s.track = d.track
	s.writes = d.writes
	s.servers = d.servers
	return s
}

// providerID reads the tcs-server-id of the root DSE on conn, "" when there
// is none or it cannot be read.
func providerID(conn *ldap.Conn, timeout, after time.Duration) string {
	conn.SetTimeout(timeout)
	defer conn.SetTimeout(after)
	res, err := conn.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"description"}, nil))
	if err != nil || len(res.Entries) == 0 {
		return ""
	}
	for _, v := range res.Entries[0].GetAttributeValues("description") {
		if id, ok := strings.CutPrefix(v, "tcs-server-id "); ok {
			return id
		}
	}
	return ""
}
