package sdk_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgkit/msgkit/adapters/memory"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

func openMemory(t *testing.T) *sdk.Client {
	t.Helper()
	c := sdk.NewClient(memory.New(), quiet)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func TestSubscriptionHandlesRedeliversAndRecoversPanics(t *testing.T) {
	c := openMemory(t)
	var calls atomic.Int32
	done := make(chan *sdk.Message, 1)
	if _, err := c.Subscribe(context.Background(), "orders", "billing", func(ctx context.Context, m *sdk.Message) error {
		switch calls.Add(1) {
		case 1:
			return errors.New("first delivery fails")
		case 2:
			panic("second delivery panics")
		}
		done <- m
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sent := sdk.NewMessage([]byte("order"))
	sent.EventType = "order.created"
	if err := c.Publish(context.Background(), "orders", sent); err != nil {
		t.Fatal(err)
	}
	got := testenv.Await(t, done, "the third delivery")
	if got.ID != sent.ID || got.EventType != "order.created" || got.Topic() != "orders" || got.Group() != "billing" {
		t.Fatalf("the handler must get the message as published, with its topic and group: %+v", got)
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("an error and a panic must each lead to a redelivery: %d calls, want 3", n)
	}
}

func TestSubscriptionCloseWaitsForRunningHandlerAndTakesNoNewMessage(t *testing.T) {
	c := openMemory(t)
	started, release := make(chan struct{}), make(chan struct{})
	var handled atomic.Int32
	sub, err := c.Subscribe(context.Background(), "work", "g", func(ctx context.Context, m *sdk.Message) error {
		if handled.Add(1) == 1 {
			close(started)
			<-release
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(context.Background(), "work", sdk.NewMessage([]byte("slow"))); err != nil {
		t.Fatal(err)
	}
	testenv.Await(t, started, "the slow handler")
	closed := make(chan error, 1)
	go func() { closed <- sub.Close(context.Background()) }()
	// Published while closing: the subscription must not start handling it.
	if err := c.Publish(context.Background(), "work", sdk.NewMessage([]byte("late"))); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a handler was running", err)
	case <-time.After(200 * time.Millisecond): // a window for a wrong early return; nothing signals "still waiting"
	}
	close(release)
	if err := testenv.Await(t, closed, "Close after the handler finished"); err != nil {
		t.Fatal(err)
	}
	if n := handled.Load(); n != 1 {
		t.Fatalf("a stopping subscription must not start new handlers: %d ran", n)
	}
}

func TestSubscriptionCloseReturnsAtTheDeadlineWithAStuckHandler(t *testing.T) {
	c := openMemory(t)
	started, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	sub, err := c.Subscribe(context.Background(), "work", "g", func(ctx context.Context, m *sdk.Message) error {
		close(started)
		<-release // ignores ctx: a handler bug Close must survive
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(context.Background(), "work", sdk.NewMessage(nil)); err != nil {
		t.Fatal(err)
	}
	testenv.Await(t, started, "the handler")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- sub.Close(ctx) }()
	select {
	case err := <-closed:
		if err == nil || !strings.Contains(err.Error(), "still running at the shutdown deadline") {
			t.Fatalf("Close at the deadline must say handlers were still running, got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close must return at its deadline even when a handler is stuck")
	}
}

// The client's nack_backoff spaces a failed message's redeliveries;
// WithNackBackoff overrides it per subscription, and 0 turns it off.
func TestNackBackoffSpacesRedeliveriesUnlessTurnedOff(t *testing.T) {
	const clientBackoff = 400 * time.Millisecond
	for _, c := range []struct {
		name          string
		opts          []sdk.SubscribeOption
		atLeast, less time.Duration
	}{
		{"the client's", nil, clientBackoff, 0},
		{"the subscription's", []sdk.SubscribeOption{sdk.WithNackBackoff(600*time.Millisecond, time.Second)}, 600 * time.Millisecond, 0},
		{"off", []sdk.SubscribeOption{sdk.WithNackBackoff(0, 0)}, 0, clientBackoff * 3 / 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			client, err := sdk.Open(context.Background(), sdk.Config{Driver: "memory", NackBackoff: clientBackoff}, quiet)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = client.Close(context.Background()) })
			times := make(chan time.Time, 2)
			var calls atomic.Int32
			if _, err := client.Subscribe(context.Background(), "jobs", "workers", func(context.Context, *sdk.Message) error {
				times <- time.Now()
				if calls.Add(1) == 1 {
					return errors.New("first delivery fails")
				}
				return nil
			}, c.opts...); err != nil {
				t.Fatal(err)
			}
			if err := client.Publish(context.Background(), "jobs", sdk.NewMessage([]byte("x"))); err != nil {
				t.Fatal(err)
			}
			first := testenv.Await(t, times, "the first delivery")
			gap := testenv.Await(t, times, "the redelivery").Sub(first)
			if gap < c.atLeast {
				t.Fatalf("the redelivery came %v after the failure, want at least %v", gap, c.atLeast)
			}
			if c.less > 0 && gap >= c.less {
				t.Fatalf("with the backoff off the redelivery should come at once, not after the client's %v: came after %v", clientBackoff, gap)
			}
		})
	}
}

// Metadata that is not valid UTF-8 is refused before anything is sent, on
// every driver, rather than changed on the way by some brokers.
func TestPublishRefusesMetadataThatIsNotUTF8(t *testing.T) {
	c := openMemory(t)
	for _, md := range []map[string]string{{"k": "bad \xff value"}, {"bad \xfe key": "v"}} {
		err := c.Publish(context.Background(), "jobs", &sdk.Message{Payload: []byte("p"), Metadata: md})
		if !errors.Is(err, sdk.ErrInvalidMetadata) || !strings.Contains(err.Error(), "base64") {
			t.Fatalf("metadata %q: want sdk.ErrInvalidMetadata saying how to carry binary values, got %v", md, err)
		}
	}
	if err := c.Publish(context.Background(), "jobs", &sdk.Message{Payload: []byte("\xff binary payload"), Metadata: map[string]string{"k": "ключ ✓"}}); err != nil {
		t.Fatalf("a binary payload with UTF-8 metadata was refused: %v", err)
	}
}

// A conversation started outside a handler gives Publish and Request its
// correlation id; inside a handler the consumed message's wins.
func TestWithCorrelationIDStartsAConversation(t *testing.T) {
	c := openMemory(t)
	got := make(chan *sdk.Message, 2)
	if _, err := c.Subscribe(context.Background(), "orders", "billing", func(ctx context.Context, m *sdk.Message) error {
		got <- m
		if m.Get("step") == "first" {
			next := sdk.NewMessage([]byte("next"))
			next.Set("step", "second")
			return c.Publish(sdk.WithCorrelationID(ctx, "ignored-inside-a-handler"), "orders", next)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx := sdk.WithCorrelationID(context.Background(), "corr-7")
	if sdk.CorrelationID(ctx) != "corr-7" {
		t.Fatalf("CorrelationID(ctx) = %q", sdk.CorrelationID(ctx))
	}
	first := sdk.NewMessage([]byte("first"))
	first.Set("step", "first")
	if err := c.Publish(ctx, "orders", first); err != nil {
		t.Fatal(err)
	}
	a := testenv.Await(t, got, "the first message")
	b := testenv.Await(t, got, "the message its handler published")
	if a.CorrelationID != "corr-7" || b.CorrelationID != "corr-7" || b.CausationID != a.ID {
		t.Fatalf("want corr-7 on both and the second caused by the first: %q, %q (cause %q, first %q)", a.CorrelationID, b.CorrelationID, b.CausationID, a.ID)
	}
}

// Options out of range make Subscribe and EnsureGroup fail naming them,
// instead of being replaced by a default.
func TestSubscribeOptionsOutOfRangeAreRefused(t *testing.T) {
	c := openMemory(t)
	h := func(context.Context, *sdk.Message) error { return nil }
	for _, c2 := range []struct {
		opt  sdk.SubscribeOption
		want string
	}{
		{sdk.WithConcurrency(0), "WithConcurrency(0): want at least 1"},
		{sdk.WithConcurrency(-3), "WithConcurrency(-3)"},
		{sdk.WithNackBackoff(-time.Second, time.Second), "cannot be negative"},
		{sdk.WithNackBackoff(time.Second, -time.Second), "cannot be negative"},
		{sdk.WithNackBackoff(time.Minute, time.Second), "max is below initial"},
	} {
		if _, err := c.Subscribe(context.Background(), "orders", "billing", h, c2.opt); err == nil || !strings.Contains(err.Error(), c2.want) {
			t.Errorf("Subscribe: want an error saying %q, got %v", c2.want, err)
		}
		if err := c.EnsureGroup(context.Background(), "orders", "billing", c2.opt); err == nil || !strings.Contains(err.Error(), c2.want) {
			t.Errorf("EnsureGroup: want an error saying %q, got %v", c2.want, err)
		}
	}
	s, err := c.Subscribe(context.Background(), "orders", "billing", h, sdk.WithNackBackoff(time.Second, 0), sdk.WithConcurrency(2))
	if err != nil {
		t.Fatalf("max 0 (no limit) and 2 handlers are in range: %v", err)
	}
	_ = s.Close(context.Background())
}
