package conformance

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.uber.org/goleak"

	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// expectClosed drains ch (nacking anything still arriving) until it closes.
func (e *env) expectClosed(ch <-chan *message.Message, guarantee string) {
	e.t.Helper()
	deadline := time.After(e.h.Timeout)
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				return
			}
			m.Nack()
		case <-deadline:
			e.t.Fatalf("guarantee broken: %s: the channel was still open after %v", guarantee, e.h.Timeout)
		}
	}
}

// within runs f and fails if it does not return in time.
func (e *env) within(what string, f func() error) error {
	e.t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(e.h.Timeout):
		e.t.Fatalf("guarantee broken: %s must return: still blocked after %v", what, e.h.Timeout)
	}
	return nil
}

func testSubscriberCloseClosesChannels(e *env) {
	sub := e.subscriber(uniqueName("g"))
	ch1, err := sub.Subscribe(e.ctx, e.topic)
	if err != nil {
		e.t.Fatalf("Subscribe failed: %v", err)
	}
	ch2, err := sub.Subscribe(e.ctx, e.topic+"-other")
	if err != nil {
		e.t.Fatalf("Subscribe failed: %v", err)
	}
	if err := e.within("Subscriber.Close", sub.Close); err != nil {
		e.t.Fatalf("Subscriber.Close failed: %v", err)
	}
	const guarantee = "Subscriber.Close must close every subscription channel"
	e.expectClosed(ch1, guarantee)
	e.expectClosed(ch2, guarantee)
}

func testContextCancelClosesChannel(e *env) {
	sub := e.subscriber(uniqueName("g"))
	ctx, cancel := context.WithCancel(e.ctx)
	ch, err := sub.Subscribe(ctx, e.topic)
	if err != nil {
		e.t.Fatalf("Subscribe failed: %v", err)
	}
	cancel()
	e.expectClosed(ch, "cancelling the Subscribe context must close the subscription channel")
}

func testCloseUnblocksIdle(e *env) {
	ch, sub := e.subscribe(uniqueName("g"))
	if err := e.within("Subscriber.Close with a consumer waiting on an empty topic", sub.Close); err != nil {
		e.t.Fatalf("Subscriber.Close failed: %v", err)
	}
	e.expectClosed(ch, "Subscriber.Close must close the channel of an idle subscription")
}

func testPublishAfterCloseFails(e *env) {
	tr := e.open()
	pub := sdk.NewWatermillPublisher(tr)
	if err := pub.Close(); err != nil {
		e.t.Fatalf("Publisher.Close failed: %v", err)
	}
	if err := pub.Publish(e.topic, newMsg("too late")); err == nil {
		e.t.Fatal("guarantee broken: Publish after Publisher.Close must return an error, it returned nil")
	}
}

func testCloseLeaksNoGoroutines(e *env) {
	before := goleak.IgnoreCurrent()
	ctx, cancel := context.WithTimeout(e.ctx, e.h.Timeout)
	defer cancel()
	tr, err := e.h.Open(ctx, e.t.T)
	if err != nil {
		e.t.Fatalf("setup: Harness.Open failed: %v", err)
	}
	sub := sdk.NewWatermillSubscriber(tr, uniqueName("g"), nil)
	pub := sdk.NewWatermillPublisher(tr)
	ch, err := sub.Subscribe(e.ctx, e.topic)
	if err != nil {
		e.t.Fatalf("Subscribe failed: %v", err)
	}
	if err := pub.Publish(e.topic, newMsg("leak check")); err != nil {
		e.t.Fatalf("Publish failed: %v", err)
	}
	ack(e.t, e.receive(ch, "a published message must be delivered"))
	if err := sub.Close(); err != nil {
		e.t.Fatalf("Subscriber.Close failed: %v", err)
	}
	if err := pub.Close(); err != nil {
		e.t.Fatalf("Publisher.Close failed: %v", err)
	}
	if err := tr.Close(); err != nil {
		e.t.Fatalf("Transport.Close failed: %v", err)
	}
	opts := append([]goleak.Option{before}, e.h.LeakOptions...)
	if err := goleak.Find(opts...); err != nil {
		e.t.Fatalf("guarantee broken: closing the subscriber, publisher and transport must stop every goroutine they started:\n%v", err)
	}
}

