package bench

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/msgkit/msgkit/sdk"
)

// msgkitSystem publishes with Client.Publish and consumes with
// Client.Subscribe, as a service does; messages get their id from the SDK.
func msgkitSystem(name string, c *sdk.Client, opts ...sdk.SubscribeOption) *system {
	return &system{
		name: name,
		publish: func(ctx context.Context, topic string, payloads [][]byte) error {
			msgs := make([]*sdk.Message, len(payloads))
			for i, p := range payloads {
				msgs[i] = &sdk.Message{Payload: p}
			}
			return c.Publish(ctx, topic, msgs...)
		},
		consume: func(ctx context.Context, topic, group string, got func([]byte)) (func(), error) {
			sub, err := c.Subscribe(ctx, topic, group, func(_ context.Context, m *sdk.Message) error {
				got(m.Payload)
				return nil
			}, opts...)
			if err != nil {
				return nil, err
			}
			return func() { _ = sub.Close(context.Background()) }, nil
		},
	}
}

// watermillSystem runs a Watermill publisher and subscribers as a
// Watermill service does: Publish with new messages, and each subscriber's
// channel read by one goroutine that acks each message after handling it.
// newSub makes one subscriber per consumer of a group; consumers is how
// many run at once.
func watermillSystem(name string, pub message.Publisher, newSub func(topic, group string) (message.Subscriber, error), consumers int) *system {
	return &system{
		name: name,
		publish: func(_ context.Context, topic string, payloads [][]byte) error {
			msgs := make([]*message.Message, len(payloads))
			for i, p := range payloads {
				msgs[i] = message.NewMessage(watermill.NewUUID(), p)
			}
			return pub.Publish(topic, msgs...)
		},
		consume: func(ctx context.Context, topic, group string, got func([]byte)) (func(), error) {
			ctx, cancel := context.WithCancel(ctx)
			var subs []message.Subscriber
			var wg sync.WaitGroup
			stop := func() {
				cancel()
				for _, s := range subs {
					_ = s.Close()
				}
				wg.Wait()
			}
			for range consumers {
				sub, err := newSub(topic, group)
				if err != nil {
					stop()
					return nil, fmt.Errorf("watermill subscriber: %w", err)
				}
				subs = append(subs, sub)
				ch, err := sub.Subscribe(ctx, topic)
				if err != nil {
					stop()
					return nil, fmt.Errorf("watermill subscribe: %w", err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for m := range ch {
						got(m.Payload)
						m.Ack()
					}
				}()
			}
			return stop, nil
		},
	}
}

// closeLater closes c when the benchmark ends.
func closeLater(b *testing.B, c interface{ Close() error }) {
	b.Cleanup(func() { _ = c.Close() })
}
