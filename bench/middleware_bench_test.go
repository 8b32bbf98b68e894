package bench

import (
	"context"
	"fmt"
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
// adapter with and without the stack.
func BenchmarkMiddlewareMemoryThroughput(b *testing.B) {
	var r rates
	consume := func(b *testing.B, wrap func(sdk.Handler, *sdk.Client) sdk.Handler) {
		c := sdk.NewClient(memory.New(), sdk.WithLogger(quiet))
		defer c.Close(context.Background())
		done := make(chan struct{})
		n := 0
		h := wrap(func(context.Context, *sdk.Message) error {
			n++
			if n == b.N {
				close(done)
			}
			return nil
		}, c)
		if _, err := c.Subscribe("t", "g", h); err != nil {
			b.Fatal(err)
		}
		for sent := 0; sent < b.N; sent += batchSize {
			if err := c.Publish(context.Background(), "t", sdkMessages(min(batchSize, b.N-sent))...); err != nil {
				b.Fatal(err)
			}
		}
		b.ResetTimer()
		<-done
	}
	r.run(b, "raw", func(b *testing.B) { consume(b, func(h sdk.Handler, _ *sdk.Client) sdk.Handler { return h }) })
	r.run(b, "full-stack", func(b *testing.B) {
		consume(b, func(h sdk.Handler, c *sdk.Client) sdk.Handler { return middleware.Chain(h, fullStack(b, c)...) })
	})
	r.report(b, "memory consume with the full middleware stack")
}

// BenchmarkRequestReplyRabbitMQ measures request/reply round trips per
// second, one at a time and 32 in flight.
func BenchmarkRequestReplyRabbitMQ(b *testing.B) {
	url := testenv.RabbitMQ(b)
	topic := uniqueTopic("rpc")
	declare(b, url, topic, "responders") // removed afterwards
	responder := rabbitClient(b, url)
	if _, err := responder.Respond(topic, "responders", func(ctx context.Context, req *sdk.Message) (*sdk.Message, error) {
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
