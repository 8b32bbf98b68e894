package redis_test

import (
	"context"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	msgredis "github.com/msgkit/msgkit/adapters/redis"
	"github.com/msgkit/msgkit/conformance"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// open opens a transport and deletes the streams the test used when it
// ends. Test streams are all named ct-*.
func open(t *testing.T, url string, options map[string]string) (*testenv.Transport, error) {
	tr, err := openTransport(url, options)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { deleteTestStreams(t, url) })
	return tr, nil
}

// openTransport opens a transport whose streams the caller deletes: the
// conformance runs delete them once they end, so that a test never
// deletes the streams of another running beside it (CONFORMANCE_PARALLEL).
func openTransport(url string, options map[string]string) (*testenv.Transport, error) {
	return testenv.Watermill(msgredis.Driver{}.Open(context.Background(), sdk.Config{Driver: "redis", URL: url, Options: options}))
}

func deleteTestStreams(t *testing.T, url string) {
	opts, err := goredis.ParseURL(url)
	if err != nil {
		return
	}
	c := goredis.NewClient(opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	keys, _ := c.Keys(ctx, "ct-*").Result()
	if len(keys) > 0 {
		c.Del(ctx, keys...)
	}
}

func TestConformance(t *testing.T) {
	url := testenv.Redis(t)
	t.Cleanup(func() { deleteTestStreams(t, url) })
	conformance.Run(t, conformance.Harness{
		Open:       func(context.Context, *testing.T) (driver.Transport, error) { return openTransport(url, nil) },
		OpenConfig: msgredis.Driver{}.Open,
		ConfigAt: func(addr string) sdk.Config {
			return sdk.Config{Driver: "redis", URL: "redis://:s3cret-in-the-url@" + addr + "/0"}
		},
		Secret: "s3cret-in-the-url",
		Proxied: func(proxy func(string) string) sdk.Config {
			return sdk.Config{Driver: "redis", URL: testenv.ProxiedURL(url, proxy)}
		},
		InjectRaw: injectEntry(url), // an XADD with only a payload field
		// A structured-mode event beside its content type.
		InjectEvent: injectEntry(url, "content-type", "application/cloudevents+json"),
	})
}

// injectEntry XADDs an entry of a payload field and the given fields, as a
// producer that is not msgkit would.
func injectEntry(url string, fields ...any) func(ctx context.Context, topic string, payload []byte) error {
	return func(ctx context.Context, topic string, payload []byte) error {
		opts, err := goredis.ParseURL(url)
		if err != nil {
			return err
		}
		c := goredis.NewClient(opts)
		defer c.Close()
		return c.XAdd(ctx, &goredis.XAddArgs{Stream: topic, Values: append([]any{"payload", payload}, fields...)}).Err()
	}
}

func TestConformanceNewGroupsFromLatest(t *testing.T) {
	url := testenv.Redis(t)
	t.Cleanup(func() { deleteTestStreams(t, url) })
	conformance.Run(t, conformance.Harness{
		Open: func(context.Context, *testing.T) (driver.Transport, error) {
			return openTransport(url, map[string]string{"new_group_start": "latest", "batch_size": "7"})
		},
	})
}

// The portable new_group_start reaches the driver; its own option wins.
func TestNewGroupStartFromTheConfig(t *testing.T) {
	url := testenv.Redis(t)
	for _, c := range []struct {
		cfg     sdk.Config
		history bool
	}{
		{sdk.Config{}, true}, // the default: oldest, nothing lost
		{sdk.Config{NewGroupStart: sdk.GroupStartLatest}, false},
		{sdk.Config{NewGroupStart: sdk.GroupStartLatest, Options: map[string]string{"new_group_start": "oldest"}}, true},
	} {
		c.cfg.Driver, c.cfg.URL = "redis", url
		tr, err := msgredis.Driver{}.Open(context.Background(), c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := tr.Capabilities().NewGroupsReceiveHistory; got != c.history {
			t.Errorf("new_group_start %q, option %q: NewGroupsReceiveHistory = %v, want %v", c.cfg.NewGroupStart, c.cfg.Options["new_group_start"], got, c.history)
		}
		tr.Close()
	}
}
