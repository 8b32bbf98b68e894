package rabbitmq_test

import (
	"context"
	"log"

	_ "github.com/msgkit/msgkit/adapters/rabbitmq"
	"github.com/msgkit/msgkit/sdk"
)

// The driver is chosen by config, usually a file or MESSAGING_* environment
// variables (see sdk.LoadConfig); handler code does not change.
// RabbitMQ: a durable queue per (topic, group), publisher confirms on.
func Example() {
	ctx := context.Background()
	client, err := sdk.Open(ctx, sdk.Config{
		Driver:  "rabbitmq",
		URL:     "amqp://guest:guest@127.0.0.1:5672/", // the password never appears in errors or logs
		Options: map[string]string{"prefetch": "200"},
	})
	if err != nil {
		log.Fatal(err) // names the setting that is wrong and how to fix it
	}
	defer client.Close(ctx)
	// Subscribe and Publish are the same for every driver; see the sdk
	// package's example.
}
