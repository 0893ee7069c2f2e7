package chaos

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Availability sums up the reads of a run.
type Availability struct {
	Reads, Follow, Follow200 int // all reads; reads following redirects; of those, answered 200
	Direct, DirectOK         int // reads not following; of those, answered 200 or 307
	Stale                    int // 200 answers carrying TCS-Stale
	Fenced                   int // of those, ?stale answers of a fenced agent (TCS-Fenced)
}

// Share is the share of reads following redirects answered 200.
func (a Availability) Share() float64 {
	if a.Follow == 0 {
		return 0
	}
	return float64(a.Follow200) / float64(a.Follow)
}

// Avail counts the reads of h.
func Avail(h *History) Availability {
	var a Availability
	for _, r := range h.Reads {
		a.Reads++
		if r.Status == 200 && r.Stale {
			a.Stale++
			if r.Fenced {
				a.Fenced++
			}
		}
		if r.Follow {
			a.Follow++
			if r.Status == 200 {
				a.Follow200++
			}
			continue
		}
		a.Direct++
		if r.Status == 200 || r.Status == 307 {
			a.DirectOK++
		}
	}
	return a
}

// Report writes the closing table: faults by kind, checks with counts and
// violations, availability; then each violation with its set's excerpt.
func Report(w io.Writer, h *History, results []Result) {
	topo := h.Topology
	if topo == "" {
		topo = Single
	}
	fmt.Fprintf(w, "\nchaos: seed %d, topology %s, %.0fs, TTL %v, %d processes, %d reads, %d directory samples, %d committed set writes\n",
		h.Seed, topo, h.End.Sub(h.Start).Seconds(), h.TTL, len(h.Processes), len(h.Reads), len(h.Samples), len(h.Commits))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FAULT\tINJECTED")
	count := map[Kind]int{}
	for _, f := range h.Faults {
		count[f.Kind]++
	}
	for _, k := range KindsOf(topo) {
		fmt.Fprintf(tw, "%s\t%d\n", k, count[k])
	}
	fmt.Fprintln(tw, "\t")
	fmt.Fprintln(tw, "CHECK\tCHECKED\tEXCUSED\tVIOLATIONS")
	total := 0
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", r.Name, r.Checked, r.Excused, len(r.Violations))
		total += len(r.Violations)
	}
	tw.Flush()
	a := Avail(h)
	fmt.Fprintf(w, "availability: %d/%d reads following redirects answered 200 (%.1f%%); %d/%d direct reads answered 200 or 307; %d stale 200s (%d of a fenced agent, ?stale=1)\n",
		a.Follow200, a.Follow, 100*a.Share(), a.DirectOK, a.Direct, a.Stale, a.Fenced)
	if topo == Mirror {
		Replication(w, h)
	}
	if total == 0 {
		fmt.Fprintf(w, "chaos: seed %d: no violations\n", h.Seed)
		return
	}
	fmt.Fprintf(w, "chaos: seed %d: %d violations (replay: make chaos CHAOS_SEED=%d CHAOS_DURATION=%v CHAOS_TOPOLOGY=%s)\n",
		h.Seed, total, h.Seed, h.Duration, topo)
	shown := map[string]int{}
	for _, r := range results {
		for _, v := range r.Violations {
			fmt.Fprintf(w, "\nVIOLATION %s\n", v)
			if v.Set == "" || shown[v.Set] >= 2 {
				continue
			}
			shown[v.Set]++
			Excerpt(w, h, v.Set, v.At)
		}
	}
}

