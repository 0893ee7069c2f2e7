package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"tcs/internal/ldaptest"
	"tcs/smartset"
)

func placedAtHome(agents ...*agentProc) func(*smartset.Snapshot) error {
	return func(snap *smartset.Snapshot) error {
		if len(snap.Services) != len(agents) {
			return fmt.Errorf("%d live services, want %d", len(snap.Services), len(agents))
		}
		for _, a := range agents {
			if err := ownedBy(a.location, a.name)(snap); err != nil {
				return err
			}
		}
		return nil
	}
}

// The directory restarts under a running swarm, once briefly and once for
// longer than the lease TTL: the agents reconnect, register again where
// their leases expired, and the placement converges back with no epoch
// going down.
func TestDirectoryRestart(t *testing.T) {
	const ttl = 2 * time.Second
	s := newSwarm(t, ttl, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	hist := s.record()
	agents := []*agentProc{s.start("tcs-japan-1", "Japan"), s.start("tcs-texas-1", "Texas"), s.start("tcs-california-1", "California")}
	s.eventually(20*time.Second, "initial placement", placedAtHome(agents...))

	for _, down := range []time.Duration{500 * time.Millisecond, 2 * ttl} {
		s.srv.Restart(down)
		took := s.eventually(30*time.Second, fmt.Sprintf("placement back after %v down", down), placedAtHome(agents...))
		t.Logf("directory down %v: placement back %v after the restart", down, took.Round(time.Millisecond))
	}
	for _, a := range agents {
		select {
		case <-a.done:
			t.Errorf("%s exited during the directory restarts: %v", a.name, a.exitErr)
		default:
		}
	}
	hist.check(t)
}

// An agent started while the directory is down says so and keeps trying;
// it joins when the directory comes up. SIGTERM while it waits ends it
// cleanly.
func TestAgentWaitsForDirectory(t *testing.T) {
	s := newSwarm(t, 2*time.Second, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	s.account("tcs-texas-1") // the accounts exist before the directory goes down
	s.account("tcs-japan-1")
	s.srv.Stop()
	tx := s.start("tcs-texas-1", "Texas")
	deadline := time.Now().Add(10 * time.Second)
	for len(tx.logLines(t, "cannot reach the directory")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the agent did not report the directory being down")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if l := tx.logLines(t, "cannot reach the directory")[0]; !strings.Contains(l, s.srv.URL) {
		t.Errorf("the log line does not name the directory URL: %s", l)
	}
	s.srv.Start()
	s.eventually(20*time.Second, "Texas joins once the directory is up", ownedBy("Texas", tx.name))

	s.srv.Stop()
	jp := s.start("tcs-japan-1", "Japan")
	time.Sleep(500 * time.Millisecond)
	jp.signal(syscall.SIGTERM)
	if err := jp.wait(t, 10*time.Second); err != nil {
		t.Errorf("SIGTERM while waiting for the directory: exit %v, want 0", err)
	}
}
