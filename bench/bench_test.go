package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"testing"

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
	_, err := c.Subscribe(topic, group, middleware.Chain(func(context.Context, *sdk.Message) error {
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
