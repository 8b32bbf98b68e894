package middleware_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/middleware"
	"github.com/msgkit/msgkit/sdk"
)

func TestStackFromTheDriverConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "messaging.yaml")
	if err := os.WriteFile(path, []byte(`
driver: memory
middleware:
  retry_attempts: 2
  retry_delay: 1ms
  timeout: 5s
  bulkhead: 4
  breaker_failures: 50
  dead_letter: true
  dead_letter_after: 1
  dead_letter_suffix: .dead
`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(sdk.EnvMiddlewarePrefix+"RETRY_ATTEMPTS", "3") // the environment wins
	cfg, err := sdk.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	b := newBroker(t, cfg)
	stack, err := middleware.FromConfig(cfg, middleware.Deps{Publisher: b.client})
	if err != nil {
		t.Fatal(err)
	}
	if stack.HandlerBreaker() == nil || stack.PublishBreaker() == nil {
		t.Fatal("breaker_failures should configure both breakers")
	}
	dead := b.inspect("work.dead")
	var calls atomic.Int32
	b.subscribe("work", "worker", stack.Handler(func(ctx context.Context, m *sdk.Message) error {
		calls.Add(1)
		return errors.New("always fails")
	}))
	if err := stack.Publisher(b.client).Publish(context.Background(), b.topic("work"), sdk.NewMessage([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	m := testenv.Await(t, dead, "the dead letter on <topic>.dead")
	if m.Get(middleware.KeyDLQDeliveries) != "1" || calls.Load() != 3 {
		t.Fatalf("want 3 in-process attempts (MESSAGING_MW_RETRY_ATTEMPTS) then the DLQ after 1 delivery: %d calls, headers %v", calls.Load(), m.Metadata)
	}
}

func TestStackConfigErrorsNameTheKey(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"middleware:\n  retry_attempt: 3\n", `key "middleware.retry_attempt" (from m.yaml:2): the middleware section has no setting "retry_attempt"`},
		{"middleware:\n  timeout: soon\n", `key "middleware.timeout" (from m.yaml:2): want a duration`},
		{"middleware:\n  bulkhead: -1\n", `key "middleware.bulkhead" (from m.yaml:2): must not be negative`},
		{"middleware:\n  dead_letter: true\n", `dead-lettering needs a publisher`},
		{"middleware:\n  dead_letter: true\n  dead_letter_after: 0\n", `must be at least 1 delivery`},
		{"middleware:\n  dead_letter: true\n  dead_letter_suffix: \" \"\n", `key "middleware.dead_letter_suffix" (from m.yaml:3): is empty: dead letters would go back to the topic`},
		{"middleware:\n  retry_delay: 1s\n", `key "middleware.retry_delay" (from m.yaml:2): does nothing without retry_attempts`},
		{"middleware:\n  bulkhead_wait: 1s\n", `key "middleware.bulkhead_wait" (from m.yaml:2): does nothing without bulkhead`},
		{"middleware:\n  breaker_delay: 1s\n", `does nothing without breaker_failures`},
		{"middleware:\n  dead_letter_after: 5\n", `does nothing without dead_letter`},
		{"middleware:\n  retry_attempts: 3\n  retry_delay: 10s\n  retry_max_delay: 1s\n", `key "middleware.retry_max_delay" (from m.yaml:4): 1s is below retry_delay 10s`},
		{"middleware:\n  retry_attempts: 3\n  retry_delay: -1s\n", `key "middleware.retry_delay" (from m.yaml:3): must not be negative`},
		{"middleware:\n  breaker_failures: 3\n  breaker_successes: 0\n", `key "middleware.breaker_successes" (from m.yaml:3): must be at least 1`},
	}
	for _, c := range cases {
		cfg, err := sdk.ParseConfig("m.yaml", []byte(c.yaml))
		if err != nil {
			t.Fatal(err)
		}
		var pub sdk.Publisher
		if strings.Contains(c.yaml, "dead_letter: true") && strings.Contains(c.yaml, "dead_letter_") {
			pub = publisherFunc(func(context.Context, string, ...*sdk.Message) error { return nil })
		}
		_, err = middleware.FromConfig(cfg, middleware.Deps{Publisher: pub})
		var ce *sdk.ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: want a *ConfigError containing %q, got %v", c.yaml, c.want, err)
		}
	}
}

// A feature turned off on purpose keeps its tuning keys: an environment
// variable may turn off what the file tunes.
func TestFeatureTurnedOffKeepsItsTuning(t *testing.T) {
	cfg, err := sdk.ParseConfig("m.yaml", []byte("middleware:\n  retry_attempts: 0\n  retry_delay: 1s\n  dead_letter: false\n  dead_letter_after: 5\n  retry_max_delay: 2s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := middleware.FromConfig(cfg, middleware.Deps{}); err != nil {
		t.Fatalf("features set to off keep their tuning keys: %v", err)
	}
}

// With the middleware package in the program, a misspelt middleware key
// fails Open, even in a service that never calls FromConfig.
func TestOpenChecksTheMiddlewareSection(t *testing.T) {
	cfg, err := sdk.ParseConfig("svc.yaml", []byte("middleware:\n  retry_attempts: 3\n  retyr_delay: 1s\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = sdk.Open(context.Background(), cfg)
	var ce *sdk.ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "retyr_delay") || ce.Source != "svc.yaml:3" {
		t.Fatalf("want a *ConfigError naming middleware.retyr_delay at svc.yaml:3, got %v", err)
	}
}

// The service hears of the configured breakers' transitions.
func TestConfiguredBreakerTellsTheServiceItsTransitions(t *testing.T) {
	cfg, err := sdk.ParseConfig("svc.yaml", []byte("middleware:\n  breaker_failures: 2\n  breaker_delay: 1h\n"))
	if err != nil {
		t.Fatal(err)
	}
	changes := make(chan string, 4)
	stack, err := middleware.FromConfig(cfg, middleware.Deps{OnBreakerStateChange: func(breaker, from, to string) {
		changes <- breaker + ": " + from + " -> " + to
	}})
	if err != nil {
		t.Fatal(err)
	}
	h := stack.Handler(func(context.Context, *sdk.Message) error { return errors.New("dependency down") })
	for i := 0; i < 2; i++ {
		_ = h(context.Background(), sdk.NewMessage(nil))
	}
	if got := testenv.Await(t, changes, "the handler breaker's transition"); got != "handler: closed -> open" {
		t.Fatalf("got %q", got)
	}
}
