package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/msgkit/msgkit/sdk"
)

// Recreation describes, for OutlivesRecreation, how to delete what a topic
// and group map to on the broker and how to tell that it is back.
type Recreation struct {
	// Remove deletes what the topic and group map to (a queue; a topic and
	// its group's queue), as an administrator, another service or an
	// emulator that restarted empty would.
	Remove func(ctx context.Context) error
	// Restored reports whether the group's queue (and what feeds it) exists
	// again.
	Restored func(ctx context.Context) (bool, error)
	// FirstPublishArrives: a message published right after Remove, before
	// the subscription has restored anything, reaches the group (the
	// publish itself creates the queue the group reads). Where it is false
	// such a message had nowhere to go, and only the publish's success is
	// checked.
	FirstPublishArrives bool
}

// OutlivesRecreation checks that a running client goes on after what topic
// and its group "g" map to was deleted under it: a publish right after the
// deletion succeeds (the driver creates what it needs again), the
// subscription restores its queue by itself when nothing is published,
// and what is published after that reaches it.
func OutlivesRecreation(t *testing.T, c *sdk.Client, topic string, r Recreation) {
	t.Helper()
	got := make(chan string, 100)
	ctx, cancel := context.WithTimeout(context.Background(), 4*WaitLimit)
	defer cancel()
	sub, err := c.Subscribe(ctx, topic, "g", func(_ context.Context, m *sdk.Message) error {
		got <- string(m.Payload)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Close(context.Background()) }()
	arrives := func(payload string) {
		t.Helper()
		for {
			if p := Await(t, got, "message "+payload); p == payload {
				return
			}
		}
	}
	publish := func(payload string) {
		t.Helper()
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
		defer pcancel()
		if err := c.Publish(pctx, topic, sdk.NewMessage([]byte(payload))); err != nil {
			t.Fatalf("publish %s: %v", payload, err)
		}
	}
	restored := func(after string) {
		t.Helper()
		deadline := time.Now().Add(WaitLimit)
		for {
			back, err := r.Restored(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if back {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the subscription did not restore its queue within %v %s", WaitLimit, after)
			}
			time.Sleep(100 * time.Millisecond) // the broker announces no creation: poll it, bounded
		}
	}
	publish("before")
	arrives("before")

	// The publisher finds the topic's queue gone first.
	if err := r.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	publish("published right after the deletion")
	if r.FirstPublishArrives {
		arrives("published right after the deletion")
	}
	restored("of the publish after the deletion")

	// The subscription finds it gone first, and nothing is published
	// until it has restored it.
	if err := r.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	restored("of its deletion, with nothing published")
	publish("published once the subscription restored its queue")
	arrives("published once the subscription restored its queue")
}
