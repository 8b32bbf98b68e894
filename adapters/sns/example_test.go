package sns_test

import (
	"context"
	"log"

	_ "github.com/msgkit/msgkit/adapters/sns"
	"github.com/msgkit/msgkit/sdk"
)

// The driver is chosen by config, usually a file or MESSAGING_* environment
// variables (see sdk.LoadConfig); handler code does not change.
// SNS: a topic per topic and an SQS queue per group, so every group gets every message.
func Example() {
	ctx := context.Background()
	client, err := sdk.Open(ctx, sdk.Config{
		Driver:  "sns",
		Options: map[string]string{"region": "eu-west-1", "max_receive_count": "5"},
	})
	if err != nil {
		log.Fatal(err) // names the setting that is wrong and how to fix it
	}
	defer client.Close(ctx)
	// Subscribe and Publish are the same for every driver; see the sdk
	// package's example.
}
