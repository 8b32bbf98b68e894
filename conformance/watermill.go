package conformance

import (
	"context"
	"fmt"
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
//
// The suite's messages carry no deadline, and a Publish retries a broker
// that does not answer until its message's context ends; each Publish
// here gets watermillPublishWait, so that a broker gone mid-suite fails
// the test that publishes rather than holding it until go test's timeout.
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
		pub := boundedPublisher{client.Publisher()}
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

// watermillPublishWait bounds each Publish of the Watermill suite whose
// first message has no deadline of its own (a variable for this package's
// test).
var watermillPublishWait = time.Minute

// boundedPublisher gives a Publish whose messages carry no deadline one of
// watermillPublishWait. It publishes a copy of the first message (whose
// context bounds the call) so the suite's own messages stay as they are.
type boundedPublisher struct{ message.Publisher }

func (p boundedPublisher) Publish(topic string, msgs ...*message.Message) error {
	if len(msgs) == 0 {
		return p.Publisher.Publish(topic)
	}
	if _, ok := msgs[0].Context().Deadline(); ok {
		return p.Publisher.Publish(topic, msgs...)
	}
	ctx, cancel := context.WithTimeout(msgs[0].Context(), watermillPublishWait)
	defer cancel()
	first := msgs[0].Copy()
	first.SetContext(ctx)
	bounded := append([]*message.Message{first}, msgs[1:]...)
	if err := p.Publisher.Publish(topic, bounded...); err != nil {
		return fmt.Errorf("within the %v the conformance suite gives a Watermill Publish: %w", watermillPublishWait, err)
	}
	return nil
}
