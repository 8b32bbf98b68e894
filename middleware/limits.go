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
// bulkhead.ErrFull and is redelivered. It panics when max is below 1 or
// maxWait is negative: a bulkhead with no place fails every message.
func Bulkhead(max int, maxWait time.Duration) Middleware {
	if max < 1 || maxWait < 0 {
		panic(fmt.Sprintf("middleware.Bulkhead(%d, %v): want at least 1 handler and a wait of 0 or more", max, maxWait))
	}
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
// It panics when perSecond is below 1.
func RateLimit(perSecond int) Middleware {
	if perSecond < 1 {
		panic(fmt.Sprintf("middleware.RateLimit(%d): want at least 1 handler start a second", perSecond))
	}
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
