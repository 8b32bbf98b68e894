package middleware

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"

	"github.com/msgkit/msgkit/sdk"
)

// ErrCircuitOpen is returned by a publisher behind an open breaker, and by
// a handler whose subscription closes while its breaker is open.
var ErrCircuitOpen = errors.New("circuit breaker open")

// BreakerConfig configures a Breaker. Zero values take the defaults.
type BreakerConfig struct {
	// FailureThreshold consecutive failures open the breaker. Default 5.
	// With FailureWindow set, it is FailureThreshold failures out of the
	// last FailureWindow executions instead.
	FailureThreshold, FailureWindow uint
	// Delay is how long the breaker stays open before it lets a trial
	// through (half-open). Default 10s.
	Delay time.Duration
	// SuccessThreshold trials must succeed in half-open to close it.
	// Default 1.
	SuccessThreshold uint
	// OnStateChange is told of every transition ("closed", "open",
	// "half-open"), for logs and metrics.
	OnStateChange func(from, to string)
}

// Breaker is a circuit breaker around one dependency (a database, an API),
// shared by the handlers and publishers that use it.
type Breaker struct {
	cb circuitbreaker.CircuitBreaker[any]
}

// NewBreaker returns a closed breaker.
func NewBreaker(cfg BreakerConfig) *Breaker {
	if cfg.FailureThreshold == 0 {
		cfg.FailureThreshold = 5
	}
	if cfg.Delay <= 0 {
		cfg.Delay = 10 * time.Second
	}
	if cfg.SuccessThreshold == 0 {
		cfg.SuccessThreshold = 1
	}
	b := circuitbreaker.NewBuilder[any]().WithDelay(cfg.Delay).WithSuccessThreshold(cfg.SuccessThreshold)
	if cfg.FailureWindow > 0 {
		b = b.WithFailureThresholdRatio(cfg.FailureThreshold, max(cfg.FailureWindow, cfg.FailureThreshold))
	} else {
		b = b.WithFailureThreshold(cfg.FailureThreshold)
	}
	if cfg.OnStateChange != nil {
		b = b.OnStateChanged(func(e circuitbreaker.StateChangedEvent) {
			cfg.OnStateChange(stateName(e.OldState), stateName(e.NewState))
		})
	}
	return &Breaker{cb: b.Build()}
}

func stateName(s circuitbreaker.State) string {
	switch s {
	case circuitbreaker.OpenState:
		return "open"
	case circuitbreaker.HalfOpenState:
		return "half-open"
	default:
		return "closed"
	}
}

// State returns "closed", "open" or "half-open".
func (b *Breaker) State() string { return stateName(b.cb.State()) }

// Handler returns middleware that, while the breaker is open, holds the
// message instead of failing it: the subscription takes no new messages
// (no nack storm against a dependency that is down) and resumes with a
// trial when the breaker turns half-open. Handler failures count against
// the breaker; errors marked sdk.Permanent do not (the message was bad, not
// the dependency). If the subscription closes while the breaker is open, the
// held message fails with ErrCircuitOpen and is redelivered later.
func (b *Breaker) Handler() Middleware {
	return func(next sdk.Handler) sdk.Handler {
		return func(ctx context.Context, msg *sdk.Message) error {
			if err := b.wait(ctx); err != nil {
				return err
			}
			err := call(ctx, next, msg)
			if err == nil || sdk.IsPermanent(err) || IsBreakerNeutral(err) {
				b.cb.RecordSuccess()
			} else {
				b.cb.RecordError(err)
			}
			return err
		}
	}
}

// BreakerNeutral marks a failure that is to be retried (the message is
// nacked and redelivered as usual) but says nothing about the dependency
// the breaker guards: one customer's card declined by a payment API that
// answered promptly. The breaker counts it as the dependency working, so
// one customer's failures cannot pause the whole subscription.
func BreakerNeutral(err error) error {
	if err == nil {
		return nil
	}
	return neutralError{err}
}

// IsBreakerNeutral reports whether err, or an error it wraps, was marked
// with BreakerNeutral.
func IsBreakerNeutral(err error) bool {
	var n neutralError
	return errors.As(err, &n)
}

type neutralError struct{ error }

func (e neutralError) Unwrap() error { return e.error }

// wait blocks until the breaker grants a permit.
func (b *Breaker) wait(ctx context.Context) error {
	if b.cb.TryAcquirePermit() {
		return nil
	}
	stopping := sdk.Stopping(ctx)
	for !b.cb.TryAcquirePermit() {
		d := b.cb.RemainingDelay()
		if d <= 0 {
			d = 10 * time.Millisecond // half-open with its trials in flight
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: waiting for it to close: %w", ErrCircuitOpen, ctx.Err())
		case <-stopping:
			t.Stop()
			return fmt.Errorf("%w: the subscription is closing; the message is left for redelivery", ErrCircuitOpen)
		case <-t.C:
		}
	}
	return nil
}

// Publisher wraps p so that publishing fails fast with ErrCircuitOpen while
// the breaker is open, instead of waiting on a broker that is down.
// Publish failures count against the breaker.
func (b *Breaker) Publisher(p sdk.Publisher) sdk.Publisher { return breakerPublisher{b: b, next: p} }

type breakerPublisher struct {
	b    *Breaker
	next sdk.Publisher
}

func (p breakerPublisher) Publish(ctx context.Context, topic string, msgs ...*sdk.Message) error {
	if !p.b.cb.TryAcquirePermit() {
		return fmt.Errorf("publish to %s: %w; retry in %v", sdk.QuoteName(topic), ErrCircuitOpen, p.b.cb.RemainingDelay().Round(time.Millisecond))
	}
	err := p.next.Publish(ctx, topic, msgs...)
	if err != nil {
		p.b.cb.RecordError(err)
	} else {
		p.b.cb.RecordSuccess()
	}
	return err
}
