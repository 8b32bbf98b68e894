package conformance

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/msgkit/msgkit/sdk"
)

func testRoundTrip(e *env) {
	ch, _ := e.subscribe(uniqueName("g"))
	sent := newMsg("hello")
	e.publish(sent)
	got := e.receive(ch, "a message published after Subscribe returned must be delivered")
	if got.UUID != sent.UUID {
		e.t.Fatalf("guarantee broken: the message id must round-trip: sent %q, received %q", sent.UUID, got.UUID)
	}
	if string(got.Payload) != "hello" {
		e.t.Fatalf("guarantee broken: the payload must round-trip: sent %q, received %q", "hello", preview(got.Payload))
	}
	ack(e.t, got)
}

func testAckPreventsRedelivery(e *env) {
	ch, _ := e.subscribe(uniqueName("g"))
	first := newMsg("first")
	e.publish(first)
	got := e.receive(ch, "a published message must be delivered")
	ack(e.t, got)

	// A second message that must arrive gives a redelivery of the first the
	// chance to show up before the quiet period starts.
	sentinel := newMsg("sentinel")
	e.publish(sentinel)
	next := e.receive(ch, "a published message must be delivered")
	if next.UUID == first.UUID {
		e.t.Fatalf("guarantee broken: an acked message must not be redelivered: %s came again", first.UUID)
	}
	ack(e.t, next)
	e.expectNone(ch, "an acked message must not be redelivered")
}

func testNackRedelivers(e *env) {
	ch, _ := e.subscribe(uniqueName("g"))
	sent := newMsg("retry me")
	sent.Metadata.Set("tenant", "acme")
	e.publish(sent)
	got := e.receive(ch, "a published message must be delivered")
	got.Metadata.Set("x-scribbled", "by the failed attempt")
	got.Nack()
	again := e.receive(ch, "a nacked message must be redelivered")
	if again.UUID != sent.UUID {
		e.t.Fatalf("guarantee broken: a nacked message must be redelivered: expected %s again, got %s", sent.UUID, again.UUID)
	}
	if string(again.Payload) != "retry me" {
		e.t.Fatalf("guarantee broken: a redelivered message must keep its payload: got %q", preview(again.Payload))
	}
	if again.Metadata.Get("tenant") != "acme" || again.Metadata.Get("x-scribbled") != "" {
		e.t.Fatalf("guarantee broken: a redelivered message must carry its published metadata, and nothing a failed attempt wrote into it: got %v", again.Metadata)
	}
	ack(e.t, again)
}

// clientFor opens a second transport wrapped in an sdk.Client, so the suite
// also checks the path services use: Handler errors and panics.
func (e *env) client() *sdk.Client {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, e.h.Timeout)
	defer cancel()
	tr, err := e.h.Open(ctx, e.t.T)
	if err != nil {
		e.t.Fatalf("setup: Harness.Open failed: %v", err)
	}
	c := sdk.NewClient(tr, sdk.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), e.h.Timeout)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			e.t.Errorf("cleanup: Client.Close failed: %v", err)
		}
	})
	return c
}

func testHandlerErrorRedelivers(e *env) {
	testHandlerFailureRedelivers(e, "a message whose handler returned an error must be redelivered", func() error {
		return errors.New("transient failure")
	})
}

func testHandlerPanicRedelivers(e *env) {
	testHandlerFailureRedelivers(e, "a message whose handler panicked must be redelivered", func() error {
		panic("handler bug")
	})
}

func testHandlerFailureRedelivers(e *env, guarantee string, fail func() error) {
	c := e.client()
	calls := make(chan string, 10)
	var n atomic.Int32
	_, err := c.Subscribe(e.ctx, e.topic, uniqueName("g"), func(_ context.Context, m *sdk.Message) error {
		calls <- m.ID
		if n.Add(1) == 1 {
			return fail()
		}
		return nil
	})
	if err != nil {
		e.t.Fatalf("setup: Client.Subscribe failed: %v", err)
	}
	msg := sdk.NewMessage([]byte("work"))
	if err := c.Publish(e.ctx, e.topic, msg); err != nil {
		e.t.Fatalf("Client.Publish failed: %v", err)
	}
	for i := 1; i <= 2; i++ {
		select {
		case id := <-calls:
			if id != msg.ID {
				e.t.Fatalf("guarantee broken: %s: handler call %d got message %s, want %s", guarantee, i, id, msg.ID)
			}
		case <-time.After(e.h.Timeout):
			if i == 1 {
				e.t.Fatalf("guarantee broken: a published message must reach the handler: none within %v", e.h.Timeout)
			}
			e.t.Fatalf("guarantee broken: %s: no second delivery within %v", guarantee, e.h.Timeout)
		}
	}
}

