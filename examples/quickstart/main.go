// Command quickstart publishes three orders and consumes them in two
// consumer groups, one of which fails once and sees the message again. It
// runs on the in-process broker by default; point it at any broker with
// MESSAGING_DRIVER and MESSAGING_URL, or -config file.yaml:
//
//	go run ./examples/quickstart
//	MESSAGING_DRIVER=rabbitmq MESSAGING_URL=amqp://guest:guest@127.0.0.1:5672/ go run ./examples/quickstart
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	_ "github.com/msgkit/msgkit/adapters/all"
	"github.com/msgkit/msgkit/sdk"
)

const topic = "quickstart.orders"

func main() {
	configPath := flag.String("config", "", "YAML config file (MESSAGING_* environment variables override it)")
	timeout := flag.Duration("timeout", 30*time.Second, "give up if the run has not finished by then")
	flag.Parse()
	if err := run(*configPath, *timeout, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// tracker counts what each group handled, so the run knows when it is done.
type tracker struct {
	mu       sync.Mutex
	out      io.Writer
	orders   map[string]string // message id -> order name, this run's only
	attempts map[string]int    // group/id -> deliveries
	finished map[string]bool   // group/id -> handled successfully
	handled  map[string]int    // group -> orders handled
	done     chan struct{}
}

func (t *tracker) printf(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.out, format, args...)
}

// OrderCreated is the event published; sdk.Handle decodes it for the
// handlers (JSON, the client's default codec).
type OrderCreated struct {
	Order int `json:"order"`
}

// handler returns the handler of one group; failOnce names the order whose
// first delivery fails, to show redelivery.
func (t *tracker) handler(group, failOnce string) func(context.Context, OrderCreated, *sdk.Message) error {
	return func(ctx context.Context, _ OrderCreated, m *sdk.Message) error {
		t.mu.Lock()
		defer t.mu.Unlock()
		order, ours := t.orders[m.ID]
		if !ours {
			fmt.Fprintf(t.out, "[%-8s] skipped %s, left over from an earlier run\n", group, m.ID)
			return nil
		}
		key := group + "/" + m.ID
		t.attempts[key]++
		n := t.attempts[key]
		if order == failOnce && n == 1 {
			fmt.Fprintf(t.out, "[%-8s] %s delivery %d: failed (warehouse API timed out) -> nacked, the broker will redeliver\n", group, order, n)
			return errors.New("warehouse API timed out")
		}
		if t.finished[key] { // at-least-once: a broker may deliver again
			fmt.Fprintf(t.out, "[%-8s] %s delivery %d: duplicate, already handled -> acked\n", group, order, n)
			return nil
		}
		t.finished[key] = true
		t.handled[group]++
		fmt.Fprintf(t.out, "[%-8s] %s delivery %d: %s handled -> acked\n", group, order, n, m.EventType)
		if t.handled["billing"] == len(t.orders) && t.handled["shipping"] == len(t.orders) {
			close(t.done)
		}
		return nil
	}
}

func run(configPath string, timeout time.Duration, out io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cfg, err := sdk.LoadConfig(configPath)
	if err != nil {
		return err
	}
	// Handler failures are part of the story and printed below; keep the
	// library's own warnings out of the trace.
	client, err := sdk.Open(ctx, cfg, sdk.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "opened %s\n", cfg)

	t := &tracker{out: out, orders: map[string]string{}, attempts: map[string]int{}, finished: map[string]bool{}, handled: map[string]int{}, done: make(chan struct{})}
	msgs := make([]*sdk.Message, 3)
	for i := range msgs {
		if msgs[i], err = client.Encode(OrderCreated{Order: i + 1}); err != nil { // the payload, and ContentType application/json
			_ = client.Close(ctx)
			return err
		}
		msgs[i].EventType = "order.created"
		t.orders[msgs[i].ID] = fmt.Sprintf("order-%d", i+1)
	}
	for _, g := range []struct{ name, failOnce string }{{"billing", ""}, {"shipping", "order-2"}} {
		if _, err := client.Subscribe(ctx, topic, g.name, sdk.Handle(client, t.handler(g.name, g.failOnce))); err != nil {
			_ = client.Close(ctx)
			return err
		}
		t.printf("subscribed group %q to topic %q\n", g.name, topic)
	}
	for _, m := range msgs {
		if err := client.Publish(ctx, topic, m); err != nil {
			_ = client.Close(ctx)
			return err
		}
		t.printf("published %s (id %s)\n", t.orders[m.ID], m.ID)
	}

	select {
	case <-t.done:
	case <-ctx.Done():
		_ = client.Close(context.Background())
		return fmt.Errorf("not every order was handled by both groups within %v: %w", timeout, ctx.Err())
	}
	if err := client.Close(ctx); err != nil {
		return err
	}
	redeliveries := 0
	for _, n := range t.attempts {
		redeliveries += n - 1
	}
	fmt.Fprintf(out, "done: billing handled %d orders, shipping handled %d orders, %d redelivery; client closed cleanly\n",
		t.handled["billing"], t.handled["shipping"], redeliveries)
	return nil
}
