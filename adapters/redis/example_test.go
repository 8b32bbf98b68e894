package redis_test

import (
	"context"
	"log"

	_ "github.com/msgkit/msgkit/adapters/redis"
	"github.com/msgkit/msgkit/sdk"
)

// The driver is chosen by config, usually a file or MESSAGING_* environment
// variables (see sdk.LoadConfig); handler code does not change.
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
	// Subscribe and Publish are the same for every driver; see the sdk
	// package's example.
}
