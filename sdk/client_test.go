package sdk_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/msgkit/msgkit/adapters/memory"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

var quiet = sdk.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))

func open(t *testing.T, cfg sdk.Config) *sdk.Client {
	t.Helper()
	c, err := sdk.Open(context.Background(), cfg, quiet)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func TestOpenUnknownDriverListsRegistered(t *testing.T) {
	// sns: a driver of this module that these tests do not import.
	_, err := sdk.Open(context.Background(), sdk.Config{Driver: "sns"})
	var ce *sdk.ConfigError
	if !errors.As(err, &ce) || ce.Key != "driver" {
		t.Fatalf("want a *ConfigError for key driver, got %v", err)
	}
	for _, want := range []string{`unknown driver "sns"`, "registered drivers: memory", "github.com/msgkit/msgkit/adapters/sns"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q should contain %q", err, want)
		}
	}
	_, err = sdk.Open(context.Background(), sdk.Config{Driver: "carrier-pigeon"})
	if err == nil || strings.Contains(err.Error(), "add the import") {
		t.Errorf("an unknown third-party name should not suggest an import: %v", err)
	}
}

type urlDriver struct{}

func (urlDriver) Open(_ context.Context, cfg sdk.Config) (driver.Transport, error) {
	if cfg.URL == "" {
		return nil, cfg.Invalid("url", nil, "the test driver needs a URL such as test://host:1234")
	}
	return memory.New(), nil
}

// Registered once for the test binary: Register refuses a second driver
// of the same name, and -count=N runs each test N times.
func init() { sdk.Register("test-needs-url", urlDriver{}) }

func TestMissingURLIsAConfigError(t *testing.T) {
	cfg, err := sdk.ParseConfig("svc.yaml", []byte("driver: test-needs-url\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = sdk.Open(context.Background(), cfg)
	var ce *sdk.ConfigError
	if !errors.As(err, &ce) || ce.Key != "url" {
		t.Fatalf("want a *ConfigError for key url, got %v", err)
	}
	if !strings.Contains(err.Error(), `open driver "test-needs-url"`) || !strings.Contains(err.Error(), "needs a URL such as") {
		t.Fatalf("error should say which driver and how to fix it: %v", err)
	}
}

func TestMemoryDriverRejectsBadURLAndOptions(t *testing.T) {
	_, err := sdk.Open(context.Background(), sdk.Config{URL: "amqp://user:hunter2@host/"})
	if err == nil || !strings.Contains(err.Error(), `key "url"`) || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("want a url error without the password, got %v", err)
	}
	_, err = sdk.Open(context.Background(), sdk.Config{Options: map[string]string{"prefetch": "1"}})
	if err == nil || !strings.Contains(err.Error(), `driver "memory" has no option "prefetch"`) {
		t.Fatalf("want an unknown-option error, got %v", err)
	}
}

func TestRegisterPanicsOnDuplicate(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), `twice for driver "memory"`) {
			t.Fatalf("want a panic naming the duplicate, got %v", r)
		}
	}()
	sdk.Register("memory", memory.Driver{})
}

func TestPublishAssignsIDAndTime(t *testing.T) {
	c := open(t, sdk.Config{})
	got := make(chan *sdk.Message, 1)
	if _, err := c.Subscribe(context.Background(), "orders", "billing", func(_ context.Context, m *sdk.Message) error { got <- m; return nil }); err != nil {
		t.Fatal(err)
	}
	msg := &sdk.Message{Payload: []byte("x"), EventType: "order.created"}
	before := time.Now()
	if err := c.Publish(context.Background(), "orders", msg); err != nil {
		t.Fatal(err)
	}
	if msg.ID == "" {
		t.Fatal("Publish should report the generated ID back on the message")
	}
	m := testenv.Await(t, got, "delivery")
	if m.ID != msg.ID || m.EventType != "order.created" || m.Time.Before(before.Add(-time.Second)) {
		t.Fatalf("unexpected delivery: id=%q type=%q time=%v", m.ID, m.EventType, m.Time)
	}
	if m.Get(sdk.KeyEventType) != "order.created" {
		t.Fatalf("standard attributes should also be visible in Metadata: %v", m.Metadata)
	}
}

