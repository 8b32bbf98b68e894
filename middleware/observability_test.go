package middleware_test

import (
	"context"
	"errors"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/middleware"
	"github.com/msgkit/msgkit/sdk"
)

func TestTraceCrossesTheBroker(t *testing.T) {
	eachBroker(t, func(t *testing.T, b *broker) {
		spans := tracetest.NewInMemoryExporter()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
		defer tp.Shutdown(context.Background())
		obs, err := middleware.NewObservability(middleware.ObservabilityConfig{TracerProvider: tp})
		if err != nil {
			t.Fatal(err)
		}
		pub := obs.Publisher(b.client)
		handled := make(chan struct{})
		// Signals once the consumer span has ended, from outside it.
		signal := func(next sdk.Handler) sdk.Handler {
			return func(ctx context.Context, m *sdk.Message) error {
				err := next(ctx, m)
				close(handled)
				return err
			}
		}
		b.subscribe("work", "worker", middleware.Chain(func(ctx context.Context, m *sdk.Message) error {
			// A message published while handling continues the trace.
			return pub.Publish(ctx, b.topic("work.next"), sdk.NewMessage([]byte("follow-up")))
		}, signal, obs.Handler()))
		ctx, root := tp.Tracer("test").Start(context.Background(), "checkout")
		if err := pub.Publish(ctx, b.topic("work"), sdk.NewMessage([]byte("order"))); err != nil {
			t.Fatal(err)
		}
		root.End()
		testenv.Await(t, handled, "the handler")
		byName := map[string]tracetest.SpanStub{}
		for _, s := range spans.GetSpans() {
			byName[s.Name] = s
		}
		producer, consumer, followUp := byName["publish "+b.topic("work")], byName["process "+b.topic("work")], byName["publish "+b.topic("work.next")]
		if producer.SpanKind != trace.SpanKindProducer || consumer.SpanKind != trace.SpanKindConsumer {
			t.Fatalf("missing spans: %v", spanNames(spans.GetSpans()))
		}
		if consumer.Parent.SpanID() != producer.SpanContext.SpanID() || consumer.SpanContext.TraceID() != root.SpanContext().TraceID() {
			t.Fatalf("the consumer span must be a child of the producer span in the same trace across the broker: parent %s, producer %s",
				consumer.Parent.SpanID(), producer.SpanContext.SpanID())
		}
		if followUp.Parent.SpanID() != consumer.SpanContext.SpanID() {
			t.Fatalf("a publish inside the handler must be a child of the consumer span")
		}
	})
}

func spanNames(s tracetest.SpanStubs) []string {
	var n []string
	for _, x := range s {
		n = append(n, x.Name)
	}
	return n
}

func TestMetricsCountWhatHappened(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	obs, err := middleware.NewObservability(middleware.ObservabilityConfig{MeterProvider: mp})
	if err != nil {
		t.Fatal(err)
	}
	b := newBroker(t, sdk.Config{})
	pub := obs.Publisher(b.client)
	breaker := middleware.NewBreaker(middleware.BreakerConfig{FailureThreshold: 100, OnStateChange: obs.OnBreakerStateChange("db")})
	done := make(chan struct{}, 4)
	b.subscribe("work", "worker", middleware.Chain(func(ctx context.Context, m *sdk.Message) error {
		defer func() { done <- struct{}{} }()
		if string(m.Payload) == "bad" {
			return sdk.Permanent(errors.New("bad"))
		}
		if m.Get(sdk.KeyAttempt) == "1" {
			return errors.New("first try fails")
		}
		return nil
	}, obs.Handler(),
		middleware.DeadLetter(middleware.DeadLetterConfig{Publisher: b.client, OnDeadLetter: obs.OnDeadLetter}),
		breaker.Handler(),
		middleware.Retry(middleware.RetryConfig{MaxAttempts: 3, Delay: time.Millisecond, OnRetry: obs.OnRetry})))
	if err := pub.Publish(context.Background(), b.topic("work"), sdk.NewMessage([]byte("good")), sdk.NewMessage([]byte("bad"))); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ { // good: 2 attempts; bad: 1
		testenv.Await(t, done, "the handler calls")
	}
	// The handler signals before the outer middleware records the outcome,
	// so the counters are polled until they settle (bounded).
	want := map[string]int64{"messaging.published": 2, "messaging.consumed": 2, "messaging.retried": 1, "messaging.dead_lettered": 1}
	var rm metricdata.ResourceMetrics
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		if countersMatch(rm, want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for name, v := range want {
		if got := sum(rm, name); got != v {
			t.Errorf("%s = %d, want %d (after waiting 5s for the counters to settle)", name, got, v)
		}
	}
}

func countersMatch(rm metricdata.ResourceMetrics, want map[string]int64) bool {
	for name, v := range want {
		if sum(rm, name) != v {
			return false
		}
	}
	return true
}

// sum adds up an Int64 counter across its attribute sets.
func sum(rm metricdata.ResourceMetrics, name string) int64 {
	var total int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			if s, ok := m.Data.(metricdata.Sum[int64]); ok {
				for _, dp := range s.DataPoints {
					total += dp.Value
				}
			}
		}
	}
	return total
}