func testUnackedRedeliveredAfterClose(e *env) {
	group := uniqueName("g")
	ch, sub := e.subscribe(group)
	sent := newMsg("in flight")
	e.publish(sent)
	got := e.receive(ch, "a published message must be delivered")
	_ = got // neither acked nor nacked: the consumer "crashes" mid-handler
	if err := sub.Close(); err != nil {
		e.t.Fatalf("Subscriber.Close failed: %v", err)
	}
	ch2, _ := e.subscribe(group)
	again := e.receive(ch2, "a message left unacked by a closed subscriber must be redelivered to the group")
	if again.UUID != sent.UUID {
		e.t.Fatalf("guarantee broken: a message left unacked by a closed subscriber must be redelivered: expected %s, got %s", sent.UUID, again.UUID)
	}
	ack(e.t, again)
}

// testFailingMessageBacksOff: a message whose handler keeps failing comes
// back more and more slowly, not in a hot loop, and keeps coming back.
func testFailingMessageBacksOff(e *env) {
	c := e.client() // the default nack backoff: 100ms, doubling
	var calls atomic.Int32
	second := make(chan struct{})
	_, err := c.Subscribe(e.ctx, e.topic, uniqueName("g"), func(context.Context, *sdk.Message) error {
		if calls.Add(1) == 2 {
			close(second)
		}
		return errors.New("dependency down")
	})
	if err != nil {
		e.t.Fatalf("setup: Client.Subscribe failed: %v", err)
	}
	if err := c.Publish(e.ctx, e.topic, sdk.NewMessage([]byte("always fails"))); err != nil {
		e.t.Fatalf("Client.Publish failed: %v", err)
	}
	select {
	case <-second:
	case <-time.After(e.h.Timeout):
		e.t.Fatalf("guarantee broken: a message whose handler failed must be redelivered: %d deliveries within %v", calls.Load(), e.h.Timeout)
	}
	time.Sleep(2 * time.Second) // the window the backoff is measured over, not a synchronisation
	// 100ms, 200ms, 400ms, 800ms...: at most 5 more deliveries in 2s;
	// without a backoff, hundreds.
	if n := calls.Load(); n > 8 {
		e.t.Fatalf("guarantee broken: a failing message must be redelivered with a growing delay (nack backoff), not at once: %d deliveries in about 2s", n)
	}
}

// testPublishedBeforeCloseIsDelivered: messages whose Publish returned nil
// are delivered even when the publishing client closes right after.
func testPublishedBeforeCloseIsDelivered(e *env) {
	group := uniqueName("g")
	consumer := e.client()
	ctx, cancel := context.WithTimeout(e.ctx, e.h.Timeout)
	defer cancel()
	if err := consumer.EnsureGroup(ctx, e.topic, group); err != nil {
		e.t.Fatalf("setup: EnsureGroup failed: %v", err)
	}
	tr, err := e.h.Open(ctx, e.t.T)
	if err != nil {
		e.t.Fatalf("setup: Harness.Open failed: %v", err)
	}
	producer := sdk.NewClient(tr, sdk.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	const n = 20
	sent := map[string]bool{}
	for i := 0; i < n; i++ {
		m := sdk.NewMessage([]byte("before close"))
		if err := producer.Publish(ctx, e.topic, m); err != nil {
			e.t.Fatalf("Client.Publish failed: %v", err)
		}
		sent[m.ID] = true
	}
	if err := producer.Close(ctx); err != nil {
		e.t.Fatalf("Client.Close failed: %v", err)
	}
	got := make(chan string, n)
	if _, err := consumer.Subscribe(e.ctx, e.topic, group, func(_ context.Context, m *sdk.Message) error {
		got <- m.ID
		return nil
	}); err != nil {
		e.t.Fatalf("setup: Client.Subscribe failed: %v", err)
	}
	for len(sent) > 0 {
		select {
		case id := <-got:
			delete(sent, id)
		case <-time.After(e.h.Timeout):
			e.t.Fatalf("guarantee broken: a message whose Publish returned nil must be delivered, even when its client closed at once: %d of %d missing after %v", len(sent), n, e.h.Timeout)
		}
	}
}
