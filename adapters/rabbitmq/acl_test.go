package rabbitmq_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

// The publish-only and consume-only setups of docs/security.md, on a
// private node: each user can do its part, and what it may not do is
// refused with an error that says so, not that the broker is down, while
// the user's connection goes on working.
func TestLeastPrivilegeUsers(t *testing.T) {
	node := testenv.StartRabbitMQ(t, testenv.RabbitMQSpec{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ctl := func(args ...string) {
		if out, err := node.Ctl(ctx, args...); err != nil {
			t.Fatalf("rabbitmqctl %v: %v\n%s", args, err, out)
		}
	}
	// docs/security.md, "RabbitMQ": configure, write, read.
	ctl("add_user", "orders-api", "pub-secret")
	ctl("set_permissions", "-p", "/", "orders-api", `^orders$`, `^orders$`, `^$`)
	ctl("add_user", "billing", "sub-secret")
	ctl("set_permissions", "-p", "/", "billing", `^orders(\.billing)?$`, `^orders\.billing$`, `^orders(\.billing)?$`)

	open := func(user, pass string) *sdk.Client {
		c, err := sdk.Open(ctx, sdk.Config{Driver: "rabbitmq", URL: "amqp://" + user + ":" + pass + "@" + node.AMQPAddr + "/",
			Options: map[string]string{"publish_timeout": "5s"}})
		if err != nil {
			t.Fatalf("open as %s: %v", user, err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	pub, sub := open("orders-api", "pub-secret"), open("billing", "sub-secret")

	refused := func(what string, err error) {
		t.Helper()
		testenv.RefusedForPermission(t, what, err, "is RabbitMQ running", "pub-secret", "sub-secret")
	}

	got := make(chan *sdk.Message, 1)
	if _, err := sub.Subscribe(ctx, "orders", "billing", func(_ context.Context, m *sdk.Message) error { got <- m; return nil }); err != nil {
		t.Fatalf("the consume-only user subscribes its group: %v", err)
	}
	refused("the publish-only user subscribing", subscribeErr(ctx, pub, "orders", "billing"))
	refused("the publish-only user declaring another service's queue", subscribeErr(ctx, pub, "payments", "ledger"))
	refused("the consume-only user publishing", pub2(ctx, sub, "orders"))
	refused("the consume-only user subscribing to another topic", subscribeErr(ctx, sub, "payments", "billing"))

	// After the refusals both connections work.
	if err := pub.Publish(ctx, "orders", sdk.NewMessage([]byte("order 1"))); err != nil {
		t.Fatalf("the publish-only user publishes: %v", err)
	}
	m := testenv.Await(t, got, "the order, at the consume-only user")
	if string(m.Payload) != "order 1" {
		t.Fatalf("got %q", m.Payload)
	}
}

func subscribeErr(ctx context.Context, c *sdk.Client, topic, group string) error {
	s, err := c.Subscribe(ctx, topic, group, func(context.Context, *sdk.Message) error { return nil })
	if err == nil {
		return errors.Join(errors.New("subscribed"), s.Close(ctx))
	}
	return err
}

func pub2(ctx context.Context, c *sdk.Client, topic string) error {
	return c.Publish(ctx, topic, sdk.NewMessage([]byte("x")))
}
