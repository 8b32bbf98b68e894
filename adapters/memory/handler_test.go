package memory_test

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.uber.org/goleak"

	"github.com/msgkit/msgkit/adapters/memory"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

func TestClientSubscribeKeepsKeyOrderWithConcurrentHandlers(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx := context.Background()
	c := sdk.NewClient(memory.New())
	defer c.Close(ctx)
	const keys, perKey = 4, 200
	var mu sync.Mutex
	got := map[string][]int{}
	done := make(chan struct{})
	total := 0
	if _, err := c.Subscribe(ctx, "t", "g", func(_ context.Context, m *sdk.Message) error {
		n, _ := strconv.Atoi(string(m.Payload))
		mu.Lock()
		defer mu.Unlock()
		got[m.OrderingKey] = append(got[m.OrderingKey], n)
		if total++; total == keys*perKey {
			close(done)
		}
		return nil
	}, sdk.WithConcurrency(4)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < perKey; i++ {
		for k := 0; k < keys; k++ {
			m := sdk.NewMessage([]byte(strconv.Itoa(i)))
			m.OrderingKey = fmt.Sprint("key-", k)
			if err := c.Publish(ctx, "t", m); err != nil {
				t.Fatal(err)
			}
		}
	}
	testenv.Await(t, done, "every message")
	mu.Lock()
	defer mu.Unlock()
	for key, seq := range got {
		for i, n := range seq {
			if n != i {
				t.Fatalf("%s: message %d arrived at position %d: per-key order broken (%v...)", key, n, i, seq[:min(len(seq), 10)])
			}
		}
	}
}

// countingTransport counts the messages its subscriptions receive.
type countingTransport struct {
	driver.Transport
	calls *atomic.Int64
}

func (c countingTransport) OpenSubscription(ctx context.Context, topic, group string) (driver.Subscription, error) {
	s, err := c.Transport.OpenSubscription(ctx, topic, group)
	if err != nil {
		return nil, err
	}
	return countingSubscription{s, c.calls}, nil
}

type countingSubscription struct {
	driver.Subscription
	calls *atomic.Int64
}

func (s countingSubscription) ReceiveBatch(ctx context.Context, max int) ([]*driver.Message, error) {
	msgs, err := s.Subscription.ReceiveBatch(ctx, max)
	s.calls.Add(int64(len(msgs)))
	return msgs, err
}

// A subscription that is closing takes no new message: one published
// meanwhile stays with the group, or, if it was received just before the
// stop, goes back to it without a retry per nanosecond; the next member
// handles it, once.
func TestClosingSubscriptionLeavesNewMessagesToTheGroup(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx := context.Background()
	var calls atomic.Int64
	c := sdk.NewClient(countingTransport{memory.New(), &calls})
	defer c.Close(ctx)
	handled := make(chan string, 10)
	stopping, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	defer free() // a failure below must not leave Close waiting on the handler
	first, err := c.Subscribe(ctx, "t", "g", func(ctx context.Context, m *sdk.Message) error {
		if string(m.Payload) == "0" {
			<-sdk.Stopping(ctx)
			close(stopping)
			<-release
		}
		handled <- string(m.Payload)
		return nil
	}, sdk.WithConcurrency(2))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, "t", sdk.NewMessage([]byte("0"))); err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); calls.Load() != 1; time.Sleep(time.Millisecond) { // no signal exists below the handler
		if time.Since(start) > 10*time.Second {
			t.Fatal("after 10s the first handler goroutine has not been given message 0")
		}
	}
	closed := make(chan error, 1)
	go func() { closed <- first.Close(ctx) }()
	testenv.Await(t, stopping, "the subscription to start closing")
	if err := c.Publish(ctx, "t", sdk.NewMessage([]byte("1"))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // a busy loop would receive "1" thousands of times meanwhile
	if n := calls.Load(); n > 2 {
		t.Fatalf("%d deliveries while the subscription drained, want at most 2 (\"0\" and \"1\" once each)", n)
	}
	free()
	if err := testenv.Await(t, closed, "the subscription to close"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(ctx, "t", "g", func(_ context.Context, m *sdk.Message) error {
		handled <- string(m.Payload)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// "1" may have been handled by the first subscription, if its goroutine
	// took it in the instant between Stopping and the subscription's stop.
	seen := map[string]bool{}
	for len(seen) < 2 {
		got := testenv.Await(t, handled, `messages "0" and "1"`)
		if seen[got] {
			t.Fatalf("message %s handled twice", got)
		}
		seen[got] = true
	}
	select {
	case extra := <-handled:
		t.Fatalf("message %s handled twice", extra)
	case <-time.After(50 * time.Millisecond): // a redelivery would be immediate
	}
}

// A consumer that acks and then stops at once (its context cancelled)
// leaves both ready for the subscriber's goroutine; the ack must win, or
// the message goes back to the group and is handled twice. On one
// processor, with the subscriber's goroutine waiting to hand the message
// over, it cannot run between the ack and the cancel, so it finds both
// ready; repeated, because it then picks one at random.
func TestAckJustBeforeTheContextEndsIsKept(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	tr := memory.New()
	defer tr.Close()
	pub := sdk.NewWatermillPublisher(tr)
	sub := sdk.NewWatermillSubscriber(tr, "g", nil)
	defer sub.Close()
	for i := range 200 {
		topic := fmt.Sprint("t", i)
		ctx, cancel := context.WithCancel(context.Background())
		ch, err := sub.Subscribe(ctx, topic) // first: a group gets what is published after it exists
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(topic, message.NewMessage("work", nil)); err != nil {
			t.Fatal(err)
		}
		runtime.Gosched() // the subscriber's goroutine waits to hand the message over
		testenv.AwaitMessage(t, ch, "the message").Ack()
		cancel()
		for range ch { // closed once the subscription has settled the message
		}
		// A message put back would come before the marker, in publish order.
		if err := pub.Publish(topic, message.NewMessage("marker", nil)); err != nil {
			t.Fatal(err)
		}
		ch, err = sub.Subscribe(context.Background(), topic)
		if err != nil {
			t.Fatal(err)
		}
		if m := testenv.AwaitMessage(t, ch, "the marker"); m.UUID != "marker" {
			t.Fatalf("round %d: the acked message came back (%s): the ack was lost to the context's end", i, m.UUID)
		}
	}
}
