package conformance

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
	"github.com/google/uuid"

	"github.com/msgkit/msgkit/sdk"
)

// RunWatermillSuite runs Watermill's own pub/sub test suite
// (github.com/ThreeDotsLabs/watermill/pubsub/tests) on the Watermill
// publisher and subscribers of clients that open returns, as a Watermill
// user would run it. cfg is the client's config; the suite nacks one
// message hundreds of times and expects it back at once, so it runs with
// nack_backoff off, as a service relying on that would configure it.
// features are what the driver's capabilities say. The subscribers one
// test makes without a consumer group share one group, as the subscribers
// of watermill-amqp's durable queue per topic do: one test subscribes,
// closes, and expects a new subscriber to receive what was published
// meanwhile. For the same reason NewSubscriberReceivesOldMessages, which
// expects every subscriber made without a group to read the whole topic on
// its own (watermill-kafka's subscribers without a consumer group), does
// not apply: every msgkit subscriber is a member of a group.
func RunWatermillSuite(t *testing.T, features tests.Features, cfg func(t *testing.T) sdk.Config) {
	t.Helper()
	var mu sync.Mutex
	constructor := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		c := cfg(t)
		c.NackBackoff = -1 // off
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		client, err := sdk.Open(ctx, c)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		sub, err := client.Subscriber(group)
		if err != nil {
			t.Fatalf("subscriber: %v", err)
		}
		pub := client.Publisher()
		mu.Lock()
		defer mu.Unlock()
		t.Cleanup(func() {
			_ = sub.Close()
			_ = pub.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = client.Close(ctx)
		})
		return pub, sub
	}
	tests.TestPubSub(t, features,
		func(t *testing.T) (message.Publisher, message.Subscriber) {
			return constructor(t, "wm-"+uuid.NewSHA1(uuid.NameSpaceURL, []byte(t.Name())).String()[:8])
		},
		constructor)
}
