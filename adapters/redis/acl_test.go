package redis_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

// The ACL rules docs/security.md gives for a publish-only and a
// consume-only service, on a private server: each user can do its part,
// and what it may not do is refused with an error that says so, not that
// the server is down.
func TestLeastPrivilegeUsers(t *testing.T) {
	r := startPrivateRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin := rawClient(t, "redis://"+r.addr()+"/0")
	// docs/security.md, "Redis".
	for _, rule := range [][]any{
		{"ACL", "SETUSER", "orders-api", "on", ">pub-secret", "resetkeys", "~orders", "resetchannels", "nocommands",
			"+ping", "+hello", "+info", "+xadd"},
		{"ACL", "SETUSER", "billing", "on", ">sub-secret", "resetkeys", "~orders", "resetchannels", "nocommands",
			"+ping", "+hello", "+info", "+xgroup|create", "+xgroup|delconsumer", "+xreadgroup", "+xack",
			"+xautoclaim", "+xclaim", "+xpending", "+xinfo|groups", "+xtrim"},
	} {
		if err := admin.Do(ctx, rule...).Err(); err != nil {
			t.Fatalf("%v: %v", rule, err)
		}
	}
	open := func(user, pass string) *sdk.Client {
		c, err := sdk.Open(ctx, sdk.Config{Driver: "redis", URL: "redis://" + user + ":" + pass + "@" + r.addr() + "/0",
			Options: map[string]string{"publish_timeout": "5s", "trim_interval": "50ms"}})
		if err != nil {
			t.Fatalf("open as %s: %v", user, err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	pub, sub := open("orders-api", "pub-secret"), open("billing", "sub-secret")
	if !pub.Capabilities().Persistent {
		t.Error("the server has appendonly yes: a user without CONFIG must still see it (from INFO) and declare Persistent")
	}

	refused := func(what string, err error) {
		t.Helper()
		testenv.RefusedForPermission(t, what, err, "is Redis running", "pub-secret", "sub-secret")
	}
	got := make(chan *sdk.Message, 300)
	if _, err := sub.Subscribe(ctx, "orders", "billing", func(_ context.Context, m *sdk.Message) error { got <- m; return nil }); err != nil {
		t.Fatalf("the consume-only user subscribes its group: %v", err)
	}
	refused("the publish-only user subscribing", subscribeErr(ctx, pub, "orders", "billing2"))
	refused("the publish-only user publishing to another stream", pub.Publish(ctx, "payments", sdk.NewMessage([]byte("x"))))
	refused("the consume-only user publishing", sub.Publish(ctx, "orders", sdk.NewMessage([]byte("x"))))
	refused("the consume-only user subscribing to another stream", subscribeErr(ctx, sub, "payments", "billing"))

	const n = 300
	orders := make([]*sdk.Message, n)
	for i := range orders {
		orders[i] = sdk.NewMessage([]byte("order"))
	}
	if err := pub.Publish(ctx, "orders", orders...); err != nil {
		t.Fatalf("the publish-only user publishes: %v", err)
	}
	for range n {
		testenv.Await(t, got, "the orders, at the consume-only user")
	}
	// Trimming runs as the consume-only user: the acknowledged entries go
	// (but the last internal node of up to 100, which approximate trimming
	// keeps).
	testenv.Eventually(t, 10*time.Second, "the acknowledged entries trimmed by the consume-only user", func() bool {
		n, err := admin.XLen(ctx, "orders").Result()
		return err == nil && n <= 100
	})
}

func subscribeErr(ctx context.Context, c *sdk.Client, topic, group string) error {
	s, err := c.Subscribe(ctx, topic, group, func(context.Context, *sdk.Message) error { return nil })
	if err == nil {
		return errors.Join(errors.New("subscribed"), s.Close(ctx))
	}
	return err
}
