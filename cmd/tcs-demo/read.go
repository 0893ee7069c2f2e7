package main

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"tcs/client"
)

// The third use of tcs: clients read tables. These steps read a Texas set
// through the Japan agent (the 307 to the set's owner is followed by the
// client package) and make a blocking read that returns when a Texas
// system entry changes.

// demoSet is the Texas set the demo reads.
const demoSet = "texas-routers"

// readThroughJapan prints demoSet's table as read through the Japan agent:
// its rows, owner, epoch and index.
func (d *demo) readThroughJapan(ctx context.Context, when string) (client.Table, error) {
	c, err := client.New([]string{fmt.Sprintf("http://127.0.0.1:%d", d.ports["tcs-japan-1"])}, client.Options{})
	if err != nil {
		return client.Table{}, err
	}
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	t, err := c.Get(rctx, demoSet)
	if err != nil {
		return client.Table{}, fmt.Errorf("reading %s through tcs-japan-1 %s: %w", demoSet, when, err)
	}
	d.say("%s through tcs-japan-1 %s: %d rows, owner %s, epoch %d, TCS-Index %d (answered by %s)",
		demoSet, when, len(t.Rows), t.Owner, t.Epoch, t.Index, strings.TrimSuffix(t.Agent, "/v1/smartsets/"+demoSet))
	for _, row := range t.Rows {
		fmt.Fprintf(d.out, "%10s  %s\n", "", rowText(t, row))
	}
	return t, nil
}

// rowText is one row as "cn=… tcsOSType=… …".
func rowText(t client.Table, row [][]string) string {
	var parts []string
	for j, col := range t.Columns {
		if j == 0 || j >= len(row) {
			continue
		}
		parts = append(parts, col+"="+strings.Join(row[j], ";"))
	}
	return strings.Join(parts, " ")
}

// blockingRead starts a blocking read of demoSet through the Japan agent
// (?index= of the current table), changes a Texas system entry, and
// prints how soon after the change the read returned and what it says.
func (d *demo) blockingRead(ctx context.Context, cur client.Table) error {
	c, err := client.New([]string{fmt.Sprintf("http://127.0.0.1:%d", d.ports["tcs-japan-1"])}, client.Options{Wait: 30 * time.Second})
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	next := make(chan client.Table, 1)
	errc := make(chan error, 1)
	go func() {
		for t, err := range c.Watch(wctx, demoSet) {
			if err != nil {
				errc <- err
				return
			}
			if t.Index > cur.Index {
				next <- t
				return
			}
		}
		errc <- fmt.Errorf("the blocking read of %s ended: %w", demoSet, wctx.Err())
	}()
	time.Sleep(time.Second) // the read is waiting at the owner now
	d.say("a blocking read of %s waits at its owner (?index=%d&wait=30s); now a Texas router changes", demoSet, cur.Index)
	const change = "dn: cn=tx-rtr-01,cn=Texas,ou=locations,dc=example,dc=org\nchangetype: modify\nreplace: tcsOSType\ntcsOSType: IOS-XE\n"
	cmd := exec.CommandContext(ctx, "ldapmodify", "-x", "-H", d.url, "-D", "cn=admin,dc=example,dc=org", "-w", "secret")
	cmd.Stdin = strings.NewReader(change)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ldapmodify: %v\n%s", err, out)
	}
	changed := time.Now()
	d.say("ldapmodify cn=tx-rtr-01: tcsOSType IOS -> IOS-XE")
	select {
	case t := <-next:
		d.say("blocking read returned %v after the change: TCS-Index %d -> %d, owner %s, epoch %d",
			since(changed), cur.Index, t.Index, t.Owner, t.Epoch)
		for _, row := range t.Rows {
			fmt.Fprintf(d.out, "%10s  %s\n", "", rowText(t, row))
		}
		return nil
	case err := <-errc:
		return err
	}
}

// readAfterTakeover reads demoSet through Japan again after the takeover:
// the same rows from the new owner at a higher epoch; then a blocking read.
func (d *demo) readAfterTakeover(ctx context.Context, before client.Table) error {
	after, err := d.readThroughJapan(ctx, "after the takeover")
	if err != nil {
		return err
	}
	if after.Epoch <= before.Epoch || after.Owner == before.Owner || len(after.Rows) != len(before.Rows) {
		return fmt.Errorf("%s after the takeover: owner %s epoch %d with %d rows; before: owner %s epoch %d with %d rows",
			demoSet, after.Owner, after.Epoch, len(after.Rows), before.Owner, before.Epoch, len(before.Rows))
	}
	d.say("same %d rows, new owner %s, epoch %d > %d: a client can tell the new owner's answers from the old one's",
		len(after.Rows), after.Owner, after.Epoch, before.Epoch)
	return d.blockingRead(ctx, after)
}
