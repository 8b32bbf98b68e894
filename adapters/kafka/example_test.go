package kafka_test

import (
	"context"
	"log"

	_ "github.com/msgkit/msgkit/adapters/kafka"
	"github.com/msgkit/msgkit/sdk"
)

// The driver is chosen by config, usually a file or MESSAGING_* environment
// variables (see sdk.LoadConfig); handler code does not change.
// Kafka: a topic per topic, a consumer group per group, order per ordering key.
func Example() {
	ctx := context.Background()
	client, err := sdk.Open(ctx, sdk.Config{
		Driver:  "kafka",
		URL:     "kafka://127.0.0.1:9092",
		Options: map[string]string{"partitions": "6"},
	})
	if err != nil {
		log.Fatal(err) // names the setting that is wrong and how to fix it
	}
	defer client.Close(ctx)
	// Subscribe and Publish are the same for every driver; see the sdk
	// package's example.
}
