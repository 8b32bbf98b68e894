package middleware

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/ratelimiter"
	"github.com/failsafe-go/failsafe-go/timeout"

	"github.com/msgkit/msgkit/sdk"
)

// Timeout cancels the handler's context after d; the handler must honour
// it. A handler that times out fails with an error wrapping
// timeout.ErrExceeded (failsafe-go's), and the message is retried or
// redelivered like any failure.
//
// It is a context deadline rather than failsafe-go's Timeout executor: the
// behaviour is the same (the handler runs in the caller's goroutine and its
// context is cancelled), and the executor's per-call execution costs about
// 1 µs and 20 allocations that every message would pay.
func Timeout(d time.Duration) Middleware {
	return func(next sdk.Handler) sdk.Handler {
		return func(ctx context.Context, msg *sdk.Message) error {
			tctx, cancel := context.WithTimeoutCause(ctx, d, timeout.ErrExceeded)
			err := call(tctx, next, msg)
			timedOut := errors.Is(context.Cause(tctx), timeout.ErrExceeded)
			cancel()
			if err != nil && timedOut {
				return fmt.Errorf("handler for %q did not finish within %v: %w", msg.Topic(), d, errors.Join(timeout.ErrExceeded, err))
			}
			return err
		}
	}
}

// Bulkhead lets at most max handlers run at once across every subscription
// that shares it (for example all handlers that call one database). A
// handler waits up to maxWait for a place; then the message fails with
// bulkhead.ErrFull and is redelivered.
func Bulkhead(max int, maxWait time.Duration) Middleware {
	bh := bulkhead.NewBuilder[any](uint(max)).WithMaxWaitTime(maxWait).Build()
	return func(next sdk.Handler) sdk.Handler {
		return func(ctx context.Context, msg *sdk.Message) error {
			if err := bh.AcquirePermitWithMaxWait(ctx, maxWait); err != nil {
				return fmt.Errorf("bulkhead of %d handlers is full after waiting %v: %w", max, maxWait, err)
			}
			defer bh.ReleasePermit()
			return call(ctx, next, msg)
		}
	}
}

// RateLimit lets handlers start at most perSecond times a second, evenly
// spaced, across every subscription that shares it. A handler waits for its
// turn (consumption slows down; nothing is nacked) until its context ends.
func RateLimit(perSecond int) Middleware {
	rl := ratelimiter.NewSmooth[any](uint(perSecond), time.Second)
	return func(next sdk.Handler) sdk.Handler {
		return func(ctx context.Context, msg *sdk.Message) error {
			if err := rl.AcquirePermit(ctx); err != nil {
				return fmt.Errorf("rate limit of %d/s: %w", perSecond, err)
			}
			return call(ctx, next, msg)
		}
	}
}
