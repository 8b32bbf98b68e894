package sdk_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/msgkit/adapters/memory"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// slowOpen is a memory transport whose OpenSubscription waits for release
// or its context, as a broker's slow declaration would.
type slowOpen struct {
	*memory.Transport
	entered chan struct{}
	release chan struct{}
}

func (s slowOpen) OpenSubscription(ctx context.Context, topic, group string) (driver.Subscription, error) {
	close(s.entered)
	select {
	case <-s.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.Transport.OpenSubscription(ctx, topic, group)
}

// A Subscribe waiting on the broker holds up no Publish, and returns by its
// context's deadline.
func TestPublishDoesNotWaitForASlowSubscribe(t *testing.T) {
	tr := slowOpen{Transport: memory.New(), entered: make(chan struct{}), release: make(chan struct{})}
	c := sdk.NewClient(tr, quiet)
	defer c.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	subscribed := make(chan error, 1)
	go func() {
		_, err := c.Subscribe(ctx, "slow", "g", func(context.Context, *sdk.Message) error { return nil })
		subscribed <- err
	}()
	testenv.Await(t, tr.entered, "Subscribe to reach the broker")
	published := make(chan error, 1)
	go func() { published <- c.Publish(context.Background(), "other", sdk.NewMessage(nil)) }()
	select {
	case err := <-published:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(200 * time.Millisecond):
		t.Fatal("Publish to another topic waited for a Subscribe in progress")
	}
	if err := testenv.Await(t, subscribed, "Subscribe to return"); err == nil {
		t.Fatal("a Subscribe whose setup outlives its context must fail")
	}
}

// slowReplies is a memory transport whose OpenReplySubscription waits for
// its context, as a broker that stopped answering would.
type slowReplies struct {
	*memory.Transport
	entered chan struct{}
}

func (s slowReplies) OpenReplySubscription(ctx context.Context, topic string) (driver.Subscription, error) {
	close(s.entered)
	<-ctx.Done()
	return nil, ctx.Err()
}

// A Request gives up at its own deadline while another, with a later one,
// is opening the reply topic.
func TestRequestDoesNotWaitPastItsDeadlineForAnotherOpeningTheReplyTopic(t *testing.T) {
	tr := slowReplies{Transport: memory.New(), entered: make(chan struct{})}
	c := sdk.NewClient(tr, quiet)
	defer c.Close(context.Background())
	slowCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	slow := make(chan error, 1)
	go func() {
		_, err := c.Request(slowCtx, "rpc", sdk.NewMessage(nil))
		slow <- err
	}()
	testenv.Await(t, tr.entered, "the first Request to open the reply topic")
	ctx, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	start := time.Now()
	_, err := c.Request(ctx, "rpc", sdk.NewMessage(nil))
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("a Request with a 100ms deadline waited %v for another opening the reply topic", took)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting for another request to open the reply topic") {
		t.Fatalf("want an error wrapping DeadlineExceeded that says what it waited for, got %v", err)
	}
	cancel()
	testenv.Await(t, slow, "the first Request to return")
}

// heldReplies is a memory transport whose OpenReplySubscription waits for
// release, whatever its context, and records whether the subscription it
// returned was closed.
type heldReplies struct {
	*memory.Transport
	entered, release chan struct{}
	closed           chan struct{}
}

type closeRecorder struct {
	driver.Subscription
	closed chan struct{}
}

func (c closeRecorder) Close() error {
	close(c.closed)
	return c.Subscription.Close()
}

func (h heldReplies) OpenReplySubscription(ctx context.Context, topic string) (driver.Subscription, error) {
	ds, err := h.Transport.OpenReplySubscription(ctx, topic)
	if err != nil {
		return nil, err
	}
	close(h.entered)
	<-h.release // the broker's answer, late
	return closeRecorder{ds, h.closed}, nil
}

// A reply topic that finishes opening after Close gave up waiting for it
// is closed at once, not left consuming.
func TestReplyTopicOpenedAfterCloseGaveUpIsClosed(t *testing.T) {
	tr := heldReplies{Transport: memory.New(), entered: make(chan struct{}), release: make(chan struct{}), closed: make(chan struct{})}
	c := sdk.NewClient(tr, quiet)
	requested := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := c.Request(ctx, "rpc", sdk.NewMessage(nil))
		requested <- err
	}()
	testenv.Await(t, tr.entered, "the Request to open the reply topic")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.Close(ctx); err == nil {
		t.Fatal("Close that gave up waiting for the reply topic to open must say so")
	}
	close(tr.release)
	if err := testenv.Await(t, requested, "the Request to return"); !errors.Is(err, sdk.ErrClosed) {
		t.Fatalf("want the Request to fail with ErrClosed, got %v", err)
	}
	testenv.Await(t, tr.closed, "the reply subscription opened after Close to be closed")
}
