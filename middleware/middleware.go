// Package middleware holds handler middleware and publisher decorators that
// make consumers and producers resilient: retry with backoff, circuit
// breaker, timeout, bulkhead, rate limit, dead-lettering. Each is a plain
// func(sdk.Handler) sdk.Handler (or wraps an sdk.Publisher), built on
// failsafe-go, so they compose in any order with Chain.
//
// A typical consumer stack, outermost first:
//
//	h := middleware.Chain(handle,
//		middleware.DeadLetter(middleware.DeadLetterConfig{Publisher: client, MaxDeliveries: 3}),
//		breaker.Handler(),               // pauses consumption while the dependency is down
//		middleware.Retry(middleware.RetryConfig{MaxAttempts: 3}),
//		middleware.Timeout(10*time.Second),
//	)
//
// A message whose handler still fails after the in-process retries is
// nacked (the broker redelivers it); after MaxDeliveries deliveries, or at
// once for an error marked sdk.Permanent, it goes to the dead-letter topic.
package middleware

import (
	"context"
	"runtime/debug"

	"github.com/msgkit/msgkit/sdk"
)

// Middleware wraps a handler.
type Middleware func(sdk.Handler) sdk.Handler

// Chain wraps h in mws; the first middleware is the outermost, the one that
// sees the message first.
func Chain(h sdk.Handler, mws ...Middleware) sdk.Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// Recover turns a panic in the inner handler into an *sdk.PanicError, so
// that middleware outside it (retry, dead-letter) treats it as a failure.
// The Client recovers panics too; this is for the layers in between.
func Recover() Middleware {
	return func(next sdk.Handler) sdk.Handler {
		return func(ctx context.Context, msg *sdk.Message) error { return call(ctx, next, msg) }
	}
}

func call(ctx context.Context, h sdk.Handler, msg *sdk.Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &sdk.PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return h(ctx, msg)
}
