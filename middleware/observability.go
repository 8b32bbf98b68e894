package middleware

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/msgkit/msgkit/sdk"
)

const instrumentationName = "github.com/msgkit/msgkit/middleware"

// Observability traces, measures and logs messaging. Its zero value, and
// nil providers, do nothing: observability is opt-in and costs nothing
// when off.
type Observability struct {
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
	logger     *slog.Logger
	tracing    bool     // a TracerProvider was given
	metrics    bool     // a MeterProvider was given
	attrs      sync.Map // topic + "\x00" + group -> metric.MeasurementOption, built once

	published, consumed, failed, retried, deadLettered metric.Int64Counter
	latency                                            metric.Float64Histogram
	breakerState                                       metric.Int64Gauge
}

// ObservabilityConfig names the providers; nil ones are no-ops.
type ObservabilityConfig struct {
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	// Logger receives handler failures (Warn) and dead-lettering (Error).
	Logger *slog.Logger
}

// NewObservability creates the instruments:
//
//	messaging.published, messaging.consumed, messaging.failed,
//	messaging.retried, messaging.dead_lettered   counters (messages)
//	messaging.handler.duration                   histogram (seconds)
//	messaging.breaker.state                      gauge (0 closed, 1 half-open, 2 open)
//
// each with the topic (messaging.destination.name) and, on the consumer
// side, the group (messaging.consumer.group.name).
func NewObservability(cfg ObservabilityConfig) (*Observability, error) {
	tp, mp, logger := cfg.TracerProvider, cfg.MeterProvider, cfg.Logger
	tracing, metrics := tp != nil, mp != nil
	if tp == nil {
		tp = tracenoop.NewTracerProvider()
	}
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	o := &Observability{tracer: tp.Tracer(instrumentationName), propagator: propagation.TraceContext{}, logger: logger,
		tracing: tracing, metrics: metrics}
	m := mp.Meter(instrumentationName)
	var err error
	counters := []struct {
		dst        *metric.Int64Counter
		name, desc string
	}{
		{&o.published, "messaging.published", "messages published"},
		{&o.consumed, "messaging.consumed", "messages handled successfully"},
		{&o.failed, "messaging.failed", "handler failures (the message is retried, redelivered or dead-lettered)"},
		{&o.retried, "messaging.retried", "in-process retries"},
		{&o.deadLettered, "messaging.dead_lettered", "messages sent to a dead-letter topic"},
	}
	for _, c := range counters {
		if *c.dst, err = m.Int64Counter(c.name, metric.WithDescription(c.desc), metric.WithUnit("{message}")); err != nil {
			return nil, err
		}
	}
	if o.latency, err = m.Float64Histogram("messaging.handler.duration", metric.WithDescription("handler latency"), metric.WithUnit("s")); err != nil {
		return nil, err
	}
	if o.breakerState, err = m.Int64Gauge("messaging.breaker.state", metric.WithDescription("circuit breaker state: 0 closed, 1 half-open, 2 open")); err != nil {
		return nil, err
	}
	return o, nil
}

// metadataCarrier lets the W3C propagator read and write message metadata.
type metadataCarrier map[string]string

