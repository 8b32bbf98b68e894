package outbox_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/msgkit/msgkit/adapters/memory"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/middleware"
	"github.com/msgkit/msgkit/outbox"
	"github.com/msgkit/msgkit/sdk"
)

// One trace and one correlation id from a request's span, through Add, the
// relay and the broker, to the consumer: the consumer's span is a child of
// the request's, and the message carries the conversation's id.
func TestTraceAndCorrelationCrossTheOutbox(t *testing.T) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "app.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	defer db.Close()
	ctx := context.Background()
	store, err := outbox.New(db, outbox.Config{Dialect: outbox.SQLite})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	obs, err := middleware.NewObservability(middleware.ObservabilityConfig{TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	client := sdk.NewClient(memory.New())
	defer client.Close(ctx)
	got := make(chan *sdk.Message, 1)
	if _, err := client.Subscribe(ctx, "orders.events", "billing", middleware.Chain(func(_ context.Context, m *sdk.Message) error {
		got <- m
		return nil
	}, obs.Handler())); err != nil {
		t.Fatal(err)
	}

	// The HTTP request: its server span, and the conversation it starts.
	reqCtx, span := tp.Tracer("http").Start(sdk.WithCorrelationID(ctx, "corr-42"), "POST /orders", trace.WithSpanKind(trace.SpanKindServer))
	tx, err := db.BeginTx(reqCtx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Add(reqCtx, tx, "orders.events", sdk.NewMessage([]byte(`{"order":"o-1"}`))); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	span.End()

	relay, err := store.NewRelay(outbox.RelayConfig{Publisher: obs.Publisher(client)})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := relay.RunOnce(ctx); err != nil || n != 1 {
		t.Fatalf("relay published %d, %v", n, err)
	}
	m := testenv.Await(t, got, "the message the relay published")
	if m.CorrelationID != "corr-42" {
		t.Fatalf("the conversation's correlation id should cross the outbox, got %q", m.CorrelationID)
	}
	var consumer tracetest.SpanStub
	for _, s := range spans.GetSpans() {
		if s.SpanKind == trace.SpanKindConsumer {
			consumer = s
		}
	}
	if consumer.SpanContext.TraceID() != span.SpanContext().TraceID() || consumer.Parent.SpanID() != span.SpanContext().SpanID() {
		t.Fatalf("the consumer's span should be a child of the request's (trace %s, span %s), got trace %s, parent %s",
			span.SpanContext().TraceID(), span.SpanContext().SpanID(), consumer.SpanContext.TraceID(), consumer.Parent.SpanID())
	}
}
