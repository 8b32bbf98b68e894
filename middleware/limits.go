package middleware

import (
	"context"
	"fmt"
	"time"

	"github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/ratelimiter"

	"github.com/msgkit/msgkit/sdk"
)

// Bulkhead lets at most max handlers run at once across every subscription
// that shares it (for example all handlers that call one database). A
// handler waits up to maxWait for a place; then the message fails with
// bulkhead.ErrFull and is redelivered.
func Bulkhead(max int, maxWait time.Duration) Middleware {
	bh := bulkhead.NewBuilder[any](uint(max)).WithMaxWaitTime(maxWait).Build()
	return func(next sdk.Handler) sdk.Handler {
		return func(ctx context.Context, msg *sdk.Message) error {
			// TryAcquirePermit first: AcquirePermitWithMaxWait selects on
			// the context too, which costs 100 ns a message while places are
			// free, the common case.
			if !bh.TryAcquirePermit() {
				if err := bh.AcquirePermitWithMaxWait(ctx, maxWait); err != nil {
					return fmt.Errorf("bulkhead of %d handlers is full after waiting %v: %w", max, maxWait, err)
				}
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