func (c metadataCarrier) Get(key string) string { return c[key] }
func (c metadataCarrier) Set(key, value string) { c[key] = value }
func (c metadataCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// Handler returns middleware that runs the handler in a consumer span, a
// child of the producer's span found in the message's traceparent (so a
// trace crosses the broker), and counts and times it. Place it outermost.
func (o *Observability) Handler() Middleware {
	return func(next sdk.Handler) sdk.Handler {
		if !o.tracing && !o.metrics {
			// Nothing to trace or measure: only log failures, at no cost per
			// successful message.
			return func(ctx context.Context, msg *sdk.Message) error {
				err := call(ctx, next, msg)
				if err != nil {
					o.logger.WarnContext(ctx, "message handler failed", "topic", msg.Topic(), "group", msg.Group(), "message_id", msg.ID, "error", err)
				}
				return err
			}
		}
		return func(ctx context.Context, msg *sdk.Message) error {
			var span trace.Span
			if o.tracing {
				if msg.Metadata != nil {
					ctx = o.propagator.Extract(ctx, metadataCarrier(msg.Metadata))
				}
				ctx, span = o.tracer.Start(ctx, "process "+msg.Topic(), trace.WithSpanKind(trace.SpanKindConsumer),
					trace.WithAttributes(attribute.String("messaging.destination.name", msg.Topic()),
						attribute.String("messaging.consumer.group.name", msg.Group()),
						attribute.String("messaging.message.id", msg.ID)))
			}
			start := time.Now()
			err := call(ctx, next, msg)
			if o.metrics {
				attrs := o.consumerAttrs(msg.Topic(), msg.Group())
				o.latency.Record(ctx, time.Since(start).Seconds(), attrs)
				if err != nil {
					o.failed.Add(ctx, 1, attrs)
				} else {
					o.consumed.Add(ctx, 1, attrs)
				}
			}
			if err != nil {
				if span != nil {
					span.RecordError(err)
					span.SetStatus(codes.Error, err.Error())
				}
				o.logger.WarnContext(ctx, "message handler failed", "topic", msg.Topic(), "group", msg.Group(), "message_id", msg.ID, "error", err)
			}
			if span != nil {
				span.End()
			}
			return err
		}
	}
}

// consumerAttrs returns the metric attributes of a topic and group, built
// once: an attribute set costs several allocations.
func (o *Observability) consumerAttrs(topic, group string) metric.MeasurementOption {
	key := topic + "\x00" + group
	if a, ok := o.attrs.Load(key); ok {
		return a.(metric.MeasurementOption)
	}
	a := metric.WithAttributes(attribute.String("messaging.destination.name", topic), attribute.String("messaging.consumer.group.name", group))
	o.attrs.Store(key, a)
	return a
}

// Publisher wraps p: each Publish runs in a producer span whose context is
// written into every message's metadata (traceparent, tracestate), and is
// counted. A Publish inside a handler makes its span a child of the
// handler's. A message that already carries a traceparent keeps it: one
// the outbox's Add wrote stays in the trace of the request that wrote it.
func (o *Observability) Publisher(p sdk.Publisher) sdk.Publisher { return obsPublisher{o: o, next: p} }

type obsPublisher struct {
	o    *Observability
	next sdk.Publisher
}

func (p obsPublisher) Publish(ctx context.Context, topic string, msgs ...*sdk.Message) error {
	ctx, span := p.o.tracer.Start(ctx, "publish "+topic, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("messaging.destination.name", topic), attribute.Int("messaging.batch.message_count", len(msgs))))
	defer span.End()
	for _, m := range msgs {
		if m.Metadata[sdk.KeyTraceParent] != "" {
			continue // written with the trace that made it (the outbox's Add): the consumer joins that one
		}
		if m.Metadata == nil {
			m.Metadata = map[string]string{}
		}
		p.o.propagator.Inject(ctx, metadataCarrier(m.Metadata))
	}
	err := p.next.Publish(ctx, topic, msgs...)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		return err
	}
	p.o.published.Add(ctx, int64(len(msgs)), metric.WithAttributes(attribute.String("messaging.destination.name", topic)))
	return nil
}

// OnRetry counts an in-process retry; pass it as RetryConfig.OnRetry.
func (o *Observability) OnRetry(msg *sdk.Message, attempt int, err error) {
	o.retried.Add(context.Background(), 1, metric.WithAttributes(attribute.String("messaging.destination.name", msg.Topic())))
}

// OnDeadLetter counts and logs a dead-lettered message; pass it as
// DeadLetterConfig.OnDeadLetter.
func (o *Observability) OnDeadLetter(msg *sdk.Message, dlqTopic string, err error) {
	o.deadLettered.Add(context.Background(), 1, metric.WithAttributes(attribute.String("messaging.destination.name", msg.Topic())))
	o.logger.Error("message dead-lettered", "topic", msg.Topic(), "group", msg.Group(), "message_id", msg.ID, "dead_letter_topic", dlqTopic, "error", err)
}

// OnBreakerStateChange records a breaker's state in the gauge; pass
// o.OnBreakerStateChange("payments-db") as BreakerConfig.OnStateChange.
func (o *Observability) OnBreakerStateChange(name string) func(from, to string) {
	return func(from, to string) {
		v := map[string]int64{"closed": 0, "half-open": 1, "open": 2}[to]
		o.breakerState.Record(context.Background(), v, metric.WithAttributes(attribute.String("breaker", name)))
		o.logger.Warn("circuit breaker changed state", "breaker", name, "from", from, "to", to)
	}
}
