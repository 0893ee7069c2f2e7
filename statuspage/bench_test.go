package statuspage

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// BenchmarkFirstState is the cold opening of the page at scale without a
// browser: from the first viewer's subscription (which starts the page's
// directory watch) to the first state of 20,000 owned sets, ready to send.
// 20,000 sets, the size of TestStatusPageAtScale.
func BenchmarkFirstState(b *testing.B) {
	f := bigFixture(b, 20000)
	b.ResetTimer()
	for range b.N {
		p := New(Options{Agent: "tcs-japan-1", Directory: f.dir})
		start := time.Now()
		sub, err := p.subscribe()
		if err != nil {
			b.Fatal(err)
		}
		it := <-sub.ch
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms/first-state")
		b.ReportMetric(float64(len(it.full))/1e6, "MB/state")
		p.unsubscribe(sub)
		p.Close()
	}
}

// BenchmarkSnapshotRead is the same sets read by one paged search
// (ldapdir.Dir.Snapshot): the decoding cost without the watch.
func BenchmarkSnapshotRead(b *testing.B) {
	f := bigFixture(b, 20000)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		snap, err := f.dir.Snapshot(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms/snapshot")
		b.ReportMetric(float64(len(snap.Sets)), "sets")
	}
}

// bigFixture is the example directory with n more sets, all owned.
func bigFixture(b *testing.B, n int) *swarmFixture {
	f := newFixture(b)
	var ldif strings.Builder
	owners := []string{f.dir.ServiceDN("tcs-japan-1"), f.dir.ServiceDN("tcs-texas-1")}
	for i := range n {
		fmt.Fprintf(&ldif, "dn: cn=big-%06d,ou=smartsets,dc=example,dc=org\nobjectClass: smartSet\ncn: big-%06d\ngeoLocation: Texas\nowner: %s\ntcsEpoch: 1\n\n",
			i, i, owners[i%2])
	}
	f.srv.Apply(ldif.String())
	return f
}
