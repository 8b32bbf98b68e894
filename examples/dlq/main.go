// Command dlq shows the retry and dead-letter path and replaying a
// dead-letter topic: a handler with a bug rejects some messages, they are
// retried, redelivered and then dead-lettered with the reason; after "the
// fix is deployed" Replay moves them back and they are handled.
//
//	go run ./examples/dlq
//	MESSAGING_DRIVER=rabbitmq MESSAGING_URL=amqp://guest:guest@127.0.0.1:5672/ go run ./examples/dlq
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/msgkit/msgkit/adapters/all"
	"github.com/msgkit/msgkit/middleware"
	"github.com/msgkit/msgkit/sdk"
)

func main() {
	configPath := flag.String("config", "", "YAML config file (MESSAGING_* environment variables override it)")
	flag.Parse()
	if err := run(*configPath, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "dlq:", err)
		os.Exit(1)
	}
}

func run(configPath string, out io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg, err := sdk.LoadConfig(configPath)
	if err != nil {
		return err
	}
	client, err := sdk.Open(ctx, cfg, sdk.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		return err
	}
	defer client.Close(context.Background())
	var mu sync.Mutex
	say := func(format string, args ...any) { mu.Lock(); fmt.Fprintf(out, format+"\n", args...); mu.Unlock() }
	// Fixed names, so a broker keeps one set of queues however often this
	// runs; messages of other runs are recognised by their run header.
	run := sdk.NewMessage(nil).ID[:8]
	topic, dlq := "dlq-example.invoices", "dlq-example.invoices.dlq"
	ours := func(m *sdk.Message) bool { return m.Get("run") == run }
	say("driver %s; topic %s", cfg.DriverName(), topic)

	var fixed atomic.Bool
	handled := make(chan string, 10)
	_, err = client.Subscribe(ctx, topic, "billing", middleware.Chain(
		func(ctx context.Context, m *sdk.Message) error {
			if !ours(m) {
				return nil // left over from an earlier run
			}
			name := string(m.Payload)
			switch {
			case strings.HasPrefix(name, "eur") || fixed.Load():
				say("[billing] %s handled (attempt %s)", name, m.Get(sdk.KeyAttempt))
				handled <- name
				return nil
			case strings.HasPrefix(name, "garbled"):
				say("[billing] %s cannot be decoded -> permanent, straight to the DLQ", name)
				return sdk.Permanent(errors.New("decode invoice: unexpected end of JSON"))
			default:
				say("[billing] %s failed (attempt %s): currency not supported yet", name, m.Get(sdk.KeyAttempt))
				return errors.New("currency not supported yet")
			}
		},
		middleware.DeadLetter(middleware.DeadLetterConfig{Publisher: client, MaxDeliveries: 2,
			OnDeadLetter: func(m *sdk.Message, to string, err error) {
				say("[dlq]     %s dead-lettered to %s: %v", m.Payload, to, err)
			}}),
		middleware.Retry(middleware.RetryConfig{MaxAttempts: 2, Delay: 10 * time.Millisecond}),
	))
	if err != nil {
		return err
	}
	for _, name := range []string{"eur-invoice", "chf-invoice", "garbled-invoice"} {
		m := sdk.NewMessage([]byte(name))
		m.Set("run", run)
		if err := client.Publish(ctx, topic, m); err != nil {
			return err
		}
	}
	// eur is handled; chf fails 2 deliveries x 2 attempts, garbled at once.
	if name := <-handled; name != "eur-invoice" {
		return fmt.Errorf("unexpected %s", name)
	}

	// Wait for both dead letters (the replay group sees them too).
	inspect := make(chan struct{}, 2)
	if _, err := client.Subscribe(ctx, dlq, "ops", func(ctx context.Context, m *sdk.Message) error {
		if ours(m) {
			inspect <- struct{}{}
		}
		return nil
	}); err != nil {
		return err
	}
	for i := 0; i < 2; i++ {
		select {
		case <-inspect:
		case <-ctx.Done():
			return errors.New("the dead letters did not arrive")
		}
	}

	say("-- the fix is deployed; replaying the dead-letter topic --")
	fixed.Store(true)
	// DeadLetter created the replay group before the first dead letter, so
	// it holds every one (brokers such as RabbitMQ keep messages only for
	// groups that exist).
	n, err := middleware.Replay(ctx, client, dlq, middleware.DefaultReplayGroup, 100, 2*time.Second)
	if err != nil {
		return err
	}
	say("replayed %d message(s) back to %s", n, topic)
	for i := 0; i < 2; i++ { // ours; a replay may also move leftovers of earlier runs
		select {
		case <-handled:
		case <-ctx.Done():
			return errors.New("the replayed messages were not handled")
		}
	}
	say("done: every invoice handled")
	return nil
}