// limited declares small limits so the Client's checks can be seen.
type limited struct{ *memory.Transport }

func (limited) Capabilities() sdk.Capabilities {
	return sdk.Capabilities{ConsumerGroups: true, MaxPayloadBytes: 10, MaxMetadataEntries: 3}
}

func TestPublishEnforcesDeclaredLimitsBeforeSending(t *testing.T) {
	c := sdk.NewClient(limited{memory.New()}, quiet)
	defer c.Close(context.Background())
	delivered := make(chan struct{}, 10)
	if _, err := c.Subscribe(context.Background(), "t", "g", func(context.Context, *sdk.Message) error { delivered <- struct{}{}; return nil }); err != nil {
		t.Fatal(err)
	}
	ok := &sdk.Message{Payload: []byte("small")}
	big := &sdk.Message{Payload: bytes.Repeat([]byte("x"), 11)}
	err := c.Publish(context.Background(), "t", ok, big)
	if !errors.Is(err, sdk.ErrPayloadTooLarge) || !strings.Contains(err.Error(), "message 1") || !strings.Contains(err.Error(), "at most 10") {
		t.Fatalf("want ErrPayloadTooLarge naming message 1 and the limit, got %v", err)
	}
	many := &sdk.Message{Metadata: map[string]string{"a": "1", "b": "2", "c": "3"}}
	if err := c.Publish(context.Background(), "t", many); !errors.Is(err, sdk.ErrTooManyMetadataEntries) {
		t.Fatalf("want ErrTooManyMetadataEntries (3 entries + ce-time), got %v", err)
	}
	// Nothing partial reached the broker: a message published now is the first to arrive.
	if err := c.Publish(context.Background(), "t", ok); err != nil {
		t.Fatal(err)
	}
	testenv.Await(t, delivered, "the valid message")
	select {
	case <-delivered:
		t.Fatal("a message from the rejected batch was delivered")
	case <-time.After(100 * time.Millisecond):
	}
}

func TestSubscribeRejectsBadArguments(t *testing.T) {
	c := open(t, sdk.Config{})
	h := func(context.Context, *sdk.Message) error { return nil }
	for _, tc := range []struct {
		topic, group string
		h            sdk.Handler
		want         string
	}{
		{"", "g", h, "topic is empty"},
		{"t", "", h, "group is empty"},
		{"t", "g", nil, "handler is nil"},
	} {
		if _, err := c.Subscribe(context.Background(), tc.topic, tc.group, tc.h); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Subscribe(%q, %q): want %q, got %v", tc.topic, tc.group, tc.want, err)
		}
	}
	if err := c.Publish(context.Background(), "", sdk.NewMessage(nil)); err == nil || !strings.Contains(err.Error(), "topic is empty") {
		t.Errorf("Publish with empty topic: %v", err)
	}
}

