package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sirupsen/logrus"

	"tcs/config"
	"tcs/ldapdir"
	"tcs/smartset"
)

// status is `tcs-agent status`: one table of every set read from the
// directory; with watch, redrawn every second until ctx ends.
func status(ctx context.Context, cfg *config.Config, out io.Writer, watch bool) error {
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	dir, err := openDir(cfg, quiet)
	if err != nil {
		return err
	}
	defer dir.Close()
	for {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		snap, err := dir.Snapshot(rctx)
		cancel()
		if snap == nil {
			if !watch || ctx.Err() != nil {
				return err
			}
			fmt.Fprintf(out, "\033[H\033[2J%s  directory unreachable: %v\n", time.Now().Format("15:04:05"), err)
		} else {
			if watch {
				fmt.Fprintf(out, "\033[H\033[2J%s  %s  (refreshing every second, Ctrl-C to stop)\n\n", time.Now().Format("15:04:05"), cfg.Directory.URL)
			}
			writeStatus(out, snap)
			if err != nil {
				fmt.Fprintf(out, "warning: %v\n", err)
			}
		}
		if !watch {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// writeStatus prints the status table: every set with its location, owner,
// the owner's location, epoch and placement state, then a summary line.
func writeStatus(out io.Writer, snap *smartset.Snapshot) {
	sets := make([]smartset.Set, 0, len(snap.Sets))
	for _, s := range snap.Sets {
		sets = append(sets, s)
	}
	sort.Slice(sets, func(i, j int) bool {
		li, lj := strings.ToLower(sets[i].Location), strings.ToLower(sets[j].Location)
		if li != lj {
			return li < lj
		}
		return sets[i].Name < sets[j].Name
	})
	classify := smartset.NewStates(snap)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SET\tLOCATION\tOWNER\tOWNER LOCATION\tEPOCH\tSTATE")
	states := map[string]int{}
	for _, s := range sets {
		owner, ownerLoc := "-", "-"
		if s.Owner != "" {
			owner = ldapdir.RDNValue(s.Owner)
			if svc, ok := snap.Services[smartset.Key(s.Owner)]; ok {
				ownerLoc = svc.Location
			} else {
				owner += " (gone)"
			}
		}
		state := classify.Of(s)
		states[state]++
		if state == smartset.StatePending {
			state += " -> " + ldapdir.RDNValue(s.ReleaseRequest)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", s.Name, s.Location, owner, ownerLoc, s.Epoch, state)
	}
	tw.Flush()
	fmt.Fprintf(out, "\n%d sets, %d agents: %d optimal, %d non-optimal, %d pending handoff, %d orphaned\n",
		len(sets), len(snap.Services), states[smartset.StateOptimal], states[smartset.StateNonOptimal],
		states[smartset.StatePending], states[smartset.StateOrphaned])
}
