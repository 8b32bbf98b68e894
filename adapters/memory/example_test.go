package memory_test

import (
	"context"
	"fmt"

	_ "github.com/msgkit/msgkit/adapters/memory"
	"github.com/msgkit/msgkit/sdk"
)

// Two clients that name the same broker (memory://NAME) share it, as two
// services would share a real broker: each consumer group gets every
// message once.
func Example() {
	ctx := context.Background()
	orders, err := sdk.Open(ctx, sdk.Config{Driver: "memory", URL: "memory://example"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer orders.Close(ctx)
	billing, err := sdk.Open(ctx, sdk.Config{Driver: "memory", URL: "memory://example"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer billing.Close(ctx)

	got := make(chan string, 1)
	if _, err := billing.Subscribe(ctx, "orders", "billing", func(_ context.Context, m *sdk.Message) error {
		got <- string(m.Payload)
		return nil
	}); err != nil {
		fmt.Println(err)
		return
	}
	if err := orders.Publish(ctx, "orders", sdk.NewMessage([]byte("order 42"))); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("billing got:", <-got)
	// Output: billing got: order 42
}
