package sdk_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/msgkit/msgkit/adapters/rabbitmq"
	_ "github.com/msgkit/msgkit/adapters/redis"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

// What a service team writes against a real broker: typed request/reply
// with a refusal code, middleware around the responder, a requirement the
// driver does not meet.
func TestTypedHelpersOnRealBrokers(t *testing.T) {
	for _, b := range []struct{ driver, url string }{
		{"rabbitmq", testenv.RabbitMQ(t)},
		{"redis", testenv.Redis(t)},
	} {
		t.Run(b.driver, func(t *testing.T) {
			ctx := context.Background()
			c, err := sdk.Open(ctx, sdk.Config{Driver: b.driver, URL: b.url})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(ctx)
			// A fixed topic, so runs leave one queue or stream behind, not
			// one each; requests of an earlier run have expired.
			topic := "ct-sdk-typed-reserve"
			var wrapped atomic.Int32
			count := func(next sdk.Handler) sdk.Handler {
				return func(ctx context.Context, m *sdk.Message) error { wrapped.Add(1); return next(ctx, m) }
			}
			type reserve struct{ SKU string }
			type reserved struct{ Shelf string }
			_, err = c.Respond(ctx, topic, "inventory", sdk.Reply(c, func(_ context.Context, r reserve, _ *sdk.Message) (reserved, error) {
				if r.SKU == "sold-out" {
					return reserved{}, sdk.Reject("out_of_stock", "none left")
				}
				return reserved{Shelf: "B4"}, nil
			}), sdk.WithMiddleware(count))
			if err != nil {
				t.Fatal(err)
			}
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			got, err := sdk.Request[reserve, reserved](rctx, c, topic, reserve{SKU: "sku-1"})
			if err != nil || got.Shelf != "B4" {
				t.Fatalf("typed request: %+v, %v", got, err)
			}
			_, err = sdk.Request[reserve, reserved](rctx, c, topic, reserve{SKU: "sold-out"})
			var remote *sdk.RemoteError
			if !errors.As(err, &remote) || remote.Code != "out_of_stock" {
				t.Fatalf("want RemoteError code out_of_stock, got %v", err)
			}
			if wrapped.Load() != 2 {
				t.Fatalf("the middleware should have wrapped both responder calls, wrapped %d", wrapped.Load())
			}
			_, err = sdk.Open(ctx, sdk.Config{Driver: b.driver, URL: b.url}, sdk.Require(sdk.RequireOrderingPerKey))
			if err == nil || !strings.Contains(err.Error(), "ordering_per_key") {
				t.Fatalf("%s keeps no per-key order: Open with that requirement must fail naming it, got %v", b.driver, err)
			}
		})
	}
}
