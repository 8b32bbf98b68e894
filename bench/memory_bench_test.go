package bench

import (
	"context"
	"math"
	"testing"

	"github.com/google/uuid"

	"github.com/msgkit/msgkit/adapters/memory"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// BenchmarkMemoryPublish publishes one 256 B message per call to a topic
// with one consumer group (nothing consumes it): "raw" straight into the
// memory driver's SendBatch, "sdk" through Client.Publish, which also
// stamps the id, time and standard attributes, checks the limits and goes
// through the engine's sender.
func BenchmarkMemoryPublish(b *testing.B) {
	var r rates
	r.run(b, "raw", func(b *testing.B) {
		tr := unboundedMemory(b)
		defer tr.Close()
		memoryGroup(b, tr, "t", "g")
		ctx := context.Background()
		for i := 0; i < b.N; i++ {
			m := &driver.Message{ID: uuid.NewString(), Payload: payload, Metadata: map[string]string{sdk.KeyEventType: "order.created"}}
			if err := tr.SendBatch(ctx, "t", []*driver.Message{m}); err != nil {
				b.Fatal(err)
			}
		}
	})
	r.run(b, "sdk", func(b *testing.B) {
		tr := unboundedMemory(b)
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

// unboundedMemory is a memory broker whose groups hold every message b.N
// publishes, which nothing consumes here.
func unboundedMemory(b *testing.B) *memory.Transport {
	tr, err := memory.NewWithOptions(memory.Options{MaxQueued: math.MaxInt, MaxQueuedBytes: math.MaxInt})
	if err != nil {
		b.Fatal(err)
	}
	return tr
}

// memoryGroup creates group on topic of the memory broker: a subscription
// that ends at once leaves its group behind, and the messages published next
// wait in it.
func memoryGroup(b *testing.B, tr *memory.Transport, topic, group string) {
	sub, err := tr.OpenSubscription(context.Background(), topic, group)
	if err != nil {
		b.Fatal(err)
	}
	sub.Close()
}