func testClientCloseDrains(e *env) {
	c := e.client()
	group := uniqueName("g")
	started := make(chan struct{})
	release := make(chan struct{})
	var cancelled atomic.Bool
	_, err := c.Subscribe(e.ctx, e.topic, group, func(ctx context.Context, _ *sdk.Message) error {
		close(started)
		<-release
		cancelled.Store(ctx.Err() != nil)
		return nil
	})
	if err != nil {
		e.t.Fatalf("Client.Subscribe failed: %v", err)
	}
	msg := sdk.NewMessage([]byte("slow work"))
	if err := c.Publish(e.ctx, e.topic, msg); err != nil {
		e.t.Fatalf("Client.Publish failed: %v", err)
	}
	select {
	case <-started:
	case <-time.After(e.h.Timeout):
		e.t.Fatalf("guarantee broken: a published message must reach the handler: none within %v", e.h.Timeout)
	}
	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), e.h.Timeout)
		defer cancel()
		closed <- c.Close(ctx)
	}()
	select {
	case err := <-closed:
		close(release)
		e.t.Fatalf("guarantee broken: Client.Close must wait for running handlers: it returned (%v) while one was running", err)
	default:
	}
	close(release)
	select {
	case err := <-closed:
		if err != nil {
			e.t.Fatalf("Client.Close after the handler finished must succeed, got: %v", err)
		}
	case <-time.After(e.h.Timeout):
		e.t.Fatalf("guarantee broken: Client.Close must return once handlers finish: still blocked after %v", e.h.Timeout)
	}
	if cancelled.Load() {
		e.t.Fatal("guarantee broken: a handler that finishes before the shutdown deadline must not see its context cancelled")
	}
	if err := c.Publish(e.ctx, e.topic, sdk.NewMessage(nil)); !errors.Is(err, sdk.ErrClosed) {
		e.t.Fatalf("guarantee broken: Client.Publish after Close must fail with ErrClosed, got %v", err)
	}
	// The drained message was acked: the group must not see it again.
	ch, _ := e.subscribe(group)
	e.expectNone(ch, "a message whose handler finished during Close must be acked, not redelivered")
}

// testTransportCloseClosesSubscriptions closes a transport under an open
// subscription, as a program that closes its transport before its client
// does: the subscription must then say it is closed, so that the engine
// stops instead of retrying it forever.
func testTransportCloseClosesSubscriptions(e *env) {
	ctx, cancel := context.WithTimeout(e.ctx, e.h.Timeout)
	defer cancel()
	tr, sub := e.openSubscribed(ctx)
	if err := e.within("Transport.Close with a subscription open", tr.Close); err != nil {
		e.t.Fatalf("Transport.Close failed: %v", err)
	}
	var got error
	_ = e.within("ReceiveBatch on a subscription whose transport was closed", func() error {
		_, got = sub.ReceiveBatch(ctx, 1)
		return nil
	})
	if !errors.Is(got, driver.ErrClosed) {
		e.t.Fatalf("guarantee broken: ReceiveBatch on a subscription whose transport was closed must fail with an error wrapping driver.ErrClosed (the transport closes its subscriptions), got %v", got)
	}
	if _, err := tr.OpenSubscription(ctx, e.topic, uniqueName("g")); !errors.Is(err, driver.ErrClosed) {
		e.t.Fatalf("guarantee broken: OpenSubscription on a closed transport must fail with an error wrapping driver.ErrClosed, got %v", err)
	}
	_ = e.within("Subscription.Close after its transport closed", sub.Close)
}

// testSubscriptionClosedTwiceAtOnce: a subscription's Close may run twice
// at once, and beside its transport's Close, as when the client's Close
// gives up waiting for a subscription to stop and closes the transport
// while the subscription's own Close still runs. Every call returns; run
// with -race, the detector reports a driver whose Close is not safe so.
func testSubscriptionClosedTwiceAtOnce(e *env) {
	ctx, cancel := context.WithTimeout(e.ctx, e.h.Timeout)
	defer cancel()
	tr, sub := e.openSubscribed(ctx)
	closes := []func() error{sub.Close, sub.Close, tr.Close}
	done := make(chan error, len(closes))
	for _, c := range closes {
		go func() { done <- c() }()
	}
	for range closes {
		_ = e.within("Subscription.Close twice at once and Transport.Close beside them", func() error { return <-done })
	}
}

// openSubscribed opens a transport and one subscription on it, to the
// test's topic in a group of its own.
func (e *env) openSubscribed(ctx context.Context) (driver.Transport, driver.Subscription) {
	e.t.Helper()
	tr := e.open()
	sub, err := tr.OpenSubscription(ctx, e.topic, uniqueName("g"))
	if err != nil {
		e.t.Fatalf("OpenSubscription failed: %v", err)
	}
	return tr, sub
}