func TestCloseDeadlineCancelsStuckHandlerAndMessageIsRedelivered(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := sdk.Config{URL: "memory://close-deadline"}
	c, err := sdk.Open(context.Background(), cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	sawCancel := make(chan struct{})
	if _, err := c.Subscribe(context.Background(), "jobs", "workers", func(ctx context.Context, _ *sdk.Message) error {
		close(started)
		<-ctx.Done() // a handler that only stops when told to
		close(sawCancel)
		return ctx.Err()
	}); err != nil {
		t.Fatal(err)
	}
	msg := sdk.NewMessage([]byte("long job"))
	if err := c.Publish(context.Background(), "jobs", msg); err != nil {
		t.Fatal(err)
	}
	testenv.Await(t, started, "the handler to start")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = c.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "will be redelivered") {
		t.Fatalf("Close past its deadline should say so, got %v", err)
	}
	testenv.Await(t, sawCancel, "the handler's context to be cancelled")

	// Another instance of the service gets the message.
	c2 := open(t, cfg)
	again := make(chan string, 1)
	if _, err := c2.Subscribe(ctx, "jobs", "workers", func(_ context.Context, m *sdk.Message) error { again <- m.ID; return nil }); err != nil {
		t.Fatal(err)
	}
	if id := testenv.Await(t, again, "redelivery to the second client"); id != msg.ID {
		t.Fatalf("redelivered %q, want %q", id, msg.ID)
	}
	if err := c2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestCloseIsIdempotentAndRefusesNewWork(t *testing.T) {
	c := open(t, sdk.Config{})
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := c.Subscribe(context.Background(), "t", "g", func(context.Context, *sdk.Message) error { return nil }); !errors.Is(err, sdk.ErrClosed) {
		t.Fatalf("Subscribe after Close: want ErrClosed, got %v", err)
	}
}

func TestConcurrencyRunsHandlersInParallel(t *testing.T) {
	c := open(t, sdk.Config{})
	var running, peak atomic.Int32
	release := make(chan struct{})
	arrived := make(chan struct{}, 4)
	if _, err := c.Subscribe(context.Background(), "t", "g", func(context.Context, *sdk.Message) error {
		n := running.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		arrived <- struct{}{}
		<-release
		running.Add(-1)
		return nil
	}, sdk.WithConcurrency(4)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if err := c.Publish(context.Background(), "t", sdk.NewMessage(nil)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 4; i++ {
		testenv.Await(t, arrived, "4 handlers running at once")
	}
	close(release)
	if peak.Load() != 4 {
		t.Fatalf("peak concurrency %d, want 4", peak.Load())
	}
}

func TestHandlersPublishWithCorrelationAndCausation(t *testing.T) {
	c := open(t, sdk.Config{})
	got := make(chan *sdk.Message, 2)
	if _, err := c.Subscribe(context.Background(), "payments", "ledger", func(_ context.Context, m *sdk.Message) error { got <- m; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(context.Background(), "orders", "billing", func(ctx context.Context, m *sdk.Message) error {
		if m.Topic() != "orders" || m.Group() != "billing" {
			t.Errorf("received message should know its topic and group: %q %q", m.Topic(), m.Group())
		}
		return c.Publish(ctx, "payments", sdk.NewMessage([]byte("charge")))
	}); err != nil {
		t.Fatal(err)
	}
	order := sdk.NewMessage([]byte("order"))
	if err := c.Publish(context.Background(), "orders", order); err != nil {
		t.Fatal(err)
	}
	payment := testenv.Await(t, got, "the payment caused by the order")
	if payment.CausationID != order.ID || payment.CorrelationID != order.ID {
		t.Fatalf("a message published by a handler should be caused by and correlated with the consumed one: causation %q correlation %q, want %q",
			payment.CausationID, payment.CorrelationID, order.ID)
	}
	// A conversation keeps its correlation id across hops.
	order2 := sdk.NewMessage([]byte("order"))
	order2.CorrelationID = "checkout-9"
	if err := c.Publish(context.Background(), "orders", order2); err != nil {
		t.Fatal(err)
	}
	payment2 := testenv.Await(t, got, "the second payment")
	if payment2.CorrelationID != "checkout-9" || payment2.CausationID != order2.ID {
		t.Fatalf("correlation %q causation %q", payment2.CorrelationID, payment2.CausationID)
	}
}

func TestPermanentIsDetectedThroughWrapping(t *testing.T) {
	base := errors.New("bad payload")
	err := fmt.Errorf("decode order: %w", sdk.Permanent(base))
	if !sdk.IsPermanent(err) || !errors.Is(err, base) {
		t.Fatalf("IsPermanent=%v Is(base)=%v", sdk.IsPermanent(err), errors.Is(err, base))
	}
	if sdk.IsPermanent(base) || sdk.Permanent(nil) != nil {
		t.Fatal("an unmarked error is not permanent, and Permanent(nil) is nil")
	}
}

// A Time outside the years RFC 3339 text carries is refused before any
// network call instead of arriving as no time; the edges of the range
// arrive as sent.
func TestPublishRefusesATimeRFC3339CannotCarry(t *testing.T) {
	c := openMemory(t)
	got := make(chan *sdk.Message, 2)
	if _, err := c.Subscribe(context.Background(), "times", "g", func(_ context.Context, m *sdk.Message) error {
		got <- m
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, y := range []int{10000, -5} {
		m := sdk.NewMessage([]byte("x"))
		m.Time = time.Date(y, 6, 1, 0, 0, 0, 0, time.UTC)
		if err := c.Publish(context.Background(), "times", m); !errors.Is(err, sdk.ErrInvalidTime) || !strings.Contains(err.Error(), "0000 to 9999") {
			t.Fatalf("year %d: want sdk.ErrInvalidTime saying the range, got %v", y, err)
		}
	}
	for _, want := range []time.Time{time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), time.Date(0, 1, 1, 0, 0, 0, 1, time.UTC)} {
		m := sdk.NewMessage([]byte("x"))
		m.Time = want
		if err := c.Publish(context.Background(), "times", m); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-got:
			if !r.Time.Equal(want) {
				t.Fatalf("sent %v, received %v", want, r.Time)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("the message of %v did not arrive within 5s", want)
		}
	}
}

// Close with a context that has already ended (a shutdown signal's, as
// services often pass) reports nothing when nothing is stuck: closing idle
// subscriptions and the transport takes microseconds, and is not a step
// that missed the deadline.
func TestCloseWithAnEndedContextReportsOnlyWhatIsStuck(t *testing.T) {
	for range 20 {
		c := openMemory(t)
		for _, topic := range []string{"a", "b"} {
			if _, err := c.Subscribe(context.Background(), topic, "g", func(context.Context, *sdk.Message) error { return nil }); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Publish(context.Background(), "a", sdk.NewMessage([]byte("x"))); err != nil {
			t.Fatal(err)
		}
		ended, cancel := context.WithCancel(context.Background())
		cancel()
		if err := c.Close(ended); err != nil {
			t.Fatalf("Close of an idle client with an ended context: %v", err)
		}
	}
	// A handler that does not return is still reported.
	c := openMemory(t)
	release := make(chan struct{})
	defer close(release)
	started := make(chan struct{})
	if _, err := c.Subscribe(context.Background(), "a", "g", func(context.Context, *sdk.Message) error {
		close(started)
		<-release
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(context.Background(), "a", sdk.NewMessage([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	<-started
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Close(ended); err == nil || !strings.Contains(err.Error(), "handlers still running") {
		t.Fatalf("a handler that does not return must be reported, got %v", err)
	}
}

// A driver's refusal of a name, marked with InvalidName, keeps its text and
// cause and is told apart from an outage: errors.Is(err, ErrInvalidName),
// IsRefused. An empty topic is such a refusal too.
func TestInvalidNameMarksARefusalOfAName(t *testing.T) {
	cause := errors.New("driver: topic \"a b\" holds a space")
	err := fmt.Errorf("publish: %w", sdk.InvalidName(cause))
	if !errors.Is(err, sdk.ErrInvalidName) || !errors.Is(err, cause) || !sdk.IsRefused(err) || err.Error() != "publish: "+cause.Error() {
		t.Fatalf("InvalidName must keep the text and cause and match ErrInvalidName: %v", err)
	}
	if sdk.InvalidName(nil) != nil || sdk.IsRefused(errors.New("connection refused")) || sdk.IsRefused(context.DeadlineExceeded) {
		t.Fatal("nil stays nil; an outage is not a refusal")
	}
	c := openMemory(t)
	if err := c.Publish(context.Background(), "", sdk.NewMessage(nil)); !errors.Is(err, sdk.ErrInvalidName) {
		t.Fatalf("an empty topic: want ErrInvalidName, got %v", err)
	}
}
