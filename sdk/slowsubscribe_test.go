package sdk_test

import (
	"context"
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
