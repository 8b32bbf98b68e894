package bench

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/msgkit/adapters/memory"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/middleware"
	"github.com/msgkit/msgkit/sdk"
)

// fullStack is every handler middleware, as FromConfig orders them, with
// observability on no-op providers (its default) and limits high enough
// never to wait.
func fullStack(b *testing.B, pub sdk.Publisher) []middleware.Middleware {
	obs, err := middleware.NewObservability(middleware.ObservabilityConfig{})
	if err != nil {
		b.Fatal(err)
	}
	return []middleware.Middleware{
		obs.Handler(),
		middleware.DeadLetter(middleware.DeadLetterConfig{Publisher: pub}),
		middleware.NewBreaker(middleware.BreakerConfig{}).Handler(),
		middleware.Bulkhead(1000, time.Second),
		middleware.Retry(middleware.RetryConfig{}),
		middleware.Timeout(time.Minute),
	}
}

// BenchmarkMiddlewareStackCall is the cost of the stack around one handler
// call, without any broker.
func BenchmarkMiddlewareStackCall(b *testing.B) {
	h := func(context.Context, *sdk.Message) error { return nil }
	msg := sdk.NewMessage(payload)
	ctx := context.Background()
	var r rates
	r.run(b, "raw", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			_ = h(ctx, msg)
		}
	})
	r.run(b, "full-stack", func(b *testing.B) {
		stacked := middleware.Chain(h, fullStack(b, sdk.NewClient(memory.New(), sdk.WithLogger(quiet)))...)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			_ = stacked(ctx, msg)
		}
	})
	r.report(b, "middleware stack per call")
}

// BenchmarkMiddlewareMemoryThroughput consumes b.N messages on the memory
// adapter with and without the stack, two ways: "drain" times only the
// consumer, on messages published beforehand; "pipeline" times publishing
// and consuming running at once, the way a service runs. The two variants
// take turns in blocks of 20,000 messages (see interleave). A fourth
// variant adds no middleware but 400 ns of work to the handler, to show
// what any such cost does to this adapter's throughput.
func BenchmarkMiddlewareMemoryThroughput(b *testing.B) {
	const block = 20000
	for _, mode := range []string{"drain", "pipeline"} {
		b.Run(mode, func(b *testing.B) {
			interleaveBlocks(b, "memory consume ("+mode+"), full middleware stack", block, []variant{
				{"no middleware", func(b *testing.B) time.Duration { return memoryThroughput(b, block, mode == "drain", nil) }},
				{"full stack", func(b *testing.B) time.Duration {
					return memoryThroughput(b, block, mode == "drain", func(h sdk.Handler, c *sdk.Client) sdk.Handler { return middleware.Chain(h, fullStack(b, c)...) })
				}},
				{"all but Timeout", func(b *testing.B) time.Duration {
					return memoryThroughput(b, block, mode == "drain", func(h sdk.Handler, c *sdk.Client) sdk.Handler {
						stack := fullStack(b, c)
						return middleware.Chain(h, stack[:len(stack)-1]...) // Timeout is last
					})
				}},
				// Not middleware: a handler with 400 ns more work, about
				// what the stack costs per call, for the scale.
				{"400ns more work", func(b *testing.B) time.Duration {
					return memoryThroughput(b, block, mode == "drain", func(h sdk.Handler, c *sdk.Client) sdk.Handler {
						return func(ctx context.Context, m *sdk.Message) error { work(400 * time.Nanosecond); return h(ctx, m) }
					})
				}},
			})
		})
	}
}

var workSink int

// work keeps the CPU busy for d.
func work(d time.Duration) {
	for start := time.Now(); time.Since(start) < d; {
		workSink++
	}
}

// memoryThroughput publishes and consumes n messages on a new memory
// broker; only the part timed (see BenchmarkMiddlewareMemoryThroughput) runs
// with the benchmark's timer on.
func memoryThroughput(b *testing.B, n int, drain bool, wrap func(sdk.Handler, *sdk.Client) sdk.Handler) time.Duration {
	b.StopTimer()
	tr := memory.New()
	c := sdk.NewClient(tr, sdk.WithLogger(quiet))
	defer c.Close(context.Background())
	done := make(chan struct{})
	got := 0
	var h sdk.Handler = func(context.Context, *sdk.Message) error {
		got++
		if got == n {
			close(done)
		}
		return nil
	}
	if wrap != nil {
		h = wrap(h, c)
	}
	publish := func() {
		for sent := 0; sent < n; sent += batchSize {
			if err := c.Publish(context.Background(), "t", sdkMessages(min(batchSize, n-sent))...); err != nil {
				b.Error(err)
				return
			}
		}
	}
	var start time.Time
	if drain {
		memoryGroup(b, tr, "t", "g")
		publish()
		runtime.GC() // each variant starts from a collected heap
		b.StartTimer()
		start = time.Now()
		if _, err := c.Subscribe(context.Background(), "t", "g", h); err != nil {
			b.Fatal(err)
		}
	} else {
		if _, err := c.Subscribe(context.Background(), "t", "g", h); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		b.StartTimer()
		start = time.Now()
		publish()
	}
	<-done
	elapsed := time.Since(start)
	b.StopTimer()
	return elapsed
}

// BenchmarkRequestReplyRabbitMQ measures request/reply round trips per
// second, one at a time and 32 in flight.
func BenchmarkRequestReplyRabbitMQ(b *testing.B) {
	url := testenv.RabbitMQ(b)
	topic := uniqueTopic("rpc")
	declare(b, url, topic, "responders") // removed afterwards
	responder := rabbitClient(b, url)
	if _, err := responder.Respond(context.Background(), topic, "responders", func(ctx context.Context, req *sdk.Message) (*sdk.Message, error) {
		return &sdk.Message{Payload: req.Payload}, nil
	}, sdk.WithConcurrency(4)); err != nil {
		b.Fatal(err)
	}
	requester := rabbitClient(b, url)
	for _, inFlight := range []int{1, 32} {
		b.Run(fmt.Sprintf("in-flight-%d", inFlight), func(b *testing.B) {
			ctx := context.Background()
			var wg sync.WaitGroup
			per := (b.N + inFlight - 1) / inFlight
			b.ResetTimer()
			for w := 0; w < inFlight; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < per; i++ {
						if _, err := requester.Request(ctx, topic, &sdk.Message{Payload: payload}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(per*inFlight)/b.Elapsed().Seconds(), "round-trips/s")
		})
	}
}
