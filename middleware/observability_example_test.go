package middleware_test

import (
	"context"
	"fmt"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/msgkit/msgkit/adapters/memory"
	"github.com/msgkit/msgkit/middleware"
	"github.com/msgkit/msgkit/sdk"
)

// Traces cross the broker: the consumer's span is a child of the
// producer's, through the traceparent in the message's metadata.
func ExampleObservability() {
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	obs, _ := middleware.NewObservability(middleware.ObservabilityConfig{TracerProvider: tp})

	ctx := context.Background()
	client := sdk.NewClient(memory.New())
	defer client.Close(ctx)
	handled := make(chan struct{})
	client.Subscribe(ctx, "orders", "billing", middleware.Chain(func(ctx context.Context, m *sdk.Message) error {
		return nil
	}, func(next sdk.Handler) sdk.Handler {
		return func(ctx context.Context, m *sdk.Message) error { err := next(ctx, m); close(handled); return err }
	}, obs.Handler()))
	obs.Publisher(client).Publish(ctx, "orders", sdk.NewMessage(nil))
	<-handled

	var producer, consumer tracetest.SpanStub
	for _, s := range spans.GetSpans() {
		if s.SpanKind == trace.SpanKindProducer {
			producer = s
		} else {
			consumer = s
		}
	}
	fmt.Println(producer.Name, "->", consumer.Name)
	fmt.Println("same trace:", producer.SpanContext.TraceID() == consumer.SpanContext.TraceID())
	fmt.Println("consumer is the producer's child:", consumer.Parent.SpanID() == producer.SpanContext.SpanID())
	// Output:
	// publish orders -> process orders
	// same trace: true
	// consumer is the producer's child: true
}
