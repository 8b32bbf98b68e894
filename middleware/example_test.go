package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go/timeout"

	"github.com/msgkit/msgkit/adapters/memory"
	"github.com/msgkit/msgkit/middleware"
	"github.com/msgkit/msgkit/sdk"
)

// A flaky dependency: the handler fails twice, then succeeds, all within
// one delivery.
func ExampleRetry() {
	calls := 0
	h := middleware.Chain(func(ctx context.Context, m *sdk.Message) error {
		calls++
		fmt.Println("attempt", m.Get(sdk.KeyAttempt))
		if calls < 3 {
			return errors.New("timeout talking to the ledger")
		}
		return nil
	}, middleware.Retry(middleware.RetryConfig{MaxAttempts: 5, Delay: time.Millisecond}))
	fmt.Println("result:", h(context.Background(), sdk.NewMessage(nil)))
	// Output:
	// attempt 1
	// attempt 2
	// attempt 3
	// result: <nil>
}

// An undecodable message is marked permanent and lands in the dead-letter
// topic with headers saying why; Replay moves it back once the bug is fixed.
func ExampleDeadLetter() {
	ctx := context.Background()
	client := sdk.NewClient(memory.New())
	defer client.Close(ctx)

	dead := make(chan *sdk.Message, 1)
	client.Subscribe(ctx, "orders.dlq", "ops", func(_ context.Context, m *sdk.Message) error { dead <- m; return nil })
	client.Subscribe(ctx, "orders", "billing", middleware.Chain(
		func(ctx context.Context, m *sdk.Message) error {
			return sdk.Permanent(fmt.Errorf("decode order: invalid JSON"))
		},
		middleware.DeadLetter(middleware.DeadLetterConfig{Publisher: client}),
	))
	client.Publish(ctx, "orders", sdk.NewMessage([]byte("{oops")))

	m := <-dead
	fmt.Println(m.Get(middleware.KeyDLQOriginalTopic), "|", m.Get(middleware.KeyDLQHandler), "|", m.Get(middleware.KeyDLQError))
	// Output: orders | billing | decode order: invalid JSON
}

// A breaker shared by the handlers that use one database: while it is open
// the subscription holds its message and takes no more.
func ExampleBreaker() {
	breaker := middleware.NewBreaker(middleware.BreakerConfig{
		FailureThreshold: 5,
		Delay:            10 * time.Second,
		OnStateChange:    func(from, to string) { fmt.Println("breaker:", from, "->", to) },
	})
	h := middleware.Chain(func(ctx context.Context, m *sdk.Message) error {
		return errors.New("database unreachable")
	}, breaker.Handler())
	for i := 0; i < 5; i++ {
		_ = h(context.Background(), sdk.NewMessage(nil))
	}
	fmt.Println("state:", breaker.State())
	// Output:
	// breaker: closed -> open
	// state: open
}

// The stack is configured in the same file as the driver.
func ExampleFromConfig() {
	cfg, _ := sdk.ParseConfig("service.yaml", []byte(`
driver: memory
middleware:
  retry_attempts: 3
  timeout: 30s
  breaker_failures: 5
  dead_letter: true
`))
	client, _ := sdk.Open(context.Background(), cfg)
	defer client.Close(context.Background())
	stack, err := middleware.FromConfig(cfg, middleware.Deps{Publisher: client})
	if err != nil {
		fmt.Println(err)
		return
	}
	client.Subscribe(context.Background(), "orders", "billing", stack.Handler(func(ctx context.Context, m *sdk.Message) error { return nil }))
	publisher := stack.Publisher(client) // fails fast while the broker is down
	fmt.Println(publisher.Publish(context.Background(), "orders", sdk.NewMessage(nil)))
	// Output: <nil>
}

// Once a bug that sent messages to the dead-letter topic is fixed, Replay
// moves them back to the topic each came from.
func ExampleReplay() {
	ctx := context.Background()
	client := sdk.NewClient(memory.New())
	defer client.Close(ctx)
	var fixed atomic.Bool
	deadLettered := make(chan struct{})
	handled := make(chan string, 1)
	client.Subscribe(ctx, "orders", "billing", middleware.Chain(
		func(ctx context.Context, m *sdk.Message) error {
			if !fixed.Load() {
				return sdk.Permanent(errors.New("decode order: unknown field \"coupon\""))
			}
			handled <- string(m.Payload)
			return nil
		},
		middleware.DeadLetter(middleware.DeadLetterConfig{
			Publisher:    client,
			OnDeadLetter: func(*sdk.Message, string, error) { close(deadLettered) },
		}),
	))
	client.Publish(ctx, "orders", sdk.NewMessage([]byte(`{"coupon":"X"}`)))
	<-deadLettered

	fixed.Store(true) // the fix is deployed
	// DeadLetter created the replay group on orders.dlq before the first
	// dead letter, so Replay finds every one.
	moved, err := middleware.Replay(ctx, client, "orders.dlq", middleware.DefaultReplayGroup, 0, 100*time.Millisecond)
	fmt.Println("moved", moved, err)
	fmt.Println("handled", <-handled)
	// Output:
	// moved 1 <nil>
	// handled {"coupon":"X"}
}

// A handler blocked on a call that hangs gives up at the deadline; the
// message is then retried or redelivered like any failure.
func ExampleTimeout() {
	h := middleware.Chain(func(ctx context.Context, m *sdk.Message) error {
		select {
		case <-time.After(time.Minute): // the call that hangs
			return nil
		case <-ctx.Done():
			return fmt.Errorf("ledger call: %w", ctx.Err())
		}
	}, middleware.Timeout(10*time.Millisecond))
	err := h(context.Background(), sdk.NewMessage(nil))
	fmt.Println(errors.Is(err, timeout.ErrExceeded), errors.Is(err, context.DeadlineExceeded))
	// Output: true true
}

// A bulkhead of one place: while a handler holds it, another fails at once
// (maxWait 0) and its message is redelivered later.
func ExampleBulkhead() {
	hold, started := make(chan struct{}), make(chan struct{})
	h := middleware.Chain(func(ctx context.Context, m *sdk.Message) error {
		started <- struct{}{}
		<-hold
		return nil
	}, middleware.Bulkhead(1, 0))
	go h(context.Background(), sdk.NewMessage(nil))
	<-started
	fmt.Println(h(context.Background(), sdk.NewMessage(nil)))
	close(hold)
	// Output: bulkhead of 1 handlers is full after waiting 0s: bulkhead full
}

// A rate limit of 100 handler starts a second spaces them 10ms apart, so
// 11 starts take at least 100ms; nothing is nacked meanwhile.
func ExampleRateLimit() {
	h := middleware.Chain(func(ctx context.Context, m *sdk.Message) error { return nil }, middleware.RateLimit(100))
	start := time.Now()
	for i := 0; i < 11; i++ {
		_ = h(context.Background(), sdk.NewMessage(nil))
	}
	fmt.Println(time.Since(start) >= 100*time.Millisecond)
	// Output: true
}
