package redis_test

import (
	"context"
	"log"

	_ "github.com/msgkit/msgkit/adapters/redis"
	"github.com/msgkit/msgkit/sdk"
)

// Handlers are written against sdk and the driver is chosen by config
// (usually a file or MESSAGING_* environment variables, see sdk.LoadConfig).
// Redis Streams: a stream per topic, a consumer group per group.
func Example() {
	ctx := context.Background()
	client, err := sdk.Open(ctx, sdk.Config{
		Driver:  "redis",
		URL:     "redis://127.0.0.1:6379/0",
		Options: map[string]string{"claim_idle": "30s", "max_len": "1000000"},
	})
	if err != nil {
		log.Fatal(err) // names the setting that is wrong and how to fix it
	}
	defer client.Close(ctx)

	if _, err := client.Subscribe("orders", "billing", func(ctx context.Context, m *sdk.Message) error {
		log.Printf("billing: %s %s", m.EventType, m.Payload)
		return nil // ack; an error nacks, and the broker redelivers
	}); err != nil {
		log.Fatal(err)
	}
	msg := sdk.NewMessage([]byte(`{"order":42}`))
	msg.EventType = "order.created"
	if err := client.Publish(ctx, "orders", msg); err != nil {
		log.Fatal(err)
	}
}
