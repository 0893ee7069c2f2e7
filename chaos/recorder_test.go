package chaos

import (
	"fmt"
	"os"
	"sync"
	"time"
)

// recorder collects a run's History from many goroutines.
type recorder struct {
	mu       sync.Mutex
	h        History
	timeline *os.File // one line per fault, also on the test log
	logf     func(format string, args ...any)
}

func newRecorder(seed int64, dur, ttl time.Duration, topology string, timeline *os.File, logf func(string, ...any)) *recorder {
	return &recorder{h: History{Seed: seed, Duration: dur, Topology: topology, TTL: ttl, Expected: map[string]SetAttrs{}, Deleted: map[string]bool{}},
		timeline: timeline, logf: logf}
}

func (r *recorder) say(format string, args ...any) {
	r.mu.Lock()
	start := r.h.Start
	r.mu.Unlock()
	line := fmt.Sprintf(format, args...)
	if !start.IsZero() {
		line = fmt.Sprintf("+%7.3fs %s", time.Since(start).Seconds(), line)
	}
	fmt.Fprintln(r.timeline, line)
	r.logf("%s", line)
}

func (r *recorder) begin(t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.h.Start = t
}

func (r *recorder) expect(name string, a SetAttrs) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.h.Expected[name] = a
	delete(r.h.Deleted, name)
}

func (r *recorder) deleted(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.h.Expected, name)
	r.h.Deleted[name] = true
}

func (r *recorder) processStarted(p Process) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.h.Processes = append(r.h.Processes, p)
	return len(r.h.Processes) - 1
}

func (r *recorder) processEnded(i int, at time.Time, exit string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.h.End.IsZero() { // ends after the run are the teardown's
		r.h.Processes[i].End = at
		r.h.Processes[i].Exit = exit
	}
}

func (r *recorder) planned(i int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.h.Processes[i].Planned = true
}

func (r *recorder) exempt(i int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.h.Processes[i].Exempt = true
}

func (r *recorder) note(s string) { r.say("note: %s", s) }

func (r *recorder) fault(f Fault) {
	r.mu.Lock()
	r.h.Faults = append(r.h.Faults, f)
	r.mu.Unlock()
}

func (r *recorder) unwritable(u Interval) {
	r.mu.Lock()
	r.h.Unwritable = append(r.h.Unwritable, u)
	r.mu.Unlock()
}

func (r *recorder) read(rd Read) {
	r.mu.Lock()
	r.h.Reads = append(r.h.Reads, rd)
	r.mu.Unlock()
}

func (r *recorder) sample(s Sample) {
	r.mu.Lock()
	r.h.Samples = append(r.h.Samples, s)
	r.mu.Unlock()
}

// finish stops recording and returns the History (shared: read it only
// after every recording goroutine has stopped).
func (r *recorder) finish(at time.Time) *History {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.h.End = at
	return &r.h
}
