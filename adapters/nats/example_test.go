package nats_test

import (
	"context"
	"log"

	"github.com/nats-io/nats.go"

	msgnats "github.com/msgkit/msgkit/adapters/nats"
	"github.com/msgkit/msgkit/sdk"
)

// The driver is chosen by config, usually a file or MESSAGING_* environment
// variables (see sdk.LoadConfig); handler code does not change.
// NATS JetStream: a stream per topic, a durable pull consumer per group.
func Example() {
	ctx := context.Background()
	client, err := sdk.Open(ctx, sdk.Config{
		Driver:  "nats",
		URL:     "nats://127.0.0.1:4222",
		Options: map[string]string{"ack_wait": "30s", "retention": "168h"},
	})
	if err != nil {
		log.Fatal(err) // names the setting that is wrong and how to fix it
	}
	defer client.Close(ctx)
}

// New runs the driver on a connection of your own; Close leaves it open.
func ExampleNew() {
	ctx := context.Background()
	nc, err := nats.Connect("nats://127.0.0.1:4222", nats.Name("orders"))
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	tr, err := msgnats.New(ctx, nc, msgnats.Options{BatchSize: 50})
	if err != nil {
		log.Fatal(err)
	}
	client := sdk.NewClient(tr)
	defer client.Close(ctx)
	var conn *nats.Conn
	_ = client.As(&conn) // conn == nc
}
