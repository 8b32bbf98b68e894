package conformance

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/msgkit/msgkit/middleware"
	"github.com/msgkit/msgkit/sdk"
)

// deadLetterSetup subscribes an inspector to the topic's dead-letter topic
// and the failing handler, wrapped in DeadLetter, to the topic.
func (e *env) deadLetterSetup(fail error, maxDeliveries int) (*sdk.Client, <-chan *sdk.Message, *atomic.Int32) {
	c := e.client()
	dead := make(chan *sdk.Message, 4)
	if _, err := c.Subscribe(e.ctx, e.topic+".dlq", uniqueName("inspector"), func(_ context.Context, m *sdk.Message) error { dead <- m; return nil }); err != nil {
		e.t.Fatalf("setup: Subscribe to the dead-letter topic failed: %v", err)
	}
	var calls atomic.Int32
	h := middleware.Chain(func(context.Context, *sdk.Message) error { calls.Add(1); return fail },
		middleware.DeadLetter(middleware.DeadLetterConfig{Publisher: c, MaxDeliveries: maxDeliveries}))
	if _, err := c.Subscribe(e.ctx, e.topic, "handler", h); err != nil {
		e.t.Fatalf("setup: Subscribe failed: %v", err)
	}
	return c, dead, &calls
}

func (e *env) expectDeadLetter(dead <-chan *sdk.Message, sent *sdk.Message, guarantee string, headers map[string]string) {
	e.t.Helper()
	select {
	case m := <-dead:
		if m.ID != sent.ID || string(m.Payload) != string(sent.Payload) {
			e.t.Fatalf("guarantee broken: %s: the dead letter must be the original message: got %s %q", guarantee, m.ID, m.Payload)
		}
		for k, v := range headers {
			if m.Get(k) != v {
				e.t.Errorf("guarantee broken: %s: header %s = %q, want %q", guarantee, k, m.Get(k), v)
			}
		}
	case <-time.After(e.h.Timeout):
		e.t.Fatalf("guarantee broken: %s: nothing reached the dead-letter topic within %v", guarantee, e.h.Timeout)
	}
}

func testPermanentFailureIsDeadLettered(e *env) {
	c, dead, calls := e.deadLetterSetup(sdk.Permanent(errors.New("cannot decode")), 3)
	sent := sdk.NewMessage([]byte("garbled"))
	if err := c.Publish(e.ctx, e.topic, sent); err != nil {
		e.t.Fatalf("Publish failed: %v", err)
	}
	e.expectDeadLetter(dead, sent, "a message failing permanently must go to <topic>.dlq at once, with why", map[string]string{
		middleware.KeyDLQError: "cannot decode", middleware.KeyDLQOriginalTopic: e.topic, middleware.KeyDLQHandler: "handler",
		middleware.KeyDLQDeliveries: "1", middleware.KeyDLQPermanent: "true",
	})
	if n := calls.Load(); n != 1 {
		e.t.Fatalf("guarantee broken: a permanent failure must not be redelivered: handled %d times", n)
	}
}

func testRepeatedFailureIsDeadLetteredAfterRedeliveries(e *env) {
	c, dead, calls := e.deadLetterSetup(errors.New("dependency down"), 3)
	sent := sdk.NewMessage([]byte("job"))
	if err := c.Publish(e.ctx, e.topic, sent); err != nil {
		e.t.Fatalf("Publish failed: %v", err)
	}
	e.expectDeadLetter(dead, sent, "a message failing on every delivery must be redelivered, then dead-lettered", map[string]string{
		middleware.KeyDLQError: "dependency down", middleware.KeyDLQDeliveries: "3", middleware.KeyDLQPermanent: "false",
	})
	if n := calls.Load(); n != 3 {
		e.t.Fatalf("guarantee broken: want 3 deliveries before dead-lettering, got %d", n)
	}
}
