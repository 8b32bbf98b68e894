package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	_ "github.com/msgkit/msgkit/adapters/memory"
	"github.com/msgkit/msgkit/sdk"
)

// A service opens a client from config, subscribes a handler in its consumer
// group and publishes. With an empty Config the in-process broker is used.
func Example() {
	ctx := context.Background()
	client, err := sdk.Open(ctx, sdk.Config{}, quiet)
	if err != nil {
		fmt.Println(err)
		return
	}
	done := make(chan struct{})
	_, err = client.Subscribe(ctx, "orders", "billing", func(ctx context.Context, m *sdk.Message) error {
		fmt.Printf("billing got %s: %s\n", m.EventType, m.Payload)
		close(done)
		return nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	msg := sdk.NewMessage([]byte(`{"id":42}`))
	msg.EventType = "order.created"
	if err := client.Publish(ctx, "orders", msg); err != nil {
		fmt.Println(err)
		return
	}
	<-done
	if err := client.Close(ctx); err != nil {
		fmt.Println(err)
	}
	// Output: billing got order.created: {"id":42}
}

// Configuration comes from a YAML file, with MESSAGING_* environment
// variables overriding it, so the same binary runs on any broker.
func ExampleLoadConfig() {
	f, _ := os.CreateTemp("", "messaging-*.yaml")
	defer os.Remove(f.Name())
	fmt.Fprintln(f, "driver: memory\nshutdown_timeout: 10s")
	f.Close()

	os.Setenv("MESSAGING_SHUTDOWN_TIMEOUT", "3s")
	defer os.Unsetenv("MESSAGING_SHUTDOWN_TIMEOUT")
	cfg, err := sdk.LoadConfig(f.Name())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.DriverName(), cfg.ShutdownTimeout)
	// Output: memory 3s
}

// A config mistake is reported with the key, where it was set, and how to
// fix it.
func ExampleConfigError() {
	_, err := sdk.ParseConfig("service.yaml", []byte("driver: memory\nshutdown_timeout: soon\n"))
	var ce *sdk.ConfigError
	if errors.As(err, &ce) {
		fmt.Println(ce.Key, "|", ce.Source)
		fmt.Println(err)
	}
	// Output:
	// shutdown_timeout | service.yaml:2
	// messaging config: key "shutdown_timeout" (from service.yaml:2): want a positive duration such as 10s, got "soon"
}

// Returning an error from a handler leaves the message for redelivery.
func ExampleHandler() {
	ctx := context.Background()
	client, _ := sdk.Open(ctx, sdk.Config{}, quiet)
	defer client.Close(ctx)
	attempts := 0
	done := make(chan struct{})
	client.Subscribe(ctx, "payments", "ledger", func(ctx context.Context, m *sdk.Message) error {
		attempts++
		if attempts < 3 {
			fmt.Println("attempt", attempts, "failed")
			return errors.New("ledger unavailable")
		}
		fmt.Println("attempt", attempts, "succeeded")
		close(done)
		return nil
	})
	client.Publish(ctx, "payments", sdk.NewMessage([]byte("pay 10 EUR")))
	<-done
	// Output:
	// attempt 1 failed
	// attempt 2 failed
	// attempt 3 succeeded
}

// One service asks, another answers; many requests may be in flight on one
// client.
func ExampleClient_Request() {
	ctx := context.Background()
	client, _ := sdk.Open(ctx, sdk.Config{URL: "memory://request-example"}, quiet)
	defer client.Close(ctx)
	pricing, _ := sdk.Open(ctx, sdk.Config{URL: "memory://request-example"}, quiet)
	defer pricing.Close(ctx)

	pricing.Respond(ctx, "prices.quote", "pricing", func(ctx context.Context, req *sdk.Message) (*sdk.Message, error) {
		return sdk.NewMessage([]byte("12.50 EUR for " + string(req.Payload))), nil
	})
	reqCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	reply, err := client.Request(reqCtx, "prices.quote", sdk.NewMessage([]byte("sku-42")))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(reply.Payload))
	// Output: 12.50 EUR for sku-42
}

// Typed request/reply: values in and out, encoded with the client's codec
// (JSON by default), and a refusal the caller can act on by its code.
func ExampleRequest() {
	ctx := context.Background()
	client, _ := sdk.Open(ctx, sdk.Config{}, quiet)
	defer client.Close(ctx)

	type Reserve struct {
		SKU string
		Qty int
	}
	type Reserved struct{ Shelf string }
	client.Respond(ctx, "inventory.reserve", "inventory", sdk.Reply(client,
		func(ctx context.Context, r Reserve, _ *sdk.Message) (Reserved, error) {
			if r.Qty > 3 {
				return Reserved{}, sdk.Reject("out_of_stock", fmt.Sprintf("only 3 of %s left", r.SKU))
			}
			return Reserved{Shelf: "B4"}, nil
		}))

	reqCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	got, err := sdk.Request[Reserve, Reserved](reqCtx, client, "inventory.reserve", Reserve{SKU: "sku-42", Qty: 1})
	fmt.Println(got.Shelf, err)
	_, err = sdk.Request[Reserve, Reserved](reqCtx, client, "inventory.reserve", Reserve{SKU: "sku-42", Qty: 9})
	var remote *sdk.RemoteError
	if errors.As(err, &remote) {
		fmt.Println(remote.Code, "-", remote.Message)
	}
	// Output:
	// B4 <nil>
	// out_of_stock - only 3 of sku-42 left
}

// A typed handler: the payload decoded into a value; one that does not
// decode fails permanently (the dead-letter middleware takes it at once).
func ExampleHandle() {
	ctx := context.Background()
	client, _ := sdk.Open(ctx, sdk.Config{}, quiet)
	defer client.Close(ctx)

	type OrderCreated struct {
		Order string `json:"order"`
		Total int    `json:"total"`
	}
	done := make(chan struct{})
	client.Subscribe(ctx, "orders", "billing", sdk.Handle(client, func(ctx context.Context, o OrderCreated, m *sdk.Message) error {
		fmt.Println("bill", o.Order, o.Total)
		close(done)
		return nil
	}))
	msg, _ := client.Encode(OrderCreated{Order: "o-7", Total: 1250})
	client.Publish(ctx, "orders", msg)
	<-done
	// Output: bill o-7 1250
}

// Code that writes messages in their wire form itself (the outbox writes
// rows) takes them apart with NewOutgoing: the id, the payload and the
// metadata a publisher would send, standard attributes included.
func ExampleNewOutgoing() {
	m := &sdk.Message{ID: "order-7-created", Payload: []byte(`{"order":7}`), EventType: "order.created", OrderingKey: "customer-7"}
	m.Set("tenant", "acme")
	o := sdk.NewOutgoing(m, time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	fmt.Println(o.ID(), string(o.Payload()), o.OrderingKey())
	md := map[string]string{}
	for k, v := range o.Metadata {
		md[k] = v
	}
	fmt.Println(md)
	// Output:
	// order-7-created {"order":7} customer-7
	// map[ce-time:2026-11-25T12:00:00Z ce-type:order.created ordering-key:customer-7 tenant:acme]
}

// A driver names topics and groups in its errors with QuoteName, so that
// an error about a name longer than the broker takes stays readable.
func ExampleQuoteName() {
	fmt.Println(sdk.QuoteName("orders.created"))
	fmt.Println(sdk.QuoteName(strings.Repeat("orders.", 1000)))
	// Output:
	// "orders.created"
	// "orders.orders.orders.orders.orders.orders.orders.orders.orders.o"... (7000 bytes)
}
