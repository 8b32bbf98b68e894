package sqs_test

import (
	"context"
	"log"

	_ "github.com/msgkit/msgkit/adapters/sqs"
	"github.com/msgkit/msgkit/sdk"
)

// The driver is chosen by config, usually a file or MESSAGING_* environment
// variables (see sdk.LoadConfig); handler code does not change.
// SQS: a queue per topic (all groups compete; use sns for fan-out).
func Example() {
	ctx := context.Background()
	client, err := sdk.Open(ctx, sdk.Config{
		Driver:  "sqs",
		URL:     "http://127.0.0.1:4100", // an emulator; leave empty for AWS
		Options: map[string]string{"region": "eu-west-1", "prefix": "prod-"},
	})
	if err != nil {
		log.Fatal(err) // names the setting that is wrong and how to fix it
	}
	defer client.Close(ctx)
	// Subscribe and Publish are the same for every driver; see the sdk
	// package's example.
}