// Excerpt writes the history of one set around t (±8 s): faults, committed
// writes, ownership changes seen by the watcher, and reads.
func Excerpt(w io.Writer, h *History, set string, t time.Time) {
	from, to := t.Add(-8*time.Second), t.Add(8*time.Second)
	type line struct {
		at   time.Time
		text string
	}
	var lines []line
	in := func(a time.Time) bool { return !a.Before(from) && !a.After(to) }
	for _, f := range h.Faults {
		if f.Start.Before(to) && f.End.After(from) {
			lines = append(lines, line{f.Start, fmt.Sprintf("fault   %s %s until %s %s", f.Kind, f.Target, rel(h, f.End), f.Note)})
		}
	}
	for _, u := range h.Unwritable {
		if u.Start.Before(to) && u.End.After(from) {
			lines = append(lines, line{u.Start, fmt.Sprintf("no writable directory until %s: %s", rel(h, u.End), u.Why)})
		}
	}
	for _, c := range h.Commits {
		if c.Set != set || !in(c.At) {
			continue
		}
		if c.Type == "modify" && c.Epoch == 0 {
			lines = append(lines, line{c.At, fmt.Sprintf("commit  modify without an epoch change (a release request) by %s (%s)", c.By, c.Seq)})
			continue
		}
		on := ""
		if c.Server != "" {
			on = " on " + c.Server
		}
		lines = append(lines, line{c.At, fmt.Sprintf("commit  %s owner=%q epoch=%d by %s (%s%s)", c.Type, c.Owner, c.Epoch, c.By, c.Seq, on)})
	}
	var prev Owning
	for _, s := range h.Samples {
		if !s.OK {
			continue
		}
		o := s.Sets[set]
		if o != prev && in(s.At) {
			lines = append(lines, line{s.At, fmt.Sprintf("watch   owner=%q epoch=%d %s", o.Owner, o.Epoch, o.State)})
		}
		prev = o
	}
	for _, r := range h.Reads {
		if r.Set != set || !in(r.Start) {
			continue
		}
		who := "?"
		if p := h.process(r.Port, r.End); p != nil {
			who = p.ID
		}
		mode := "direct"
		if r.Follow {
			mode = "follow"
		}
		extra := ""
		if r.Stale {
			extra += " stale"
		}
		if r.Fenced {
			extra += " fenced"
		}
		if r.AllowStale {
			extra += " (?stale=1)"
		}
		if r.Err != "" {
			extra += " err=" + r.Err
		}
		lines = append(lines, line{r.Start, fmt.Sprintf("read    %s %s -> %d epoch=%d until %s%s", mode, who, r.Status, r.Epoch, rel(h, r.End), extra)})
	}
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].at.Before(lines[j].at) })
	fmt.Fprintf(w, "  history of %s from %s to %s:\n", set, rel(h, from), rel(h, to))
	const maxLines = 80
	if len(lines) > maxLines {
		fmt.Fprintf(w, "  (%d lines, showing the %d nearest)\n", len(lines), maxLines)
		i := sort.Search(len(lines), func(i int) bool { return !lines[i].at.Before(t) })
		lo := max(0, min(i-maxLines/2, len(lines)-maxLines))
		lines = lines[lo : lo+maxLines]
	}
	for _, l := range lines {
		fmt.Fprintf(w, "  %s %s\n", rel(h, l.at), strings.TrimSpace(l.text))
	}
}

// Replication writes, for a MirrorMode pair, what replication did with the
// ownership writes (epoch changes): how many each provider took, those its
// peer never had (lost: the provider was killed before sending them and
// the peer wrote the set since), and those the peer had only after the
// frontend had switched away from their provider, with sets and epochs.
func Replication(w io.Writer, h *History) {
	took := map[string]int{}
	var never, late []Commit
	for _, c := range h.Commits {
		if c.Epoch == 0 || c.Server == "" {
			continue
		}
		took[c.Server]++
		if c.Replicated.IsZero() {
			never = append(never, c)
			continue
		}
		for _, u := range h.Unwritable {
			if c.At.Before(u.Start) && c.Replicated.After(u.Start) {
				late = append(late, c)
				break
			}
		}
	}
	servers := make([]string, 0, len(took))
	for s := range took {
		servers = append(servers, s)
	}
	sort.Strings(servers)
	var parts []string
	for _, s := range servers {
		parts = append(parts, fmt.Sprintf("%s %d", s, took[s]))
	}
	fmt.Fprintf(w, "replication: ownership writes taken: %s; lost (never reached the other provider): %d; reached it only after a switch away from their provider: %d\n",
		strings.Join(parts, ", "), len(never), len(late))
	for _, c := range never {
		fmt.Fprintf(w, "  lost: %s epoch %d owner %q at %s on %s\n", c.Set, c.Epoch, c.Owner, rel(h, c.At), c.Server)
	}
	for _, c := range late {
		fmt.Fprintf(w, "  late: %s epoch %d owner %q at %s on %s, replicated at %s\n", c.Set, c.Epoch, c.Owner, rel(h, c.At), c.Server, rel(h, c.Replicated))
	}
}
