package sdk_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/msgkit/msgkit/adapters/memory"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// unordered is a driver whose transport keeps no per-key order.
type unordered struct{}

func (unordered) Open(context.Context, sdk.Config) (driver.Transport, error) {
	return noOrder{memory.New()}, nil
}

type noOrder struct{ driver.Transport }

func (t noOrder) Capabilities() driver.Capabilities {
	c := t.Transport.Capabilities()
	c.Ordering = driver.OrderingNone
	return c
}

func init() { sdk.Register("test-unordered", unordered{}) }

// A stated requirement the driver does not meet fails Open, naming it and
// the drivers that have it; one it meets passes.
func TestOpenRefusesADriverWithoutARequiredCapability(t *testing.T) {
	cfg, err := sdk.ParseConfig("svc.yaml", []byte("driver: test-unordered\nrequire: [consumer_groups, ordering_per_key]\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = sdk.Open(context.Background(), cfg)
	var ce *sdk.ConfigError
	if !errors.As(err, &ce) || ce.Key != "require" || ce.Source != "svc.yaml:2" {
		t.Fatalf("want a *ConfigError for key require at svc.yaml:2, got %v", err)
	}
	for _, want := range []string{"ordering_per_key", "kafka", "handled one at a time"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error should contain %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "consumer_groups (") {
		t.Errorf("a requirement the driver meets must not be listed: %v", err)
	}
	c, err := sdk.Open(context.Background(), sdk.Config{}, sdk.Require(sdk.RequireOrderingPerKey, sdk.RequireConsumerGroups))
	if err != nil {
		t.Fatalf("memory meets both: %v", err)
	}
	c.Close(context.Background())
	if _, err := sdk.ParseConfig("svc.yaml", []byte("require: ordering\n")); err == nil || !strings.Contains(err.Error(), "ordering_per_key") {
		t.Fatalf("an unknown requirement should be refused listing the known ones, got %v", err)
	}
}

// Publishing an ordering key to a driver that does not keep per-key order
// warns once.
func TestOrderingKeyOnADriverWithoutOrderWarnsOnce(t *testing.T) {
	var logs bytes.Buffer
	c, err := sdk.Open(context.Background(), sdk.Config{Driver: "test-unordered"}, sdk.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	for i := 0; i < 3; i++ {
		if err := c.Publish(context.Background(), "orders", &sdk.Message{Payload: []byte("x"), OrderingKey: "customer-7"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), "does not keep per-key order"); n != 1 {
		t.Fatalf("want one warning, got %d:\n%s", n, logs.String())
	}
}

func TestClientConfigIsWhatOpenWasGiven(t *testing.T) {
	cfg := sdk.Config{Driver: "memory", Middleware: map[string]string{"retry_attempts": "3"}}
	c, err := sdk.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if got := c.Config(); got.Driver != "memory" || got.Middleware["retry_attempts"] != "3" {
		t.Fatalf("Config() = %+v", got)
	}
}
