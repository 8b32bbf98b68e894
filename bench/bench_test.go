package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/msgkit/msgkit/middleware"
	"github.com/msgkit/msgkit/sdk"
)

var payload = bytes.Repeat([]byte("x"), 256)

// batchSize is messages per Publish call and per raw pipeline or confirm
// window, the same for every variant.
const batchSize = 256

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func uniqueTopic(prefix string) string { return "bench-" + prefix + "-" + uuid.NewString()[:8] }

// removedTopics returns a broker's newTopic: unique topics named after
// prefix, each passed to remove when the benchmark ends.
func removedTopics(b *testing.B, prefix string, remove func(topic string)) func(*testing.B) string {
	var mu sync.Mutex
	var topics []string
	b.Cleanup(func() {
		for _, t := range topics {
			remove(t)
		}
	})
	return func(*testing.B) string {
		t := uniqueTopic(prefix)
		mu.Lock()
		topics = append(topics, t)
		mu.Unlock()
		return t
	}
}

// rates remembers the last msgs/s of each variant of a benchmark, so the
// parent benchmark can log their ratio.
type rates struct {
	mu sync.Mutex
	m  map[string]float64
}

func (r *rates) run(b *testing.B, name string, f func(b *testing.B)) {
	b.Run(name, func(b *testing.B) {
		b.ReportAllocs()
		f(b)
		rate := float64(b.N) / b.Elapsed().Seconds()
		b.ReportMetric(rate, "msgs/s")
		r.mu.Lock()
		if r.m == nil {
			r.m = map[string]float64{}
		}
		r.m[name] = rate
		r.mu.Unlock()
	})
}

// report logs every variant against the raw client.
func (r *rates) report(b *testing.B, what string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	raw := r.m["raw"]
	if raw == 0 {
		return
	}
	names := make([]string, 0, len(r.m))
	for n := range r.m {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		// Printed, not logged: the log of a benchmark with sub-benchmarks
		// is not shown.
		fmt.Printf("ratio: %s %-16s %10.0f msgs/s  %.2fx raw\n", what, n, r.m[n], r.m[n]/raw)
	}
}

func sdkMessages(n int) []*sdk.Message {
	msgs := make([]*sdk.Message, n)
	for i := range msgs {
		msgs[i] = &sdk.Message{ID: uuid.NewString(), Payload: payload}
	}
	return msgs
}

// publishSDK publishes b.N messages in batches through a Client.
func publishSDK(b *testing.B, c *sdk.Client, topic string) {
	ctx := context.Background()
	for sent := 0; sent < b.N; {
		n := min(batchSize, b.N-sent)
		if err := c.Publish(ctx, topic, sdkMessages(n)...); err != nil {
			b.Fatal(err)
		}
		sent += n
	}
}

// consumeSDK consumes n messages with a Client handler and returns when all
// arrived.
func consumeSDK(b *testing.B, c *sdk.Client, topic, group string, n int) {
	consumeSDKWith(b, c, topic, group, n, nil)
}

// consumeSDKWith is consumeSDK with the handler wrapped in mws.
func consumeSDKWith(b *testing.B, c *sdk.Client, topic, group string, n int, mws []middleware.Middleware) {
	done := make(chan struct{})
	count := 0
	_, err := c.Subscribe(context.Background(), topic, group, middleware.Chain(func(context.Context, *sdk.Message) error {
		count++
		if count == n {
			close(done)
		}
		return nil
	}, mws...))
	if err != nil {
		b.Fatal(err)
	}
	<-done
}

// variant is one way of doing the operation interleave compares: do does
// it once and returns the time it took.
type variant struct {
	name string
	do   func(b *testing.B) time.Duration
}

// timed makes a variant's do from a function that is all operation.
func timed(f func(b *testing.B)) func(b *testing.B) time.Duration {
	return func(b *testing.B) time.Duration {
		start := time.Now()
		f(b)
		return time.Since(start)
	}
}

// interleave runs the variants in turn, b.N times each, and reports each
// one's time per operation and its extra over the first: the median, over
// blocks of 100 rounds, of the block's ratio. Taking turns exposes every
// variant to the same moments of a noisy machine (a database's commit time
// here drifts by tens of percent over seconds), so the ratio holds where
// separate runs' ratios do not.
func interleave(b *testing.B, what string, vs []variant) {
	interleaveBlocks(b, what, 1, vs)
}

// interleaveBlocks is interleave for variants whose do runs perCall
// operations: b.N operations take b.N/perCall calls of each, and every
// call is a block of its own.
func interleaveBlocks(b *testing.B, what string, perCall int, vs []variant) {
	callsPerBlock := 1
	if perCall == 1 {
		callsPerBlock = 100
	}
	calls := max(1, (b.N+perCall-1)/perCall)
	total := make([]time.Duration, len(vs))
	cur := make([]time.Duration, len(vs))
	ratios := make([][]float64, len(vs))
	b.ResetTimer()
	for i := 1; i <= calls; i++ {
		// Each round starts with another variant, so that none always
		// follows the same one (and inherits its garbage).
		for k := range vs {
			j := (i + k) % len(vs)
			d := vs[j].do(b)
			total[j] += d
			cur[j] += d
		}
		if i%callsPerBlock == 0 || i == calls {
			base := cur[0]
			for j := range vs {
				ratios[j] = append(ratios[j], float64(cur[j])/float64(base))
				cur[j] = 0
			}
		}
	}
	b.StopTimer()
	ops := float64(calls * perCall)
	for j, v := range vs {
		name := strings.ReplaceAll(v.name, " ", "_")
		perOp := float64(total[j].Nanoseconds()) / ops
		sort.Float64s(ratios[j])
		extra := (ratios[j][len(ratios[j])/2] - 1) * 100
		b.ReportMetric(perOp, "ns/op("+name+")")
		if j > 0 {
			b.ReportMetric(extra, "%extra("+name+")")
		}
		fmt.Printf("ratio: %s %-16s %9.0f ns/op %10.0f ops/s  time %+5.1f%%, rate %.2fx (median of %d interleaved blocks)\n",
			what, v.name, perOp, 1e9/perOp, extra, 100/(100+extra), len(ratios[j]))
	}
}
