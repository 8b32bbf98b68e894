package bench

import (
	"context"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/msgkit/msgkit/adapters/memory"
	"github.com/msgkit/msgkit/sdk"
)

// BenchmarkMemoryPublish publishes one 256 B message per call to a topic
// with one consumer group (nothing consumes it): "raw" through the memory
// transport's Watermill publisher, "sdk" through Client.Publish, which
// takes the driver's MessagePublisher fast path and also stamps the id,
// time and standard attributes.
func BenchmarkMemoryPublish(b *testing.B) {
	var r rates
	r.run(b, "raw", func(b *testing.B) {
		tr := memory.New()
		defer tr.Close()
		memoryGroup(b, tr, "t", "g")
		pub := tr.Publisher()
		for i := 0; i < b.N; i++ {
			m := message.NewMessage(uuid.NewString(), payload)
			m.Metadata.Set(sdk.KeyEventType, "order.created")
			if err := pub.Publish("t", m); err != nil {
				b.Fatal(err)
			}
		}
	})
	r.run(b, "sdk", func(b *testing.B) {
		tr := memory.New()
		c := sdk.NewClient(tr, sdk.WithLogger(quiet))
		defer c.Close(context.Background())
		memoryGroup(b, tr, "t", "g")
		ctx := context.Background()
		for i := 0; i < b.N; i++ {
			m := sdk.NewMessage(payload)
			m.EventType = "order.created"
			if err := c.Publish(ctx, "t", m); err != nil {
				b.Fatal(err)
			}
		}
	})
	r.report(b, "memory publish")
}

// memoryGroup creates group on topic of the memory broker: a subscription
// that ends at once leaves its group behind, and the messages published next
// wait in it.
func memoryGroup(b *testing.B, tr *memory.Transport, topic, group string) {
	sub, err := tr.Subscriber(group)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := sub.Subscribe(ctx, topic); err != nil {
		b.Fatal(err)
	}
	cancel()
	sub.Close()
}
